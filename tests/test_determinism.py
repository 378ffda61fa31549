"""Two identical runs on the same machine give identical per-sample results, bit for bit.

The same code on the same machine with the same settings: exact equality is what is
promised here (unlike two code paths, or two machines, which agree within a tolerance).
The second run shares the machine with a busy process, as a run beside others does: a
thread count or a kernel that followed the machine's load would change the last bits of
a log-likelihood. Each run computes every answer afresh (its own store, --no-cache), with
multiple-choice rows of several lengths in padded batches and rolling windows.
"""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.conftest import read_table, run_bench

TASKS = "basics_facts,basics_prose"


def run(store: Path) -> str:
    url = f"sqlite:///{store}"
    result = run_bench(
        "run",
        "--model",
        "smollm2-135m-instruct",
        "--tasks",
        TASKS,
        "--limit",
        "6",
        "--batch-size",
        "4",
        "--no-cache",
        "--store",
        url,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return url


def per_sample(url: str) -> pd.DataFrame:
    columns = ["task", "doc_id", "filter", "prompt", "response", "raw_response", "scores"]
    samples = read_table(url, "samples")[columns]
    return samples.sort_values(columns[:3]).reset_index(drop=True)


def test_identical_runs_give_identical_per_sample_results(smollm2_dir, tmp_path):
    first = run(tmp_path / "first.db")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        second = run(tmp_path / "second.db")
    finally:
        busy.kill()
        busy.wait()

    ours, theirs = per_sample(first), per_sample(second)
    assert len(ours) == 6 + 6
    # raw_response holds each request's log-likelihood as JSON (repr: every bit).
    assert any("-" in r for r in ours["raw_response"])
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)

    # The manifest says what holds, and that both runs held it the same way.
    recorded = [json.loads(read_table(url, "runs")["versions"][0]) for url in (first, second)]
    determinism = [versions["determinism"] for versions in recorded]
    assert determinism[0] == determinism[1]
    assert determinism[0]["threads"] >= 1
    assert determinism[0]["deterministic_algorithms"] is True
    assert "4 per batch" in determinism[0]["batching"]
    assert "identical per-sample results" in determinism[0]["holds"]
