"""Generates the reasoning pack: multi-step arithmetic, ordering and date arithmetic.

Everything comes from a seeded generator, so the shipped files are reproducible and a
larger variant is one command away:

    python tasks/reasoning/make_reasoning.py                      # rewrite the shipped pack
    python tasks/reasoning/make_reasoning.py --n 1000 --suffix _1k --out /tmp/reasoning_1k
    bench run --model M --tasks reasoning_arith_1k --include-path /tmp/reasoning_1k

A different --n, --seed or --suffix writes tasks under new names (the suffix), so the
shipped tasks and their stored results keep their meaning.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
from pathlib import Path

NAMES = ["Alice", "Bruno", "Chen", "Dana", "Emil", "Fatima", "Greta", "Hugo", "Ines", "Jonas"]
RELATIONS = [("older", "oldest", "youngest"), ("taller", "tallest", "shortest")]
MONTHS = [dt.date(2001, m, 1).strftime("%B") for m in range(1, 13)]


def arith(rng: random.Random) -> dict:
    """Two operations with the precedence made explicit by brackets."""
    a, b, c = rng.randint(2, 20), rng.randint(2, 20), rng.randint(2, 9)
    first, second = rng.choice("+-"), rng.choice("*+-")
    inner = a + b if first == "+" else a - b
    value = {"*": inner * c, "+": inner + c, "-": inner - c}[second]
    return {"question": f"What is ({a} {first} {b}) {second} {c}?", "answer": str(value)}


def order(rng: random.Random) -> dict:
    """A chain of comparisons in shuffled order; ask for one end of the chain."""
    people = rng.sample(NAMES, rng.randint(3, 4))  # people[0] has the most of the quality
    more, most, least = rng.choice(RELATIONS)
    facts = [f"{x} is {more} than {y}." for x, y in zip(people, people[1:], strict=False)]
    rng.shuffle(facts)
    ask_most = rng.random() < 0.5
    answer = people[0] if ask_most else people[-1]
    choices = sorted(people)
    return {
        "question": f"{' '.join(facts)} Who is the {most if ask_most else least}?",
        "choices": choices,
        "answer": choices.index(answer),
    }


def date_text(day: dt.date) -> str:
    return f"{MONTHS[day.month - 1]} {day.day}, {day.year}"


def dates(rng: random.Random) -> dict:
    """Add or subtract days; the distractors are the usual slips (off by one, a week)."""
    start = dt.date(2000, 1, 1) + dt.timedelta(days=rng.randint(0, 9000))
    days = rng.randint(2, 60) * rng.choice([1, -1])
    right = start + dt.timedelta(days=days)
    slips = rng.sample([1, -1, 2, -2, 7, -7, 30, -30], 3)
    options = {right, *(right + dt.timedelta(days=s) for s in slips)}
    choices = sorted(options)
    rng.shuffle(choices)
    direction = "after" if days > 0 else "before"
    return {
        "question": f"What date is {abs(days)} days {direction} {date_text(start)}?",
        "choices": [date_text(d) for d in choices],
        "answer": choices.index(right),
    }


COMMON = """dataset_path: json
dataset_kwargs:
  data_files:
    train: data/{kind}_train{suffix}.jsonl
    test: data/{kind}_test{suffix}.jsonl
training_split: train
fewshot_split: train
test_split: test
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: answer
target_delimiter: " "
"""

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
num_fewshot: 3
fewshot_delimiter: "\\n\\n"
generation_kwargs:
  until: ["\\n", "Question:"]
  max_gen_toks: 8
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

KINDS = {
    "arith": (arith, GENERATE),
    "order": (order, MULTIPLE_CHOICE),
    "dates": (dates, MULTIPLE_CHOICE),
}


def write_pack(out: Path, n: int, seed: int, suffix: str) -> None:
    (out / "data").mkdir(parents=True, exist_ok=True)
    for offset, (kind, (make, body)) in enumerate(KINDS.items()):
        rng = random.Random(seed + offset)
        for split, count in (("train", 5), ("test", n)):
            rows = [make(rng) for _ in range(count)]
            with (out / "data" / f"{kind}_{split}{suffix}.jsonl").open("w") as handle:
                handle.writelines(json.dumps(row) + "\n" for row in rows)
        header = f"# Written by make_reasoning.py (n={n}, seed={seed}); regenerate, do not edit.\n"
        yaml = header + f"task: reasoning_{kind}{suffix}\n"
        yaml += COMMON.format(kind=kind, suffix=suffix) + body
        yaml += "metadata:\n  version: 1.0\n  generator: make_reasoning.py\n"
        yaml += f"  n: {n}\n  seed: {seed}\n"
        (out / f"reasoning_{kind}{suffix}.yaml").write_text(yaml)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="test questions per task")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--suffix", default="", help="appended to task and file names")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    if (args.n, args.seed) != (50, 20261125) and not args.suffix:
        parser.error("a non-default --n or --seed needs --suffix: shipped names keep their meaning")
    write_pack(args.out, args.n, args.seed, args.suffix)
