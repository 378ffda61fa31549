"""Hardware use: achieved FLOP/s of each run against the machine's measured matmul peak.

Achieved FLOP/s is about 2 x parameters x tokens / time, with parameters the ones that
multiply for every token (no token embeddings, no output layer: see
common.parameter_count), tokens the prompt and completion tokens a run recorded, and time
either the time its requests spent in the model (the sum of their recorded wall times)
or the run's whole wall time. The peak is the best float32 rate of a torch matrix product
where the runs ran: 2048 x 2048 at any thread count on a CPU, 8192 x 8192 on a CUDA GPU.
Tokens are counted per request: where several multiple-choice requests share one input
row (the hf backend runs it once), it counts once per request; the output layer,
computed only where it is read, is not counted at all. So the figure is approximate both ways.

Without --store, runs `bench run` on the SmolLM2 pack (default suite tasks, hf backend,
float32, fresh store, no cache) first; with --store URL, reports every run stored there.

    python benchmarks/hardware_use.py [--store URL] [--models smollm2-135m-instruct,...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import (
    DEFAULT_TASKS,
    PACK,
    bench_cmd,
    load_average,
    matmul_peak,
    pack_dir,
    parameter_count,
    timed,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=None)
    parser.add_argument("--models", default=PACK)
    args = parser.parse_args()

    store = args.store
    if store is None:
        for name in args.models.split(","):
            pack_dir(name)
        store = f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-hw-')) / 'hw.db'}"
        cmd = bench_cmd(
            "run", "--model", args.models, "--tasks", ",".join(DEFAULT_TASKS),
            "--model-args", "dtype=float32", "--no-cache", "--store", store,
        )  # fmt: skip
        print(f"bench run took {timed(cmd):.1f} s ({load_average()})")

    from sqlalchemy import func, select

    from bench.store.schema import RequestTiming, Run
    from bench.store.store import open_store

    peak = matmul_peak()
    print(f"measured float32 matmul peak: {peak / 1e9:.1f} GFLOP/s\n")
    engine = open_store(store)
    with engine.connect() as db:
        runs = db.execute(select(Run).order_by(Run.started_at)).all()
        busy = dict(
            db.execute(
                select(RequestTiming.run_id, func.sum(RequestTiming.wall_s)).group_by(
                    RequestTiming.run_id
                )
            ).all()
        )
    heads = ["model s", "GFLOP/s", "of peak", "wall s", "of peak"]
    print(
        f"{'run':12s} {'model':24s} {'backend':8s} {'tokens':>7s} "
        + " ".join(f"{h:>8s}" for h in heads)
    )
    for run in runs:
        path = Path(run.model_path)
        if not path.is_dir() or not list(path.glob("*.safetensors")):
            print(f"{run.run_id:12s} {run.model[:24]:24s} {run.backend:8s} (no safetensors)")
            continue
        params = parameter_count(path)
        tokens = run.prompt_tokens + run.completion_tokens
        flops = 2 * params * tokens
        model_s = busy.get(run.run_id) or 0.0
        in_model = flops / model_s if model_s else 0.0
        print(
            f"{run.run_id:12s} {run.model[:24]:24s} {run.backend:8s} {tokens:7d} "
            f"{model_s:8.2f} {in_model / 1e9:8.1f} {in_model / peak:8.2f} "
            f"{run.wall_s:7.2f} {flops / run.wall_s / peak:8.2f}"
        )


if __name__ == "__main__":
    main()
