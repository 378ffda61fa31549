"""Leaderboard rows from a real SQLite store: newest run wins, averages, escaping."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.records import (
    MetricRecord,
    ModelRef,
    RunManifest,
    RunRecord,
    RunSettings,
    SampleRecord,
    TaskVersion,
)
from bench.report.leaderboard import AVERAGE, leaderboard, write_markdown
from bench.store.store import open_store, write_run

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(run_id: str, model: str, acc: float, ppl: float, minutes: int) -> RunRecord:
    manifest = RunManifest(
        run_id=run_id,
        model=ModelRef(model, Path("/models/x"), "0" * 64, "local"),
        tasks=[TaskVersion("mc", "a" * 64, "mc.yaml", "multiple_choice", 10)],
        settings=RunSettings(),
        versions={"lm_eval": "0.4.13"},
        hardware={"cpu_count": 2},
        started_at=T0 + timedelta(minutes=minutes),
        load_s=1.0,
        wall_s=10.0,
        prompt_tokens=900,
        completion_tokens=100,
    )
    metrics = [
        MetricRecord("mc", "acc", "none", acc, 0.05, True, 10, True),
        MetricRecord("mc", "acc_norm", "none", 0.1, 0.05, True, 10, False),
        MetricRecord("prose", "word_perplexity", "none", ppl, None, False, 4, True),
    ]
    sample = SampleRecord("mc", 0, "none", "Q?", '["a"]', '[["a"]]', "a", {"acc": 1.0}, 0.1, 5, 1)
    return RunRecord(manifest, metrics, [sample])


def test_newest_run_wins_and_rows_rank_by_average(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    write_run(engine, record("old", "model-a", 0.20, 50.0, minutes=0))
    write_run(engine, record("new", "model-a", 0.90, 40.0, minutes=5))
    write_run(engine, record("b1", "model|b", 0.50, 30.0, minutes=1))

    table = leaderboard(engine)
    assert list(table["model"]) == ["model-a", "model\\|b"]
    assert list(table["mc (acc ↑)"]) == ["0.9000 ± 0.0500", "0.5000 ± 0.0500"]
    assert list(table["prose (word_perplexity ↓)"]) == ["40.0000", "30.0000"]
    # Perplexity is not a bounded score: the average is over accuracy-like metrics only.
    assert list(table[AVERAGE]) == ["0.9000", "0.5000"]
    assert list(table["tokens/s"]) == [100.0, 100.0]

    text = write_markdown(engine, tmp_path / "reports").read_text()
    assert "| model\\|b " in text and "0.2000" not in text


def test_empty_store_says_so(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'empty.db'}")
    assert "holds no runs" in write_markdown(engine, tmp_path).read_text()
