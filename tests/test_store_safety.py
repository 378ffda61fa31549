"""The store under concurrent first runs, and a SQLite store shared as one file."""

import multiprocessing
import shutil
import sqlite3

import pytest

from bench.store.store import open_store, write_run
from tests.conftest import run_bench, start_bench

PROCESSES = 3


def record(*args, **kwargs):
    from tests.test_leaderboard import record  # not at the top: spawned workers skip it

    return record(*args, **kwargs)


def run_ids(db) -> list[str]:
    """The runs a SQLite file holds, read with sqlite3 alone."""
    with sqlite3.connect(db) as connection:
        return sorted(row[0] for row in connection.execute("select run_id from runs"))


def _open_at_once(url: str, barrier) -> None:
    barrier.wait()  # imports done in every process: they open the store at one moment
    open_store(url)


def test_processes_create_a_new_store_at_once(store_url):
    """Without a lock, each process saw no schema and migrated: 'duplicate column name',
    'table already exists' (SQLite) or a unique violation in pg_type (PostgreSQL)."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    workers = [
        context.Process(target=_open_at_once, args=(store_url, barrier)) for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    write_run(open_store(store_url), record("r1", "model-a", 0.5, 10.0, minutes=0))


@pytest.mark.slow
def test_three_first_runs_at_once_all_land(tmp_path):
    url = f"sqlite:///{tmp_path / 'new' / 'bench.db'}"
    args = ("run", "--model", "smollm2-135m-instruct", "--tasks", "basics_facts")
    runs = [start_bench(*args, "--limit", "2", "--store", url) for _ in range(3)]
    for run in runs:
        _, stderr = run.communicate(timeout=900)
        assert run.returncode == 0, stderr[-2000:]
    listed = run_bench("results", "list", "--store", url)
    assert listed.returncode == 0, listed.stderr
    ids = run_ids(tmp_path / "new" / "bench.db")
    assert len(ids) == 3
    assert all(run_id in listed.stdout for run_id in ids)


def test_copy_of_the_file_alone_holds_the_runs(tmp_path):
    """What users do to share a store: copy bench.db while a process (a notebook, a
    long run) still has the store open, so SQLite has not checkpointed on close."""
    db = tmp_path / "bench.db"
    engine = open_store(f"sqlite:///{db}")
    write_run(engine, record("r1", "model-a", 0.6, 40.0, minutes=0))
    write_run(engine, record("r2", "model-b", 0.4, 30.0, minutes=1))
    with engine.connect():  # still open: the write-ahead log stays beside the file
        assert (tmp_path / "bench.db-wal").exists()
        shared = tmp_path / "shared"
        shared.mkdir()
        shutil.copyfile(db, shared / "bench.db")
    assert run_ids(shared / "bench.db") == ["r1", "r2"]


def test_store_backup_holds_every_run_and_keeps_an_existing_file(tmp_path):
    from bench.store.backup import backup_store
    from bench.store.cache import RequestCache

    db = tmp_path / "bench.db"
    url = f"sqlite:///{db}"
    engine = open_store(url)
    for n in range(3):
        write_run(engine, record(f"r{n}", "model-a", 0.5, 10.0, minutes=n))
    # Written after the last checkpoint: it lies in bench.db-wal, which a backup must read.
    cache = RequestCache(engine, "ns")
    key = cache.key("loglikelihood", ["ctx", " cont"])
    timing = {"request_type": "loglikelihood", "wall_s": 0.1, "prompt_tokens": 3}
    timing |= {"completion_tokens": 1, "batch_size": 1}
    cache.put_many([(key, "loglikelihood", [-1.5, True], timing)])

    dest = tmp_path / "backups" / "copy.db"
    made = run_bench("store", "backup", str(dest), "--store", url)
    assert made.returncode == 0, made.stderr
    assert run_ids(dest) == ["r0", "r1", "r2"]
    with sqlite3.connect(dest) as copy:
        assert copy.execute("select key from request_cache").fetchall() == [(key,)]
        assert copy.execute("pragma journal_mode").fetchone() == ("delete",)

    write_run(engine, record("r3", "model-a", 0.5, 10.0, minutes=3))
    refused = run_bench("store", "backup", str(dest), "--store", url)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"error: {dest} exists: pass --force to replace it"
    ]
    assert run_ids(dest) == ["r0", "r1", "r2"]  # untouched

    (tmp_path / "backups" / "copy.db-wal").write_bytes(b"a stale log of another store")
    assert backup_store(url, dest, force=True).runs == 4
    assert run_ids(dest) == ["r0", "r1", "r2", "r3"]
    assert not (tmp_path / "backups" / "copy.db-wal").exists()


def test_store_backup_of_postgresql_names_pg_dump_without_the_password(tmp_path):
    result = run_bench(
        "store",
        "backup",
        str(tmp_path / "copy.db"),
        "--store",
        "postgresql://me:s3cret@127.0.0.1:9/bench?sslmode=require",
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "pg_dump" in line
    assert "postgresql://127.0.0.1:9/bench" in line and "s3cret" not in line
    assert not (tmp_path / "copy.db").exists()
