"""The store on SQLite and on a real PostgreSQL server: runs, cache, concurrent writers."""

import multiprocessing

from bench import results
from bench.report.leaderboard import leaderboard
from bench.store.cache import RequestCache
from bench.store.store import open_store, write_run
from tests.conftest import run_bench
from tests.test_leaderboard import record


def test_runs_round_trip_and_delete(store_url):
    engine = open_store(store_url)
    write_run(engine, record("r1", "model-a", 0.6, 40.0, minutes=0))
    write_run(engine, record("r2", "model-b", 0.4, 30.0, minutes=1))
    loaded = results.load(store_url)
    assert sorted(loaded.runs["run_id"]) == ["r1", "r2"]
    assert list(leaderboard(engine)["model"]) == ["model-a", "model-b"]
    assert results.delete_run(store_url, "r1")
    assert set(results.load(store_url).samples["run_id"]) == {"r2"}


def test_request_cache_keeps_first_answer(store_url):
    cache = RequestCache(open_store(store_url), "ns")
    key = cache.key("loglikelihood", ["ctx", " cont"])
    timing = {
        "request_type": "loglikelihood",
        "wall_s": 0.1,
        "prompt_tokens": 3,
        "completion_tokens": 1,
        "batch_size": 1,
    }
    cache.put_many([(key, "loglikelihood", [-1.5, True], timing)])
    cache.put_many([(key, "loglikelihood", [-9.0, False], timing)])  # a duplicate is ignored
    assert cache.get_many([key, "missing"]) == {key: ([-1.5, True], timing)}
    assert (
        RequestCache(open_store(store_url), "other").key("loglikelihood", ["ctx", " cont"]) != key
    )


def _write_runs(url: str, worker: int) -> None:
    engine = open_store(url)
    for n in range(5):
        write_run(engine, record(f"w{worker}-{n}", f"model-{worker}", 0.5, 10.0, minutes=n))


def test_four_processes_write_at_once(store_url):
    open_store(store_url)  # schema first, as `bench run` does before it evaluates
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_runs, args=(store_url, w)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    loaded = results.load(store_url)
    assert sorted(loaded.runs["run_id"]) == sorted(f"w{w}-{n}" for w in range(4) for n in range(5))
    assert len(loaded.metrics) == 20 * 3 and len(loaded.samples) == 20 * 5


def test_bench_run_into_postgres(postgres, tmp_path):
    url = postgres.fresh_database("runs")
    args = (
        "run",
        "--model",
        "smollm2-135m-instruct",
        "--tasks",
        "basics_facts,basics_arith",
        "--limit",
        "3",
        "--store",
        url.replace("postgresql+psycopg://", "postgresql://"),
    )
    for _ in range(2):
        result = run_bench(*args)
        assert result.returncode == 0, result.stderr[-2000:]
    runs = results.load(url).runs.sort_values("started_at")
    assert list(runs["requests_sent"]) == [3 * 4 + 3, 0]  # the rerun comes from the cache
    report = run_bench("report", "--include-limited", "--store", url, "--out", str(tmp_path))
    assert report.returncode == 0
    assert "smollm2-135m-instruct" in (tmp_path / "leaderboard.md").read_text()


def test_store_is_versioned_by_alembic(store_url):
    from sqlalchemy import text

    from bench.store.migrate import HEAD_REVISION, head_revision

    engine = open_store(store_url)
    open_store(store_url)  # opening again is a no-op
    with engine.connect() as connection:
        (version,) = connection.execute(text("select version_num from alembic_version")).one()
    assert version == head_revision() == HEAD_REVISION == "0005"
