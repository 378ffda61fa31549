"""`bench warm` (bench/warm): commands start in a fork of a process with their imports
done, and give exactly what a cold start gives."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import (
    BASICS_TASKS,
    REPO,
    assert_same_records,
    run_records,
    start_bench,
    wait_for_cached_answers,
)

SMOL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def warm_env(tmp_path_factory):
    """The environment of commands the warm process serves; it runs while the tests do."""
    env = {
        **os.environ,
        "BENCH_WARM_DIR": str(tmp_path_factory.mktemp("warm")),
        "BENCH_WARM": "1",
    }
    started = bench(env, "warm", "--idle-minutes", "20")
    assert started.returncode == 0, started.stderr[-2000:]
    yield env
    assert bench(env, "warm", "--stop").returncode == 0
    assert not list(Path(env["BENCH_WARM_DIR"]).glob("*.sock"))


def bench(env: dict, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.launch", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=900,
        **kwargs,
    )


def marks(trace: Path) -> list[dict]:
    """What the command wrote with BENCH_TRACE set; nothing if no mark was reached."""
    lines = trace.read_text().splitlines() if trace.exists() else []
    return [json.loads(line) for line in lines]


def pids(trace: Path, event: str) -> set[int]:
    return {m["pid"] for m in marks(trace) if m["event"] == event}


@pytest.mark.slow
def test_a_warm_run_records_what_a_cold_run_records(tmp_path, warm_env):
    records = {}
    for mode in ("cold", "warm"):
        store = f"sqlite:///{tmp_path / f'{mode}.db'}"
        trace = tmp_path / f"{mode}.jsonl"
        env = {**warm_env, "BENCH_TRACE": str(trace)}
        if mode == "cold":
            env["BENCH_WARM"] = "0"
        args = ("run", "--model", SMOL, "--tasks", ",".join(BASICS_TASKS), "--limit", "3")
        result = bench(env, *args, "--store", store)
        assert result.returncode == 0, result.stderr[-2000:]
        # The command's own output reached the client's stderr, as from a cold run.
        assert re.search(rf"run \w+: {SMOL}, 9 samples", result.stderr), result.stderr[-2000:]
        served = pids(trace, "warm_command")
        assert bool(served) == (mode == "warm")
        if served:
            # The command ran in the warm process's fork, its model in a fork of that.
            assert served == pids(trace, "cli_run")
            (model,) = pids(trace, "model_loaded")
            assert model not in served
        records[mode] = run_records(store)
    assert_same_records(records["warm"], records["cold"])


def test_a_command_starts_cold_unless_its_environment_matches(tmp_path, warm_env):
    trace = tmp_path / "trace.jsonl"
    for extra, served in (({}, True), ({"BENCH_TEST_OTHER": "1"}, False), ({}, True)):
        result = bench({**warm_env, **extra, "BENCH_TRACE": str(trace)}, "suites")
        assert result.returncode == 0, result.stderr[-2000:]
        assert "default" in result.stdout  # the client's stdout got the table
        assert bool(pids(trace, "warm_command")) == served
        trace.unlink(missing_ok=True)


def test_bad_input_exits_2_with_its_message_and_leaves_nothing_running(tmp_path, warm_env):
    trace = tmp_path / "trace.jsonl"
    result = bench(
        {**warm_env, "BENCH_TRACE": str(trace)},
        "run", "--model", SMOL, "--tasks", "basics_factz",
        "--store", f"sqlite:///{tmp_path / 's.db'}",
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown task 'basics_factz'" in result.stderr
    (group,) = pids(trace, "warm_command")
    assert pids(trace, "model_process_spawned") == {group}
    # The command's process group (it and its model process) is gone with it.
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)


@pytest.mark.slow
def test_ctrl_c_stops_a_warm_run_and_a_rerun_resumes(tmp_path, warm_env):
    store = tmp_path / "stopped.db"
    trace = tmp_path / "trace.jsonl"
    args = ["run", "--model", SMOL, "--tasks", "basics_arith", "--batch-size", "4"]
    args += ["--store", f"sqlite:///{store}"]
    # In its own process group, as a terminal's foreground job.
    client = start_bench(*args, env={**warm_env, "BENCH_TRACE": str(trace)}, start_new_session=True)
    kept = wait_for_cached_answers(store, client, timeout_s=300)
    assert client.poll() is None, "the run ended before it could be stopped"
    os.killpg(client.pid, signal.SIGINT)  # what Ctrl-C in its terminal does
    _, stderr = client.communicate(timeout=120)
    assert client.returncode == 130, stderr[-2000:]  # as a cold run's Ctrl-C exits
    (group,) = pids(trace, "warm_command")
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)
    result = bench({**warm_env, "BENCH_WARM": "0"}, *args)
    assert result.returncode == 0, result.stderr[-2000:]
    with sqlite3.connect(store) as db:
        ((sent, reused),) = db.execute(
            "select requests_sent, requests_reused from runs where status = 'complete'"
        ).fetchall()
    assert reused >= kept > 0 and sent + reused == 40


def state(pid: int) -> str:
    """A process's state letter from /proc (T: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.slow
def test_ctrl_z_suspends_the_warm_run_and_fg_resumes_it(tmp_path, warm_env):
    trace = tmp_path / "trace.jsonl"
    client = start_bench(
        "run", "--model", SMOL, "--tasks", "basics_arith",
        "--store", f"sqlite:///{tmp_path / 's.db'}",
        env={**warm_env, "BENCH_TRACE": str(trace)},
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not pids(trace, "first_request"):
        time.sleep(0.1)
    (command,) = pids(trace, "warm_command")
    os.killpg(client.pid, signal.SIGTSTP)  # what Ctrl-Z in its terminal does
    time.sleep(1)
    assert state(client.pid) == "T" and state(command) == "T"
    os.killpg(client.pid, signal.SIGCONT)  # the shell's fg
    _, stderr = client.communicate(timeout=300)
    assert client.returncode == 0, stderr[-2000:]
    assert re.search(rf"run \w+: {SMOL}, 40 samples", stderr), stderr[-2000:]
