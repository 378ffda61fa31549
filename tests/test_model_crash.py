"""A model process that dies mid-run is reported in one line, every answer it gave stays
in the store, and running the same command again resumes from them."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import (
    REPO,
    assert_same_records,
    run_bench,
    run_records,
    start_bench,
    wait_for_cached_answers,
)

pytestmark = pytest.mark.slow
SMOL = "smollm2-135m-instruct"
# Scoring only (generation is slow on a busy CPU): 160 requests, of which the store gets
# the first 32 at once (RequestLog.flush_every); the model is killed soon after.
TASKS = ["basics_facts"]
LIMIT = 40
TOTAL_REQUESTS = LIMIT * 4  # 4 choices a document


def llama_cpp_imports() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except (ImportError, OSError):  # not installed, or its native library does not load
        return False
    return True


LLAMA_CPP = pytest.mark.skipif(
    not llama_cpp_imports(),
    reason="llama_cpp does not import: pip install -e '.[llamacpp]' (built portable)",
)


def query(store: Path, sql: str) -> list:
    with sqlite3.connect(store) as db:
        return db.execute(sql).fetchall()


def children(pid: int) -> list[int]:
    """The processes `pid` started, from whichever of its threads."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


@pytest.mark.parametrize(
    "backend",
    ["hf", pytest.param("llamacpp", marks=LLAMA_CPP)],
)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV], ids=lambda s: s.name)
def test_a_killed_model_process_is_reported_and_the_run_resumes(backend, sig, tmp_path):
    store = tmp_path / "crash.db"
    args = ["run", "--backend", backend, "--model", SMOL, "--tasks", ",".join(TASKS)]
    args += ["--limit", str(LIMIT), "--store", f"sqlite:///{store}"]
    run = start_bench(*args)
    stored = wait_for_cached_answers(store, run)
    assert run.poll() is None and stored, "the run ended before its model could be killed"
    # As a crash of its own ends it: SIGSEGV as llama.cpp's segfault, SIGKILL as the
    # out-of-memory killer's.
    (model_process,) = children(run.pid)
    os.kill(model_process, sig)
    _, stderr = run.communicate(timeout=120)

    assert run.returncode == 1, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    said = re.search(
        rf"the {backend} model process \(.+\) was killed by {sig.name}\b.* while answering "
        r"(\S+) doc (\d+); (\d+) answers are in the store: run the same command again to "
        r"resume",
        errors[0],
    )
    assert said, errors[0]
    task, doc_id, answered = said[1], int(said[2]), int(said[3])
    assert task in TASKS and doc_id < LIMIT
    # Every answer the model gave is in the store (requests with the same prompt share a
    # row), and any record of the run says it is partial.
    kept = query(store, "select count(*) from request_cache")[0][0]
    assert stored <= kept <= answered < TOTAL_REQUESTS
    assert {status for (status,) in query(store, "select status from runs")} <= {"partial"}

    # The same command again finishes the run, asking the model only for the rest.
    result = run_bench(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    ((sent, reused),) = query(
        store, "select requests_sent, requests_reused from runs where status = 'complete'"
    )
    assert reused >= answered and sent + reused == TOTAL_REQUESTS


@LLAMA_CPP
def test_llamacpp_runs_in_the_model_process_unless_turned_off(tmp_path):
    args = ["run", "--backend", "llamacpp", "--model", SMOL, "--limit", "3"]
    # Scoring and generation, on prompts built with the GGUF's own chat template.
    args += ["--tasks", "basics_facts,basics_arith", "--apply-chat-template"]
    records = {}
    for mode in ("1", "0"):
        store = f"sqlite:///{tmp_path / f'process-{mode}.db'}"
        trace = tmp_path / f"trace-{mode}.jsonl"
        result = subprocess.run(
            [sys.executable, "-m", "bench.launch", *args, "--store", store],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, "BENCH_MODEL_PROCESS": mode, "BENCH_TRACE": str(trace)},
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        marks = [json.loads(line) for line in trace.read_text().splitlines()]
        loaded_in = {m["pid"] for m in marks if m["event"] == "model_loaded"}
        cli = {m["pid"] for m in marks if m["event"] == "cli_run"}
        assert (loaded_in != cli) == (mode == "1")
        records[mode] = run_records(store)
    assert_same_records(records["1"], records["0"])
