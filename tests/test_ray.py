"""`--executor ray` on a real Ray cluster on loopback: same scores as a local run, a
killed worker's units are retried, and `--dry-run` shows units and their resources."""

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from bench.models.packs import PACKS
from bench.store.schema import Metric, Run, Sample
from bench.store.store import open_store, read_table
from tests.conftest import BASICS_TASKS, REPO, run_bench
from tests.servers import free_port

SMOL = "smollm2-135m-instruct"
RAY = shutil.which("ray", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="module")
def ray_cluster():
    """A real Ray head node on this machine with two CPUs and a small object store."""
    if RAY is None:
        pytest.skip("ray is not installed (pip install -e '.[ray]')")
    from ray._private.services import get_node_ip_address

    # Ray's driver rewrites 127.0.0.1 to the node's own address (loopback where the machine
    # has no route out, its interface's address where it has one); the head must listen
    # where the driver will look, or `--ray-address 127.0.0.1:P` cannot connect.
    node_ip = get_node_ip_address()
    port = free_port()
    # A short folder of our own (Ray's socket paths must stay short); every process of
    # this cluster names it, so teardown stops exactly these.
    temp = tempfile.mkdtemp(prefix="bray", dir="/tmp")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),  # workers import this checkout's bench
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    start = [
        RAY,
        "start",
        "--head",
        "--node-ip-address",
        node_ip,
        "--port",
        str(port),
        "--num-cpus",
        "2",
        "--object-store-memory",
        str(200 * 2**20),
        "--include-dashboard",
        "false",
        "--disable-usage-stats",
        "--temp-dir",
        temp,
    ]
    try:
        subprocess.run(start, check=True, env=env, capture_output=True, timeout=180)
        yield f"{node_ip}:{port}"
    finally:
        _stop_cluster(temp)
        shutil.rmtree(temp, ignore_errors=True)


def _stop_cluster(temp: str) -> None:
    import psutil

    ours = {}
    for process in psutil.process_iter(["cmdline"]):
        if any(temp in part for part in process.info["cmdline"] or []):
            # Their children (agents, workers) retitle themselves "ray::..."; take them too.
            for member in [process, *process.children(recursive=True)]:
                ours[member.pid] = member
    ours = list(ours.values())
    for process in ours:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(ours, timeout=15)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def scores(url: str) -> dict:
    engine = open_store(url)
    runs = read_table(engine, Run).set_index("run_id")
    metrics = read_table(engine, Metric)
    assert set(runs.status) == {"complete"}
    return {
        (runs.model[m.run_id], m.task, m.metric, m.filter): (m.value, m.stderr, m.n_samples)
        for m in metrics.itertuples()
    }


@pytest.mark.slow
def test_ray_run_scores_equal_local_run(ray_cluster, tmp_path, postgres):
    plan = ("--model", ",".join(PACKS), "--tasks", ",".join(BASICS_TASKS), "--limit", "6")
    local = f"sqlite:///{tmp_path / 'local.db'}"
    result = run_bench("run", *plan, "--store", local)
    assert result.returncode == 0, result.stderr[-3000:]
    # The Ray run writes to a shared PostgreSQL store, as a cluster would.
    shared = postgres.fresh_database("ray_parity")
    result = run_bench(
        "run",
        *plan,
        "--executor",
        "ray",
        "--ray-address",
        ray_cluster,
        "--shard-size",
        "4",
        "--store",
        shared,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Both models ran as units of at most 4 documents: 6 documents -> 2 units per task.
    assert len(re.findall(r": \d+ requests \(", result.stderr)) == 2 * 3 * 2

    here, there = scores(local), scores(shared)
    assert set(here) == set(there) and len(here) >= 2 * len(BASICS_TASKS)
    for key, (value, stderr, n) in here.items():
        other = there[key]
        assert other[2] == n == 6, key
        assert other[0] == pytest.approx(value, rel=1e-6, abs=1e-9, nan_ok=True), key
        if stderr is None:
            assert other[1] is None, key
        else:
            assert other[1] == pytest.approx(stderr, rel=1e-6, abs=1e-9, nan_ok=True), key
    samples = read_table(open_store(shared), Sample)
    assert len(samples) == len(PACKS) * len(BASICS_TASKS) * 6


@pytest.mark.slow
def test_killed_worker_is_replaced_and_every_sample_lands_once(ray_cluster, tmp_path):
    store = tmp_path / "killed.db"
    command = [
        sys.executable,
        "-m",
        "bench.launch",
        "run",
        "--model",
        SMOL,
        "--tasks",
        "basics_facts,basics_arith",
        "--limit",
        "12",
        "--shard-size",
        "3",
        "--executor",
        "ray",
        "--ray-address",
        ray_cluster,
        "--store",
        f"sqlite:///{store}",
    ]
    run = subprocess.Popen(
        command, cwd=REPO, env=os.environ.copy(), stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(run.stderr), daemon=True)
    reader.start()

    def worker_pid() -> int | None:
        for line in list(lines):
            found = re.search(r"worker ready on .*, pid (\d+)", line)
            if found:
                return int(found.group(1))
        return None

    def cached() -> int:
        try:
            with sqlite3.connect(store) as db:
                return db.execute("select count(*) from request_cache").fetchone()[0]
        except sqlite3.OperationalError:
            return 0  # not created yet

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and run.poll() is None:
        if worker_pid() and cached() > 0:  # a unit is done, the next is under way
            break
        time.sleep(0.1)
    victim = worker_pid()
    assert victim and run.poll() is None, "the run finished before a worker could be killed"
    os.kill(victim, signal.SIGKILL)
    assert run.wait(timeout=600) == 0, "".join(lines)[-3000:]
    reader.join(timeout=10)
    log = "".join(lines)

    # Units finished on a new worker process after the kill: Ray restarted it.
    pids = {int(p) for p in re.findall(r"pid (\d+) \[\d+/\d+\]", log)}
    assert pids - {victim}, log[-3000:]
    with sqlite3.connect(store) as db:
        ((status, sent, reused),) = db.execute(
            "select status, requests_sent, requests_reused from runs"
        ).fetchall()
        per_doc = db.execute(
            "select task, doc_id, count(*) from samples group by task, doc_id"
        ).fetchall()
        answered = db.execute("select count(*) from request_cache").fetchone()[0]
    assert status == "complete"
    assert sorted((t, d) for t, d, _ in per_doc) == sorted(
        (t, d) for t in ("basics_facts", "basics_arith") for d in range(12)
    )
    assert all(count == 1 for *_, count in per_doc)
    total = 12 * 4 + 12  # facts: 4 choices per document; arith: 1
    assert sent + reused == total == answered


def test_dry_run_shows_units_and_gpu_resources(tmp_path):
    store = tmp_path / "untouched.db"
    result = run_bench(
        "run",
        "--model",
        "some-org/some-70b-model",
        "--backend",
        "vllm",
        "--model-args",
        "tensor_parallel_size=2,pipeline_parallel_size=2",
        "--tasks",
        "basics_facts,basics_prose",
        "--executor",
        "ray",
        "--shard-size",
        "16",
        "--dry-run",
        "--store",
        f"sqlite:///{store}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if "some-org" in line]
    # basics_facts: 40 documents -> 0-15, 16-31, 32-39; basics_prose: 12 -> 0-11.
    assert len(rows) == 4, result.stdout
    for row, documents in zip(rows, ("0-15", "16-31", "32-39", "0-11"), strict=True):
        cells = [c.strip() for c in row.split("│")]
        assert documents in cells and "4" in cells, row  # 2 x 2 GPUs for one copy
    assert "executor ray" in result.stdout
    assert not store.exists()


def test_dry_run_local_and_bad_executor_input(tmp_path):
    result = run_bench(
        "run", "--model", SMOL, "--tasks", "basics_arith", "--limit", "5", "--dry-run"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "0-4" in result.stdout and "this process" in result.stdout
    bad = run_bench("run", "--model", SMOL, "--tasks", "basics_arith", "--ray-address", "x:1")
    assert bad.returncode == 2 and "--executor ray" in bad.stderr
    bad = run_bench("run", "--model", SMOL, "--tasks", "basics_arith", "--executor", "spark")
    assert bad.returncode == 2 and "unknown executor" in bad.stderr
