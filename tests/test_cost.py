"""Cost figures follow from the stored wall time, tokens and the hardware profile, and a
changed price changes the report, never the stored measurements."""

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from bench.errors import BadInput
from bench.hardware.profiles import choose_profile, load_profiles
from bench.metrics.cost import cost, mbu, mfu
from bench.records import (
    MetricRecord,
    ModelRef,
    RunManifest,
    RunRecord,
    RunSettings,
    SampleRecord,
    TaskVersion,
)
from bench.report.leaderboard import leaderboard, long_frame
from bench.store.store import open_store, write_run
from tests.conftest import run_bench


def profile_file(path: Path, price: float) -> Path:
    path.write_text(
        "profiles:\n"
        f"  - name: test-box\n    price_per_hour: {price}\n"
        "    peak_flops: 1.0e12\n    memory_bandwidth_bytes_s: 1.0e10\n"
    )
    return path


def a_run(correct=(1, 1, 0, 0)) -> RunRecord:
    """10 s of evaluation, 900 prompt and 100 completion tokens, accuracy 0.5 on 4 docs."""
    manifest = RunManifest(
        run_id="r1",
        model=ModelRef("model-a", Path("/models/a"), "0" * 64, "local"),
        tasks=[TaskVersion("mc", "a" * 64, "mc.yaml", "multiple_choice", len(correct))],
        settings=RunSettings(),
        versions={},
        hardware={"cpu_count": 2},
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        load_s=3.0,
        wall_s=10.0,
        prompt_tokens=900,
        completion_tokens=100,
        hardware_profile="test-box",
        energy_note="no NVIDIA GPU (NVML unavailable: ModuleNotFoundError)",
        model_params=1_000_000,
        weight_bytes=4_000_000,
        kv_bytes_per_token=1000,
    )
    acc = sum(correct) / len(correct)
    samples = [
        SampleRecord("mc", d, "none", "Q?", "[]", "[]", "a", {"acc": float(c)}, 0.1, 225, 25)
        for d, c in enumerate(correct)
    ]
    return RunRecord(
        manifest, [MetricRecord("mc", "acc", "none", acc, 0.2, True, len(correct), True)], samples
    )


def test_cost_formulas_by_hand():
    profiles = load_profiles()
    box = replace(profiles["cpu-2core"], price_per_hour=36.0)  # $0.01 per second
    c = cost(box, wall_s=10, input_tokens=900, output_tokens=100, samples=4, correct=2)
    assert c.total_usd == pytest.approx(0.1)
    assert c.per_1m_output == pytest.approx(0.01 / 10 * 1e6)  # 10 output tokens/s
    assert c.per_1m_input == pytest.approx(0.01 / 90 * 1e6)
    assert c.per_1k_samples == pytest.approx(25.0)
    assert c.per_correct == pytest.approx(0.05)
    endpoint = profiles["hosted-example"]
    e = cost(endpoint, 10, 2_000_000, 1_000_000, samples=4, correct=2)
    assert e.total_usd == pytest.approx(2 * 0.10 + 1 * 0.30)
    assert (e.per_1m_input, e.per_1m_output) == (0.10, 0.30)
    # MFU: 2 x 1e6 params x 1000 tokens / 10 s = 2e8 FLOP/s against 1e12.
    box = replace(box, peak_flops=1e12, memory_bandwidth_bytes_s=1e10)
    assert mfu(box, 1_000_000, 1000, 10) == pytest.approx(2e-4)
    # MBU: (4e6 weight bytes + 1000 bytes/token x 100 tokens x 2 sequences) per 10 ms step.
    assert mbu(box, 4_000_000, 1000, 100, 0.01, 2) == pytest.approx(4.2e8 / 1e10)
    assert cost(None, 10, 1, 1).total_usd is None


def test_report_recomputes_cost_and_a_new_price_changes_only_the_report(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    write_run(engine, a_run())
    with engine.connect() as connection:
        stored = connection.execute(text("select * from runs")).mappings().one()
    assert stored["hardware_profile"] == "test-box"
    assert "price" not in json.dumps({k: str(v) for k, v in stored.items()})

    cheap = load_profiles(profile_file(tmp_path / "hw.yaml", 36.0))  # $0.01 per second
    row = leaderboard(engine, profiles=cheap).iloc[0]
    assert row["output tok/s"] == "10.0"  # 100 completion tokens / 10 s, from the store
    assert row["$/1M output tok"] == "1,000.00"  # 0.01 / 10 x 1e6
    assert row["$/correct"] == "0.05"  # $0.10 / (0.5 x 4)
    numbers = long_frame(engine, profiles=cheap).iloc[0]
    assert numbers["cost_usd"] == pytest.approx(0.01 * 10)
    assert numbers["usd_per_1m_input"] == pytest.approx(0.01 / 90 * 1e6)
    assert numbers["usd_per_1k_samples"] == pytest.approx(0.1 / 4 * 1000)
    assert numbers["mfu"] == pytest.approx(2 * 1e6 * 1000 / 10 / 1e12)
    assert numbers["energy_j"] is None or numbers["energy_j"] != numbers["energy_j"]

    dearer = load_profiles(profile_file(tmp_path / "hw.yaml", 72.0))
    row = leaderboard(engine, profiles=dearer).iloc[0]
    assert row["$/1M output tok"] == "2,000.00"
    assert row["$/correct"] == "0.1"
    with engine.connect() as connection:
        assert connection.execute(text("select * from runs")).mappings().one() == stored

    # The same through the CLI: bench report --hardware-file.
    report = run_bench(
        "report", "--store", f"sqlite:///{tmp_path / 'store.db'}", "--out", str(tmp_path / "r"),
        "--hardware-file", str(profile_file(tmp_path / "hw2.yaml", 3.6)),
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    board = (tmp_path / "r" / "leaderboard.md").read_text()
    assert "| 100.00 |" in board or "100.00" in board  # 0.001 / 10 x 1e6
    run_page = next((tmp_path / "r" / "site" / "runs").glob("*.html")).read_text()
    assert "$ per correct answer" in run_page and "no NVIDIA GPU" in run_page


def test_unknown_profile_shows_no_cost(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    write_run(engine, a_run())
    row = leaderboard(engine, profiles=load_profiles()).iloc[0]  # no "test-box" there
    assert row["$/1M output tok"] == "—" and row["output tok/s"] == "10.0"


def test_profiles_file_errors_and_detection(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("profiles:\n  - name: x\n    price_per_hour: cheap\n")
    with pytest.raises(BadInput, match="price_per_hour must be a number"):
        load_profiles(bad)
    bad.write_text("profiles:\n  - name: x\n    price_per_hour: 1\n    colour: red\n")
    with pytest.raises(BadInput, match="unknown field 'colour'"):
        load_profiles(bad)
    profiles = load_profiles()
    with pytest.raises(BadInput, match="unknown hardware profile 'tpu9'"):
        choose_profile("tpu9", {}, profiles)
    assert choose_profile(None, {"cpu_count": 2}, profiles) == "cpu-2core"
    assert choose_profile(None, {"gpu": "NVIDIA H100 80GB HBM3"}, profiles) == "h100"
    assert choose_profile(None, {"gpu": "NVIDIA H200"}, profiles) == "h200"  # as NVML names it
    assert choose_profile(None, {"gpu": "Some Future GPU"}, profiles) is None


def test_unknown_hardware_on_run_exits_2(tmp_path):
    result = run_bench(
        "run", "--model", "smollm2-135m-instruct", "--tasks", "basics_arith",
        "--hardware", "tpu9", "--store", f"sqlite:///{tmp_path / 's.db'}",
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown hardware profile 'tpu9'" in result.stderr
