"""The large workload's task pack: seeded multiple-choice and generation tasks, written
as lm-eval task YAML + JSON lines into a folder (no network, no shipped data).

- `large_choice`: "Which of these is a fruit?" with four choices of several
  tokens each ("a ripe yellow banana"), 3-shot, acc and acc_norm. Most choices are
  several tokens, so lm-eval's one-token logits cache cannot merge them: each choice is
  its own row of context + choice.
- `large_gen`: two-operand arithmetic, 3-shot, greedy up to 16 tokens or a newline,
  exact_match on the first number.

Each split has its own seeded generator, so `--docs 40` writes the first 40 of the
1,000 documents and their prompts are those of the full run.

    python benchmarks/large_tasks.py --out DIR [--docs 1000] [--gens 200]
    bench run --model M --tasks large_choice,large_gen --include-path DIR
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path

SEED = 20261208
FEWSHOT_DOCS = 20
CHOICE_TASK = "large_choice"
GEN_TASK = "large_gen"

KINDS = {  # what the question asks for: the nouns that are one
    "a fruit": ["apple", "banana", "cherry", "pear", "plum", "mango", "peach", "lemon"],
    "an animal": ["horse", "rabbit", "tiger", "sheep", "goat", "fox", "bear", "duck"],
    "a vehicle": ["truck", "bicycle", "train", "tractor", "bus", "scooter", "van", "boat"],
    "a piece of furniture": ["chair", "table", "sofa", "bed", "wardrobe", "desk", "bench"],
    "a tool": ["hammer", "saw", "wrench", "screwdriver", "shovel", "drill", "chisel"],
    "a musical instrument": ["violin", "piano", "trumpet", "flute", "drum", "guitar", "harp"],
    "a piece of clothing": ["jacket", "scarf", "sweater", "coat", "shirt", "hat", "glove"],
    "a building": ["castle", "cottage", "tower", "barn", "church", "warehouse", "hut"],
}
ADJECTIVES = [
    "small",
    "large",
    "old",
    "shiny",
    "heavy",
    "bright red",
    "dark green",
    "pale yellow",
    "broken",
    "brand new",
    "wooden",
    "dusty",
    "famous",
    "ordinary",
]

MULTIPLE_CHOICE = """output_type: multiple_choice
doc_to_choice: "{{choices}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""

GENERATE = """output_type: generate_until
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 16
  do_sample: false
filter_list:
  - name: first_number
    filter:
      - function: regex
        regex_pattern: "(-?[0-9]+)"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""

COMMON = """dataset_path: json
dataset_kwargs:
  data_files:
    train: data/{name}_train.jsonl
    test: data/{name}_test.jsonl
training_split: train
fewshot_split: train
test_split: test
num_fewshot: 3
fewshot_delimiter: "\\n\\n"
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: answer
target_delimiter: " "
"""


@dataclass(frozen=True)
class LargePack:
    """A written pack: its folder (the include path) and its two task names."""

    folder: Path
    docs: int
    gens: int
    seed: int
    choice_task: str = CHOICE_TASK
    gen_task: str = GEN_TASK

    @property
    def tasks(self) -> list[str]:
        return [self.choice_task, self.gen_task]


def phrase(rng: random.Random, kind: str) -> str:
    adjective = rng.choice(ADJECTIVES)
    article = "an" if adjective[0] in "aeiou" else "a"
    return f"{article} {adjective} {rng.choice(KINDS[kind])}"


def choice_doc(rng: random.Random) -> dict:
    """One right phrase and three from other kinds, in a shuffled order."""
    kind, *others = rng.sample(sorted(KINDS), 4)
    right = phrase(rng, kind)
    choices = [right, *(phrase(rng, other) for other in others)]
    rng.shuffle(choices)
    return {
        "question": f"Which of these is {kind}?",
        "choices": choices,
        "answer": choices.index(right),
    }


def gen_doc(rng: random.Random) -> dict:
    op = rng.choice("+-*")
    if op == "*":
        a, b = rng.randint(2, 12), rng.randint(2, 12)
    else:
        a, b = sorted((rng.randint(1, 99), rng.randint(1, 99)), reverse=True)
    answer = {"+": a + b, "-": a - b, "*": a * b}[op]
    return {"question": f"What is {a} {op} {b}?", "answer": str(answer)}


def write_pack(folder: Path, docs: int = 1000, gens: int = 200, seed: int = SEED) -> LargePack:
    """Writes both tasks into `folder` (created if missing) and returns the pack."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for offset, (name, make, body, count) in enumerate(
        [
            (CHOICE_TASK, choice_doc, MULTIPLE_CHOICE, docs),
            (GEN_TASK, gen_doc, GENERATE, gens),
        ]
    ):
        for split, n in (("train", FEWSHOT_DOCS), ("test", count)):
            # A generator per split: a smaller --docs is a prefix of a larger one.
            rng = random.Random(f"{seed}-{offset}-{split}")
            with (folder / "data" / f"{name}_{split}.jsonl").open("w") as handle:
                handle.writelines(json.dumps(make(rng)) + "\n" for _ in range(n))
        header = f"# Written by benchmarks/large_tasks.py (n={count}, seed={seed}).\n"
        meta = f"metadata:\n  version: 1.0\n  n: {count}\n  seed: {seed}\n"
        yaml = f"{header}task: {name}\n{COMMON.format(name=name)}{body}{meta}"
        (folder / f"{name}.yaml").write_text(yaml)
    return LargePack(folder, docs, gens, seed)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--gens", type=int, default=200)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    pack = write_pack(args.out, args.docs, args.gens, args.seed)
    print(f"wrote {', '.join(pack.tasks)} to {pack.folder}")
