"""Start-up: from launching `bench run` to the first request handed to the model.

Runs `bench run` (SmolLM2 pack, hf backend, default suite tasks, --limit 1, fresh store)
with BENCH_TRACE set; bench then writes a timestamp at each phase (bench/trace.py). The
clock starts just before the process is spawned, so Python's own start and every import
count. Prints each phase and two figures:

- harness start-up: time to the first model request minus the model-load time that lay
  on the way (what the harness itself costs: imports, task index, task building);
- start-up including the model load (what a user waits for).

    python benchmarks/startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from common import DEFAULT_TASKS, ENV, PACK, REPO, bench_cmd, load_average, median, pack_dir

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
    load = median([r["model_loaded"] - r["model_load_start"] for r in runs])
    # The load overlaps task building when both run at once; only the part of it that
    # delayed the first request counts against the harness figure.
    waited = median(
        [
            max(0.0, r["model_loaded"] - max(r["model_load_start"], r.get("tasks_loaded", 0)))
            for r in runs
        ]
    )
    print(f"\nmodel load {load:.2f} s, of which {waited:.2f} s delayed the first request")
    print(f"start-up to the first model request, including the model load: {first:.2f} s")
    print(f"harness start-up (excluding the model load): {first - waited:.2f} s (target < 1.5 s)")


if __name__ == "__main__":
    main()
