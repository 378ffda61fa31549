"""The hf model in its own process (bench/backends/process.py): same records as in one
process, and a failure there is reported, with the answers already in kept."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import (
    BASICS_TASKS,
    REPO,
    assert_same_records,
    run_bench,
    run_records,
)

pytestmark = pytest.mark.slow
SMOL = "smollm2-135m-instruct"


def run_with(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.launch", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
        timeout=900,
    )


def test_records_equal_an_in_process_run(tmp_path):
    records = {}
    for mode in ("1", "0"):
        store = f"sqlite:///{tmp_path / f'process-{mode}.db'}"
        trace = tmp_path / f"trace-{mode}.jsonl"
        args = ("run", "--model", SMOL, "--tasks", ",".join(BASICS_TASKS), "--limit", "3")
        result = run_with(
            {"BENCH_MODEL_PROCESS": mode, "BENCH_TRACE": str(trace)}, *args, "--store", store
        )
        assert result.returncode == 0, result.stderr[-2000:]
        marks = [json.loads(line) for line in trace.read_text().splitlines()]
        loaded_in = {m["pid"] for m in marks if m["event"] == "model_loaded"}
        cli = {m["pid"] for m in marks if m["event"] == "cli_run"}
        # The model loaded in a child process only where asked, started by the `bench`
        # command before the CLI's own imports.
        assert (loaded_in != cli) == (mode == "1")
        if mode == "1":
            (spawned,), (run,) = times(marks, "model_process_spawned"), times(marks, "cli_run")
            assert spawned < run
        records[mode] = run_records(store)
    assert_same_records(records["1"], records["0"])


def times(marks: list[dict], event: str) -> list[float]:
    return [m["t"] for m in marks if m["event"] == event]


def test_bad_options_stop_the_model_process_started_for_them(tmp_path):
    marker = f"BENCH_TEST_MARKER={tmp_path}"
    trace = tmp_path / "trace.jsonl"
    env = {"BENCH_TRACE": str(trace), marker.split("=")[0]: str(tmp_path)}
    for bad in (["--batch-size", "eight"], ["--tasks", "basics_factz"]):
        result = run_with(
            env, "run", "--model", SMOL, *bad, "--store", f"sqlite:///{tmp_path}/s.db"
        )
        assert result.returncode == 2, result.stderr[-2000:]
        # It was started, and is gone as soon as bench exits.
        assert times([json.loads(line) for line in trace.read_text().splitlines()],
                     "model_process_spawned")  # fmt: skip
        assert not processes_with(marker)
        trace.unlink()


# bench.api.run from Python with sys.stderr redirected, as in a notebook cell.
REDIRECTED = """
import contextlib, io, sys
from bench import api
from bench.records import RunPlan, RunSettings
cell = io.StringIO()
with contextlib.redirect_stderr(cell):
    plan = RunPlan(models=[sys.argv[1]], tasks=["basics_facts"], settings=RunSettings(limit=2))
    api.run(plan, store=sys.argv[2])
print(cell.getvalue())
"""


def test_the_model_process_writes_where_sys_stderr_points(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", REDIRECTED, SMOL, f"sqlite:///{tmp_path / 'cell.db'}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # The child's weights progress bar reached the redirected stream, not fd 2.
    assert "Loading weights" in result.stdout
    assert "Loading weights" not in result.stderr


def processes_with(environment_item: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and environment_item.encode() in (
                (entry / "environ").read_bytes().split(b"\0")
            ):
                found.append(int(entry.name))
        except OSError:
            pass  # gone, or not ours
    return found


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_a_model_that_fails_to_load_is_reported(tmp_path, smollm2_dir):
    broken = tmp_path / "broken-weights"
    broken.mkdir()
    for item in smollm2_dir.iterdir():
        if item.suffix != ".safetensors":
            (broken / item.name).symlink_to(item)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    result = run_bench(
        "run", "--model", str(broken), "--tasks", "basics_facts", "--limit", "2",
        "--store", f"sqlite:///{tmp_path / 'broken.db'}",
    )  # fmt: skip
    assert result.returncode != 0
    assert "in the model process" in result.stderr, result.stderr[-2000:]


def test_a_partial_run_keeps_the_first_documents_answered():
    from lm_eval.api.instance import Instance

    from bench.backends.timing import RequestLog, RequestTiming

    log = RequestLog()
    asked = [
        Instance("generate_until", {}, ("q", {}), idx=0, metadata=(task, doc, 1))
        for task, docs in (("a", range(4)), ("b", range(3)))
        for doc in docs
    ]
    log.reuse(asked, "generate_until")
    for instance in asked:
        # a: documents 0, 1 and 3 answered; b: 1 and 2, not 0.
        if (instance.task_name, instance.doc_id) not in {("a", 2), ("b", 0)}:
            log.add(instance, RequestTiming("generate_until", 0.1, 1, 1, 1), "x")
    # lm-eval replays a subset as documents 0..n-1: only a first run of them is kept.
    assert log.answered_docs() == {"a": [0, 1]}
