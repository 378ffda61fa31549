"""Leaderboard from a real SQLite store: newest run wins, intervals, tied ranks, escaping."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bench.records import (
    MetricRecord,
    ModelRef,
    RunManifest,
    RunRecord,
    RunSettings,
    SampleRecord,
    TaskVersion,
)
from bench.report.leaderboard import (
    AVERAGE,
    Selection,
    board,
    compare,
    leaderboard,
    write_markdown,
)
from bench.store.schema import Run
from bench.store.store import open_store, write_run
from tests.conftest import run_bench

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(run_id, model, acc, ppl, minutes, correct=None, limit=None) -> RunRecord:
    """A run of `model` on a multiple-choice task `mc` (per-document 0/1 scores in
    `correct`, by default one correct document) and a perplexity task `prose`."""
    correct = [1.0] if correct is None else list(correct)
    manifest = RunManifest(
        run_id=run_id,
        model=ModelRef(model, Path("/models/x"), "0" * 64, "local"),
        tasks=[TaskVersion("mc", "a" * 64, "mc.yaml", "multiple_choice", len(correct))],
        settings=RunSettings(limit=limit),
        versions={"lm_eval": "0.4.13"},
        hardware={"cpu_count": 2},
        started_at=T0 + timedelta(minutes=minutes),
        load_s=1.0,
        wall_s=10.0,
        prompt_tokens=900,
        completion_tokens=100,
    )
    metrics = [
        MetricRecord("mc", "acc", "none", acc, 0.05, True, len(correct), True),
        MetricRecord("mc", "acc_norm", "none", 0.1, 0.05, True, len(correct), False),
        MetricRecord("prose", "word_perplexity", "none", ppl, None, False, 4, True),
    ]
    samples = [
        SampleRecord("mc", doc, "none", "Q?", '["a"]', '[["a"]]', "a", {"acc": score}, 0.1, 5, 1)
        for doc, score in enumerate(correct)
    ] + [
        SampleRecord(
            "prose",
            doc,
            "none",
            "",
            "[]",
            "[]",
            "text",
            {"word_perplexity": [-30.0 - doc, 10]},
            0.1,
            12,
            12,
        )
        for doc in range(4)
    ]
    return RunRecord(manifest, metrics, samples)


def test_newest_run_wins_with_intervals_and_escaping(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    write_run(engine, record("old", "model-a", 0.20, 50.0, minutes=0))
    write_run(engine, record("new", "model-a", 0.90, 40.0, minutes=5))
    write_run(engine, record("b1", "<script>alert(1)</script>|b", 0.50, 30.0, minutes=1))

    table = leaderboard(engine)
    assert list(table["model"]) == ["model-a", "&lt;script&gt;alert(1)&lt;/script&gt;\\|b"]
    assert list(table["mc (acc ↑)"].str.split(" ").str[0]) == ["0.9000", "0.5000"]
    assert table["prose (word_perplexity ↓)"].iloc[0].startswith("40.0000 (")
    # Perplexity is not a bounded score: the average is over accuracy-like metrics only.
    assert list(table[AVERAGE].str.split(" ").str[0]) == ["0.9000", "0.5000"]
    assert list(table["tokens/s"]) == ["100.0", "100.0"]

    text = write_markdown(engine, tmp_path / "reports").read_text()
    assert "<script>" not in text and "0.2000" not in text


def test_interval_is_a_bootstrap_of_the_samples(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    correct = [1.0] * 30 + [0.0] * 10
    write_run(engine, record("r", "m", 0.75, 40.0, minutes=0, correct=correct))
    (row,) = board(engine).rows
    low, high = row.cells["mc"].ci
    assert low < 0.75 < high and 0.55 < low and high < 0.9  # about ±1.96 * 0.068
    ppl_low, ppl_high = row.cells["prose"].ci
    assert ppl_low < ppl_high


def test_chance_differences_tie_real_differences_rank(tmp_path):
    rng = np.random.default_rng(7)
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    same_a = (rng.random(200) < 0.6).astype(float)
    same_b = (rng.random(200) < 0.6).astype(float)  # same skill, different luck
    strong = (rng.random(200) < 0.9).astype(float)
    weak = (rng.random(200) < 0.3).astype(float)
    for i, (name, scores) in enumerate(
        [("same-a", same_a), ("same-b", same_b), ("strong", strong), ("weak", weak)]
    ):
        write_run(engine, record(name, name, scores.mean(), 40.0, minutes=i, correct=scores))
    ranks = {row.model: row.rank for row in board(engine).rows}
    assert ranks["strong"] == "1"
    assert ranks["same-a"] == ranks["same-b"] == "2-3"
    assert ranks["weak"] == "4"

    (real,) = [d for d in compare(engine, "strong", "weak") if d.task == "mc"]
    assert real.a - real.b > 0.4 and real.p_value < 0.01
    (luck,) = [d for d in compare(engine, "same-a", "same-b") if d.task == "mc"]
    assert luck.p_value > 0.05
    compared = run_bench(
        "compare", "strong", "weak", "--store", f"sqlite:///{tmp_path / 'store.db'}"
    )
    assert compared.returncode == 0 and "yes" in compared.stdout


def test_empty_store_says_so(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'empty.db'}")
    assert "No complete runs" in write_markdown(engine, tmp_path).read_text()


def test_selection_narrows_the_board(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    write_run(engine, record("r1", "model-a", 0.6, 40.0, minutes=0))
    write_run(engine, record("r2", "model-b", 0.4, 30.0, minutes=10))
    assert [r.model for r in board(engine, Selection(models=("model-b",))).rows] == ["model-b"]
    assert [c.task for c in board(engine, Selection(tasks=("mc",))).columns] == ["mc"]
    later = Selection(since=T0 + timedelta(minutes=5))
    assert [r.model for r in board(engine, later).rows] == ["model-b"]
    assert board(engine, Selection(hardware="H100")).rows == []
    assert len(board(engine, Selection(backends=("hf",))).rows) == 2


def test_pareto_front():
    from bench.report.plots import pareto_front

    points = [(1.0, 0.5), (2.0, 0.7), (1.5, 0.4), (3.0, 0.6), (0.5, 0.2)]
    assert pareto_front(points) == [4, 0, 1]


def test_a_limited_run_never_replaces_a_full_one(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(url)
    write_run(engine, record("full", "model-a", 0.25, 40.0, minutes=0, correct=[1, 0, 0, 0]))
    write_run(engine, record("quick", "model-a", 1.0, 10.0, minutes=5, correct=[1], limit=1))
    write_run(engine, record("only", "model-b", 1.0, 10.0, minutes=6, correct=[1], limit=1))

    made = run_bench("report", "--format", "md", "--store", url, "--out", str(tmp_path / "r"))
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "r" / "leaderboard.md").read_text()
    assert "| model-a" in text and "0.2500" in text and "model-b" not in text
    assert "‡" not in text.split("\n\n", 2)[2]  # (the intro explains the mark)

    made = run_bench(
        "report", "--format", "md", "--include-limited", "--store", url, "--out", str(tmp_path)
    )
    assert made.returncode == 0, made.stderr
    rows = {r.model: r for r in board(engine, Selection(include_limited=True)).rows}
    assert rows["model-a"].cells["mc"].run_id == "full"  # the full run still wins
    assert rows["model-b"].cells["mc"].limited
    line = next(x for x in (tmp_path / "leaderboard.md").read_text().splitlines() if "model-b" in x)
    assert "1.0000 (1.0000–1.0000) ‡" in line


def test_imported_runs_are_marked_as_claims(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    write_run(engine, record("here", "model-a", 1.0, 40.0, minutes=0))
    write_run(engine, record("theirs", "model-b", 1.0, 40.0, minutes=1))
    write_run(engine, record("checked", "model-c", 1.0, 40.0, minutes=2))
    with engine.begin() as connection:
        for run_id, checked in (("theirs", 0), ("checked", 8)):
            connection.execute(
                Run.__table__.update()
                .where(Run.run_id == run_id)
                .values(provenance={"imported_at": "2026-12-07", "spot_checked": checked})
            )
    table = leaderboard(engine).set_index("model")
    assert not table.loc["model-a", "mc (acc ↑)"].endswith(("§", "✓"))
    assert table.loc["model-b", "mc (acc ↑)"].endswith("§")
    assert table.loc["model-b", "tokens/s"] == "100.0 §"
    assert table.loc["model-c", "mc (acc ↑)"].endswith("✓")
    assert table.loc["model-c", "wall time (s)"].endswith("§")  # speed stays a claim
