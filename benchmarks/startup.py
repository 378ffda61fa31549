"""Start-up: from launching `bench run` to the first request handed to the model.

Runs `bench run` (SmolLM2 pack, hf backend, default suite tasks, --limit 1, fresh store)
with BENCH_TRACE set; bench then writes a timestamp at each phase (bench/trace.py). The
clock starts just before the process is spawned, so Python's own start and every import
count. Prints each phase and two figures:

- harness start-up: time to the first model request minus the model load (importing
  torch, transformers and lm-eval's HF class, reading the weights), i.e. what the
  harness itself costs: Python, CLI, store, task index and building, prompts;
- start-up including the model load (what a user waits for).

    python benchmarks/startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DEFAULT_TASKS, ENV, PACK, REPO, bench_cmd, load_average, median, pack_dir

INDEX_TIMER = (
    "import time; from lm_eval.tasks import TaskManager; t = time.perf_counter(); "
    "n = len(TaskManager().all_tasks); print(f'{time.perf_counter() - t:.2f} ({n} tasks)')"
)
PHASES = ["cli_run", "model_load_start", "model_loaded", "tasks_loaded", "first_request"]


def one_run(work: Path, round_: int) -> dict[str, float]:
    trace = work / f"trace-{round_}.jsonl"
    cmd = bench_cmd(
        "run",
        "--model",
        PACK,
        "--tasks",
        ",".join(DEFAULT_TASKS),
        "--model-args",
        "dtype=float32",
        "--limit",
        "1",
        "--no-cache",
        "--store",
        f"sqlite:///{work / f'startup-{round_}.db'}",
    )
    start = time.time()
    subprocess.run(
        cmd, cwd=REPO, env={**ENV, "BENCH_TRACE": str(trace)}, check=True, capture_output=True
    )
    marks: dict[str, float] = {}
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        marks.setdefault(event["event"], event["t"] - start)  # the first of each kind
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pack_dir(PACK)
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    print(f"before: {load_average()}")
    runs = [one_run(work, r) for r in range(args.rounds)]
    print(f"after: {load_average()}")

    print(f"\nseconds since spawning `bench run` (median of {args.rounds}):")
    for phase in PHASES:
        values = [r[phase] for r in runs if phase in r]
        if values:
            print(f"  {phase:18s} {median(values):6.2f}")
    first = median([r["first_request"] for r in runs])
    # The backend is built on the way to the first request: importing torch, transformers
    # and lm-eval's HF model class, then reading the weights. That is the model load.
    load = median([r["model_loaded"] - r["model_load_start"] for r in runs])
    harness = median(
        [r["first_request"] - (r["model_loaded"] - r["model_load_start"]) for r in runs]
    )
    print(f"\nmodel load (backend imports + weights): {load:.2f} s")
    print(f"start-up to the first model request, including the model load: {first:.2f} s")
    print(f"harness start-up, excluding the model load: {harness:.2f} s (target < 1.5 s)")
    # For scale: what lm-eval spends on its task index alone before any model request.
    index = subprocess.run(
        [sys.executable, "-c", INDEX_TIMER], env=ENV, capture_output=True, text=True, check=True
    )
    print(f"for comparison, lm-eval's task index alone (TaskManager()): {index.stdout.strip()} s")


if __name__ == "__main__":
    main()
