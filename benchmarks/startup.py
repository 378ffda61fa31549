"""Start-up: from launching `bench run` to the first request handed to the model.

Runs `bench run` (SmolLM2 pack, hf backend, default suite tasks, --limit 1, fresh store)
with BENCH_TRACE set; bench then writes a timestamp at each phase (bench/trace.py). The
clock starts just before the process is spawned, so Python's own start and every import
count. Rounds alternate between two modes:

- model process: a cold start, the default; the model loads in its own process, which
  starts at once while bench builds the tasks (bench/backends/process.py);
- one process: a cold start with BENCH_MODEL_PROCESS=0 (the model loads in bench's
  process after the tasks are built).

Prints each phase and, per mode:

- start-up to the first model request (what a user waits for);
- model load: the model's process from its spawn to the loaded model (Python, torch,
  transformers, lm-eval's HF class, the weights); in one process, the backend's build;
- harness start-up: the rest of the wait, i.e. what bench itself adds to it.

With --base-url, it times `--backend openai` against that server instead (a model already
served, e.g. `python -m llama_cpp.server --model <the pack's GGUF>`; basics_arith only,
as generation is what every server answers); "model load" is then the backend's build,
which loads the model's local tokenizer.

    python benchmarks/startup.py [--rounds 5] [--base-url http://127.0.0.1:8000/v1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    DEFAULT_TASKS,
    ENV,
    PACK,
    REPO,
    bench_cmd,
    load_average,
    median,
    pack_dir,
)

INDEX_TIMER = (
    "import time; from lm_eval.tasks import TaskManager; t = time.perf_counter(); "
    "n = len(TaskManager().all_tasks); print(f'{time.perf_counter() - t:.2f} ({n} tasks)')"
)
PHASES = [
    "cli_run",
    "model_process_spawned",
    "tasks_loaded",
    "model_load_start",
    "model_loaded",
    "first_request",
]
MODES = {  # what each mode's runs change in the environment
    "model process": {},
    "one process": {"BENCH_MODEL_PROCESS": "0"},
}


def one_run(
    work: Path, round_: int, mode: dict, env: dict, base_url: str | None
) -> dict[str, float]:
    name = "-".join(f"{k}{v}" for k, v in mode.items())
    trace = work / f"trace-{round_}-{name}.jsonl"
    # A served model: generation only, which every OpenAI-compatible server answers.
    backend = ["--backend", "openai", "--base-url", base_url] if base_url else []
    tasks = ["basics_arith"] if base_url else DEFAULT_TASKS
    cmd = bench_cmd(
        "run",
        "--model",
        PACK,
        *backend,
        "--tasks",
        ",".join(tasks),
        "--model-args",
        "dtype=float32",
        "--limit",
        "1",
        "--no-cache",
        "--store",
        f"sqlite:///{work / f'startup-{round_}-{name}.db'}",
    )
    start = time.time()
    subprocess.run(
        cmd,
        cwd=REPO,
        env={**env, **mode, "BENCH_TRACE": str(trace)},
        check=True,
        capture_output=True,
    )
    marks: dict[str, float] = {}
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        marks.setdefault(event["event"], event["t"] - start)  # the first of each kind
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--base-url",
        help="time `--backend openai` against this server (serving the SmolLM2 pack) instead",
    )
    args = parser.parse_args()
    modes = {"served model": MODES["model process"]} if args.base_url else MODES
    pack_dir(PACK)
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    print(f"before: {load_average()}")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in modes}
    for round_ in range(args.rounds):
        order = list(modes) if round_ % 2 == 0 else list(reversed(modes))
        for name in order:
            runs[name].append(one_run(work, round_, modes[name], ENV, args.base_url))
    print(f"after: {load_average()}")

    for name, marks in runs.items():
        print(f"\n{name}: seconds since spawning `bench run` (median of {args.rounds}):")
        for phase in PHASES:
            values = [r[phase] for r in marks if phase in r]
            if values:
                print(f"  {phase:22s} {median(values):6.2f}")
        # Where the model has its own process, its load runs from that process's spawn.
        began = (
            "model_process_spawned" if "model_process_spawned" in marks[0] else "model_load_start"
        )
        load = median([r["model_loaded"] - r[began] for r in marks])
        first = median([r["first_request"] for r in marks])
        harness = median([r["first_request"] - (r["model_loaded"] - r[began]) for r in marks])
        print(f"  start-up to the first model request: {first:.2f} s")
        print(f"  model load ({began} -> model_loaded): {load:.2f} s")
        print(f"  harness start-up, the rest of the wait: {harness:.2f} s (target < 1.5 s)")
    # For scale: what lm-eval spends on its task index alone before any model request.
    index = subprocess.run(
        [sys.executable, "-c", INDEX_TIMER], env=ENV, capture_output=True, text=True, check=True
    )
    print(f"for comparison, lm-eval's task index alone (TaskManager()): {index.stdout.strip()} s")


if __name__ == "__main__":
    main()
