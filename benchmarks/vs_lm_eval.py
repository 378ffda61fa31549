"""End to end: `bench run` against the `lm_eval` CLI on the same work, and their scores.

Both run the SmolLM2 pack with the hf backend in float32 on the default suite's tasks,
batch size 8, lm-eval's 100,000 bootstrap resamples, each from a fresh process. bench
gets a fresh store per round and --no-cache, so its request cache cannot help. The two
alternate (bench first in even rounds, lm_eval first in odd ones) so that a load change
on the machine hits both alike. Prints each wall time, the median ratio, and every
metric and stderr side by side; scores must agree as in tests/test_parity.py (accuracy-type
exactly, perplexity-type within 1e-6 relative).

    python benchmarks/vs_lm_eval.py [--rounds 3] [--limit N] [--one-process]

With --one-process, each round also times bench with BENCH_MODEL_PROCESS=0 (the model in
bench's own process, as before bench/backends/process.py) and checks its scores too.

    python benchmarks/vs_lm_eval.py --workload large [--docs 1000] [--gens 200] [--rounds 3]

The large workload (benchmarks/large_workload.py): a generated task pack of 3-shot
multiple-choice documents with four multi-token choices and short generations, the two
harnesses plus plain transformers doing the same forward passes, per-sample agreement,
and the tokens each side puts through the model.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

from common import (
    BASICS,
    DEFAULT_TASKS,
    ENV,
    PACK,
    REPO,
    bench_cmd,
    bench_run_cmd,
    bench_scores,
    lm_eval_run_cmd,
    lm_eval_scores,
    load_average,
    median,
    pack_dir,
    print_scores,
    timed,
)

PERPLEXITY_TYPE = {"word_perplexity", "byte_perplexity", "bits_per_byte", "perplexity"}


def agree(metric: str, mine, other) -> bool:
    """Two correct implementations' figures: accuracy-type exactly, perplexity-type within
    1e-6 relative (float32 sums whose last bits depend on the kernels)."""
    if mine is None or other is None:
        return mine is other
    rel = 1e-6 if metric in PERPLEXITY_TYPE else 1e-12
    return all(
        a is b or (a is not None and b is not None and math.isclose(a, b, rel_tol=rel))
        for a, b in zip(mine, other, strict=True)
    )


def print_startup() -> None:
    """Cold start-up, as a user meets it: `bench --help`, and a one-task run (one
    document of basics_facts on the SmolLM2 pack, fresh store): Python, imports, the
    task, the model's load, one request, the store."""
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    help_s = timed(bench_cmd("--help"))
    run_s = timed(bench_run_cmd("basics_facts", f"sqlite:///{work / 'startup.db'}", 1, limit=1))
    print(f"cold start-up: `bench --help` {help_s:.2f} s, one-task run (1 document) {run_s:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--workload",
        choices=["default", "large"],
        default="default",
        help="large: generated 3-shot multiple choice + generations (benchmarks/large_workload.py)",
    )
    parser.add_argument("--docs", type=int, default=1000, help="large: multiple-choice docs")
    parser.add_argument("--gens", type=int, default=200, help="large: generation docs")
    parser.add_argument(
        "--one-process",
        action="store_true",
        help="also time bench with BENCH_MODEL_PROCESS=0 (the model in bench's process)",
    )
    args = parser.parse_args()

    print_startup()
    if args.workload == "large":
        from large_workload import run_large

        run_large(args)
        return
    model_dir = pack_dir(PACK)
    work = Path(tempfile.mkdtemp(prefix="bench-vs-lm-eval-"))
    print(f"model {PACK} ({model_dir}), tasks {args.tasks}, batch {args.batch_size}, hf, float32")
    print(f"before: {load_average()}")

    def bench_run(store: str) -> list[str]:
        return bench_run_cmd(args.tasks, store, args.batch_size, limit=args.limit)

    names = ["bench", "lm_eval"]
    names += ["bench-1p"] if args.one_process else []
    compare(args, names, work, bench_run, model_dir)


def compare(args, names, work, bench_run, model_dir) -> None:
    walls: dict[str, list[float]] = {name: [] for name in names}
    scores: dict[str, dict] = {}
    for round_ in range(args.rounds):
        store = f"sqlite:///{work / f'bench-{round_}.db'}"
        out = work / f"lm_eval-{round_}"
        one_process_store = f"sqlite:///{work / f'bench-1p-{round_}.db'}"
        commands = {
            "bench": (bench_run(store), None, None),
            "bench-1p": (
                bench_run(one_process_store),
                None,
                {**ENV, "BENCH_MODEL_PROCESS": "0"},
            ),
            # From the task folder, so that relative data_files resolve as bench resolves them.
            "lm_eval": (
                lm_eval_run_cmd(model_dir, args.tasks, BASICS, out, args.batch_size, args.limit),
                BASICS,
                None,
            ),
        }
        order = names if round_ % 2 == 0 else list(reversed(names))
        for name in order:
            cmd, cwd, env = commands[name]
            wall = timed(cmd, cwd=cwd or REPO, env=env)
            walls[name].append(wall)
            print(f"round {round_ + 1}: {name:8s} {wall:6.2f} s")
        scores.setdefault("bench", bench_scores(store))
        scores.setdefault("lm_eval", lm_eval_scores(out))
        if bench_scores(store) != scores["bench"] or lm_eval_scores(out) != scores["lm_eval"]:
            print(f"round {round_ + 1}: scores differ from round 1 (nondeterminism)")
        if args.one_process and bench_scores(one_process_store) != scores["bench"]:
            print(f"round {round_ + 1}: BENCH_MODEL_PROCESS=0 scores differ")

    print(f"after: {load_average()}")
    b, lm = median(walls["bench"]), median(walls["lm_eval"])
    print(f"\nmedian wall: bench {b:.2f} s, lm_eval {lm:.2f} s -> bench is {lm / b:.2f}x faster")
    if args.one_process:
        one = median(walls["bench-1p"])
        print(f"bench with BENCH_MODEL_PROCESS=0: {one:.2f} s -> {lm / one:.2f}x lm_eval's speed")

    identical = print_scores(scores["bench"], scores["lm_eval"], agree)
    print(f"\nscores agree (values and stderrs, within tolerance): {'yes' if identical else 'NO'}")
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
