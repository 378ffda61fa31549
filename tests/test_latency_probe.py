"""The latency probe on real models: a vLLM server on loopback at concurrency 1 and 8,
and llama.cpp in-process after a run (bench run --latency), priced from the store."""

import json

import pandas as pd
import pytest
from sqlalchemy import text

from bench.hardware.profiles import load_profiles
from bench.metrics.cost import cost
from bench.metrics.latency import LatencySummary, Timeline, summarize
from bench.store.store import open_store
from tests.conftest import BASICS, run_bench


@pytest.fixture(scope="module")
def vllm_url(smollm2_dir, tmp_path_factory):
    from tests.servers import vllm_server

    server = vllm_server(smollm2_dir, tmp_path_factory.mktemp("vllm") / "server.log").start()
    yield server.url
    server.stop()


def read(url: str, table: str) -> pd.DataFrame:
    with open_store(url).connect() as connection:
        return pd.read_sql(text(f"select * from {table}"), connection)


@pytest.mark.slow
def test_probe_through_vllm_server_scales_with_concurrency(vllm_url, tmp_path):
    store = f"sqlite:///{tmp_path / 'store.db'}"
    result = run_bench(
        "probe", "--model", "smollm2-135m-instruct", "--tasks", "basics_facts",
        "--include-path", str(BASICS), "--backend", "openai", "--base-url", vllm_url,
        "--limit", "8", "--num-prompts", "16", "--output-len", "16",
        "--concurrency-levels", "1,8", "--slo", "ttft=5000", "--hardware", "cpu-2core",
        "--store", store,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    levels = read(store, "probe_levels").sort_values("level")
    assert list(levels["concurrency"]) == [1, 8]
    summaries = [LatencySummary.from_dict(json.loads(s)) for s in levels["summary"]]
    assert all(s.completed == 16 and s.failed == 0 for s in summaries)
    # The point of batching: eight in flight serve more tokens per second than one.
    assert summaries[1].output_throughput > summaries[0].output_throughput
    assert summaries[1].request_throughput > summaries[0].request_throughput

    requests = read(store, "probe_requests")
    probe = read(store, "latency_probes").iloc[0]
    assert bool(probe["ignore_eos"]) and probe["hardware_profile"] == "cpu-2core"
    # Fixed output length: vLLM's ignore_eos gives exactly 16 tokens, counted by usage.
    assert set(requests["completion_tokens"]) == {16}
    assert set(requests["tokens_counted_by"]) == {"usage"}
    for level, summary in zip(levels.itertuples(), summaries, strict=True):
        mine = requests[requests["level"] == level.level]
        timelines = [
            Timeline(r.e2e_s, r.completion_tokens, r.ttft_s, tuple(json.loads(r.chunk_times)),
                     r.prompt_tokens)
            for r in mine.itertuples()
        ]  # fmt: skip
        # The stored summary follows from the stored requests.
        again = summarize(timelines, level.duration_s, None)
        assert again.ttft == summary.ttft and again.itl == summary.itl
        assert summary.goodput is not None
        assert all(0 < r.ttft_s <= r.e2e_s for r in mine.itertuples())

    report = run_bench("report", "--store", store, "--out", str(tmp_path / "r"))
    assert report.returncode == 0, report.stderr
    board = (tmp_path / "r" / "leaderboard.md").read_text()
    assert "## Latency probes" in board and "concurrency 8" in board
    assert "Latency probes" in (tmp_path / "r" / "site" / "index.html").read_text()


@pytest.mark.slow
def test_run_with_latency_on_llamacpp_in_process_and_its_cost(tmp_path):
    store = f"sqlite:///{tmp_path / 'store.db'}"
    result = run_bench(
        "run", "--model", "smollm2-135m-instruct", "--backend", "llamacpp",
        "--tasks", "basics_arith", "--include-path", str(BASICS), "--limit", "4",
        "--latency", "--concurrency-levels", "1", "--num-prompts", "4", "--warmup", "1",
        "--hardware", "cpu-2core", "--store", store,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = read(store, "runs").iloc[0]
    probe = read(store, "latency_probes").iloc[0]
    assert probe["run_id"] == run["run_id"] and probe["backend"] == "llamacpp"
    assert run["hardware_profile"] == "cpu-2core" and run["model_params"] > 100_000_000
    assert pd.isna(run["energy_j"]) and "NVML" in run["energy_note"]
    assert len(read(store, "probe_requests")) == 4

    report = run_bench("report", "--store", store, "--out", str(tmp_path / "r"),
                       "--format", "json")  # fmt: skip
    assert report.returncode == 0, report.stderr
    shown = json.loads((tmp_path / "r" / "leaderboard.json").read_text())[0]
    # Recomputed by hand from the stored wall time and tokens and the shipped profile.
    price_s = load_profiles()["cpu-2core"].price_per_hour / 3600
    assert shown["cost_usd"] == pytest.approx(price_s * run["wall_s"])
    assert shown["usd_per_1m_output"] == pytest.approx(
        price_s / (run["completion_tokens"] / run["wall_s"]) * 1e6
    )
    expected = cost(load_profiles()["cpu-2core"], run["wall_s"], run["prompt_tokens"],
                    run["completion_tokens"], 4, shown["value"] * 4)  # fmt: skip
    if expected.per_correct is not None:
        assert shown["usd_per_correct"] == pytest.approx(expected.per_correct)
    assert shown["ttft_p50_s"] > 0  # llama.cpp streams: TTFT of the run's own requests


def test_probe_refuses_non_streaming_backend(tmp_path):
    result = run_bench(
        "probe", "--model", "smollm2-135m-instruct", "--tasks", "basics_arith",
        "--backend", "hf", "--store", f"sqlite:///{tmp_path / 's.db'}",
    )  # fmt: skip
    assert result.returncode == 2 and "streaming backend" in result.stderr


def test_store_at_revision_0001_is_upgraded_keeping_its_runs(tmp_path):
    from alembic import command
    from sqlalchemy import create_engine

    from bench.store.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    with create_engine(url).begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
        connection.execute(
            text(
                "insert into runs values ('r0', 'm', '/m', 'local', 'x', 'hf', '{}', '{}', "
                "'{}', '2026-01-01 00:00:00', 1.0, 10.0, 90, 10, 10.0, 'complete', null, 5, 0)"
            )
        )
    runs = read(url, "runs")  # open_store upgrades to the newest revision
    assert list(runs["run_id"]) == ["r0"] and runs["hardware_profile"].isna().all()
    assert read(url, "probe_levels").empty
