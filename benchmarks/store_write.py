"""Store write: how long writing one finished run takes, by its size.

A run lands in the store in one transaction (bench.store.store.write_run): its tasks,
metrics, every sample and every request's timing. This builds runs of the given sizes
(multiple-choice shaped: four requests per sample, prompts of ~400 characters), writes
each into a fresh store and prints rows per second. Nothing here loads a model.

    python benchmarks/store_write.py [--samples 1000,10000] [--store-dir DIR | --url URL]

--url writes into an existing store (a PostgreSQL URL, say) instead of fresh SQLite files.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from common import load_average

from bench.records import (
    MetricRecord,
    ModelRef,
    RequestRecord,
    RunManifest,
    RunRecord,
    RunSettings,
    SampleRecord,
    TaskVersion,
)
from bench.store.store import open_store, write_run

REQUESTS_PER_SAMPLE = 4


def synthetic_run(samples: int) -> RunRecord:
    prompt = "Question: " + "which of these is the right answer? " * 10
    manifest = RunManifest(
        run_id=uuid.uuid4().hex[:12],
        model=ModelRef("synthetic", Path("/nonexistent"), "0" * 64, "local"),
        tasks=[TaskVersion("synthetic_mc", "0" * 64, "benchmarks", "multiple_choice", samples)],
        settings=RunSettings(),
        versions={"bench": "benchmark"},
        hardware={"cpu_count": 2},
        started_at=datetime.now(UTC),
        load_s=1.0,
        wall_s=60.0,
        prompt_tokens=100 * samples,
        completion_tokens=2 * samples,
    )
    sample_rows = [
        SampleRecord(
            "synthetic_mc",
            doc,
            "none",
            prompt,
            '["0"]',
            "[[-1.5, false]]",
            "0",
            {"acc": 1.0, "acc_norm": 0.0},
            0.05,
            100,
            2,
        )  # fmt: skip
        for doc in range(samples)
    ]
    request_rows = [
        RequestRecord(
            "synthetic_mc", doc, idx, "loglikelihood", 0.01, 100, 2, 8, None, None, "backend"
        )
        for doc in range(samples)
        for idx in range(REQUESTS_PER_SAMPLE)
    ]
    metric = MetricRecord("synthetic_mc", "acc", "none", 0.5, 0.01, True, samples, True)
    return RunRecord(manifest, [metric], sample_rows, request_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default="1000,10000")
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-store-write-"))
    print(f"before: {load_average()}")
    for size in [int(n) for n in args.samples.split(",")]:
        record = synthetic_run(size)
        engine = open_store(args.url or f"sqlite:///{work / f'store-{size}.db'}")
        start = time.perf_counter()
        write_run(engine, record)
        seconds = time.perf_counter() - start
        rows = len(record.samples) + len(record.requests)
        print(
            f"{size:7d} samples + {len(record.requests):7d} request timings: {seconds:6.2f} s "
            f"({rows / seconds:,.0f} rows/s)"
        )
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
