"""The latency probe on real models: llama.cpp in-process after a run (bench run --latency),
priced from the store. The probe through a vLLM server is in test_backends.py, beside the
other tests of that server (one server start for all of them)."""

import json

import pandas as pd
import pytest
from sqlalchemy import text

from bench.hardware.profiles import load_profiles
from bench.metrics.cost import cost
from tests.conftest import BASICS, read_table, run_bench


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
    run = read_table(store, "runs").iloc[0]
    probe = read_table(store, "latency_probes").iloc[0]
    assert probe["run_id"] == run["run_id"] and probe["backend"] == "llamacpp"
    assert run["hardware_profile"] == "cpu-2core" and run["model_params"] > 100_000_000
    assert pd.isna(run["energy_j"]) and "NVML" in run["energy_note"]
    assert len(read_table(store, "probe_requests")) == 4

    report = run_bench("report", "--include-limited", "--store", store,
                       "--out", str(tmp_path / "r"), "--format", "json")  # fmt: skip
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
    runs = read_table(url, "runs")  # open_store upgrades to the newest revision
    assert list(runs["run_id"]) == ["r0"] and runs["hardware_profile"].isna().all()
    assert read_table(url, "probe_levels").empty
