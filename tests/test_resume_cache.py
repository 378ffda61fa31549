"""Answers reach the store as they arrive: a killed run resumes, a rerun asks nothing."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.conftest import BASICS_TASKS, REPO, run_bench

pytestmark = pytest.mark.slow
SMOL = "smollm2-135m-instruct"
TOTAL_REQUESTS = 40 * 4 + 40 + 12  # facts: 4 choices each; arith: 1; prose: 1


def query(store, sql):
    with sqlite3.connect(store) as db:
        return db.execute(sql).fetchall()


def test_identical_rerun_makes_zero_model_calls(tmp_path):
    store = tmp_path / "rerun.db"
    args = (
        "run",
        "--model",
        SMOL,
        "--tasks",
        ",".join(BASICS_TASKS),
        "--limit",
        "6",
        "--store",
        f"sqlite:///{store}",
    )
    for _ in range(2):
        result = run_bench(*args)
        assert result.returncode == 0, result.stderr[-2000:]
    first, second = query(
        store, "select run_id, requests_sent, requests_reused from runs order by started_at"
    )
    assert first[1:] == (6 * 4 + 6 + 6, 0)
    assert second[1:] == (0, first[1])  # every answer came from the store
    scores = query(store, "select run_id, task, metric, value, stderr from metrics")
    by_run = {
        run: sorted(row[1:] for row in scores if row[0] == run) for run, *_ in (first, second)
    }
    assert by_run[first[0]] == by_run[second[0]]


def test_run_killed_mid_way_resumes_without_asking_again(tmp_path):
    store = tmp_path / "resume.db"
    args = [
        sys.executable,
        "-m",
        "bench.launch",
        "run",
        "--model",
        SMOL,
        "--tasks",
        ",".join(BASICS_TASKS),
        "--batch-size",
        "4",
        "--store",
        f"sqlite:///{store}",
    ]
    victim = subprocess.Popen(
        args,
        cwd=REPO,
        env=os.environ.copy(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    cached = 0
    while time.monotonic() < deadline and victim.poll() is None:
        if store.exists():
            try:
                cached = query(store, "select count(*) from request_cache")[0][0]
            except sqlite3.OperationalError:
                cached = 0  # the table is not there yet
        if cached >= 64:
            break
        time.sleep(0.2)
    assert victim.poll() is None, "the run finished before it could be killed"
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    kept = query(store, "select count(*) from request_cache")[0][0]
    assert 64 <= kept < TOTAL_REQUESTS
    assert query(store, "select count(*) from runs") == [(0,)]

    result = run_bench(*args[3:])
    assert result.returncode == 0, result.stderr[-2000:]
    ((status, sent, reused),) = query(
        store, "select status, requests_sent, requests_reused from runs"
    )
    assert status == "complete"
    assert (reused, sent) == (kept, TOTAL_REQUESTS - kept)  # nothing stored was asked again
    samples = query(
        store, "select task, doc_id, filter, count(*) from samples group by task, doc_id, filter"
    )
    assert len(samples) == 40 + 40 + 12 and all(row[3] == 1 for row in samples)
