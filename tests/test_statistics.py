"""Minimum detectable difference, clustered intervals and paired tests (docs/statistics.md):
hand-computed cases, a clustered task in a real SQLite store, and a real run of a task
that declares clusters."""

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bench.catalog.validate import TaskYamlError, check_task
from bench.records import (
    MetricRecord,
    ModelRef,
    RunManifest,
    RunRecord,
    RunSettings,
    SampleRecord,
    TaskVersion,
)
from bench.report.leaderboard import board, compare, neighbour_mdes, write_markdown
from bench.report.stats import (
    bootstrap_ci,
    design_effect,
    groups_of,
    mean_variance,
    minimum_detectable_difference,
    paired_difference,
)
from bench.store.store import open_store, write_run
from tests.conftest import read_table, run_bench

# z_0.975 and z_0.80 from a normal table.
Z_SUM = 1.959964 + 0.841621
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def stored_run(run_id: str, model: str, tasks: dict, minutes: int = 0) -> RunRecord:
    """A complete run of `model`: tasks maps a task name to (per-document 0/1 scores,
    per-document cluster ids or None)."""
    manifest = RunManifest(
        run_id=run_id,
        model=ModelRef(model, Path("/models/x"), "0" * 64, "local"),
        tasks=[
            TaskVersion(t, "c" * 64, f"{t}.yaml", "multiple_choice", len(s))
            for t, (s, _) in tasks.items()
        ],
        settings=RunSettings(),
        versions={"lm_eval": "0.4.13"},
        hardware={"cpu_count": 2},
        started_at=T0 + timedelta(minutes=minutes),
        load_s=1.0,
        wall_s=10.0,
        prompt_tokens=900,
        completion_tokens=100,
    )
    metrics, samples = [], []
    for task, (scores, clusters) in tasks.items():
        n = len(scores)
        metrics.append(
            MetricRecord(task, "acc", "none", float(np.mean(scores)), 0.05, True, n, True)
        )
        for doc, score in enumerate(scores):
            cluster = None if clusters is None else clusters[doc]
            # lm-eval's (loglikelihood, is_greedy) per choice; choice 0 is the target.
            lls = [[-0.5 if score else -1.5, False], [-1.0, False]]
            samples.append(
                SampleRecord(
                    task, doc, "none", "Q?", json.dumps(lls), json.dumps([lls]), "0",
                    {"acc": float(score)}, 0.1, 5, 1, cluster,
                )
            )  # fmt: skip
    return RunRecord(manifest, metrics, samples)


def test_mde_matches_the_formula_on_a_hand_computed_case():
    d = np.array([1, 0, 0, -1, 1, 0, 1, 0], dtype=float)
    # mean 0.25; squared residuals sum to 3.5, so sd = sqrt(3.5 / 7) = 0.70711 and
    # SE = sd / sqrt(8) = 0.25; MDE = (1.959964 + 0.841621) * 0.25.
    assert minimum_detectable_difference(d) == pytest.approx(Z_SUM * 0.25, rel=1e-6)
    assert minimum_detectable_difference(d) == pytest.approx(0.700396, abs=1e-6)
    # The same from the two models' scores.
    a = np.array([1, 1, 0, 0, 1, 0, 1, 1], dtype=float)
    b = a - d
    assert paired_difference(a, b).mde == pytest.approx(0.700396, abs=1e-6)
    assert design_effect(d, groups_of(None, 8)) == 1.0


def test_clustered_variance_and_design_effect_on_a_hand_computed_case():
    d = np.array([1.0, 1.0, 0.0, 0.0])
    groups = groups_of(["p", "p", "q", "q"], 4)
    # r = (.5, .5, -.5, -.5); cluster totals 1 and -1: 2 / 1 * (1 + 1) / 4^2 = 0.25.
    assert mean_variance(d, groups) == pytest.approx(0.25)
    # naive: s^2 = 1/3, / n = 1/12; design effect 0.25 / (1/12) = 3.
    assert mean_variance(d, groups_of(None, 4)) == pytest.approx(1 / 12)
    assert design_effect(d, groups) == pytest.approx(3.0)
    assert minimum_detectable_difference(d, groups) == pytest.approx(Z_SUM * 0.5, rel=1e-6)
    # Clusters of one document each: the naive figures exactly.
    singletons = groups_of(["a", "b", "c", "d"], 4)
    assert mean_variance(d, singletons) == pytest.approx(1 / 12)


def test_paired_difference_interval_p_value_and_counts_agree():
    rng = np.random.default_rng(3)
    a = (rng.random(60) < 0.7).astype(float)
    b = (rng.random(60) < 0.5).astype(float)
    clusters = [f"p{i // 4}" for i in range(60)]
    for c in (None, clusters):
        paired = paired_difference(a, b, c)
        # One set of draws: p < 0.05 exactly where the 95% interval leaves out zero.
        assert (paired.p_value < 0.05) == (not paired.ci[0] <= 0 <= paired.ci[1])
        assert paired.ci[0] < paired.mean < paired.ci[1]
    paired = paired_difference(a, b)
    assert (paired.wins, paired.ties, paired.losses) == (
        int(((a == 1) & (b == 0)).sum()),
        int((a == b).sum()),
        int(((a == 0) & (b == 1)).sum()),
    )


def _correlated(seed: int, clusters: int, size: int, p: float) -> np.ndarray:
    """0/1 scores constant within each cluster of `size` documents: the cluster is known
    or not, as when every question on a passage hinges on reading it."""
    rng = np.random.default_rng(seed)
    return np.repeat((rng.random(clusters) < p).astype(float), size)


def test_declared_clusters_widen_the_interval_through_the_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(url)
    ids = [f"passage-{i // 5}" for i in range(200)]
    alpha, beta = _correlated(1, 40, 5, 0.75), _correlated(2, 40, 5, 0.45)
    # The same scores twice: once declared as clustered, once as independent documents.
    for run_id, model, scores in (("r1", "alpha", alpha), ("r2", "beta", beta)):
        tasks = {"reading": (scores, ids), "reading_flat": (scores, None)}
        write_run(engine, stored_run(run_id, model, tasks))
    assert read_table(url, "samples").query("task == 'reading'")["cluster"].tolist()[:6] == [
        "passage-0"
    ] * 5 + ["passage-1"]

    deltas = {d.task: d for d in compare(engine, "alpha", "beta")}
    clustered, flat = deltas["reading"].paired, deltas["reading_flat"].paired
    assert clustered.mean == flat.mean == pytest.approx(alpha.mean() - beta.mean())
    assert clustered.clustered and clustered.groups == 40 and not flat.clustered
    assert clustered.design_effect > 3  # five documents that count as about one
    assert flat.design_effect == 1.0
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(clustered.ci) > 1.5 * width(flat.ci)
    assert clustered.p_value > flat.p_value
    assert clustered.mde == pytest.approx(flat.mde * math.sqrt(clustered.design_effect))
    d = alpha - beta
    assert flat.mde == pytest.approx(Z_SUM * d.std(ddof=1) / math.sqrt(len(d)), rel=1e-6)

    # One model's own interval on the board: cluster bootstrap, wider than naive.
    cells = {row.model: row.cells for row in board(engine).rows}["alpha"]
    assert width(cells["reading"].ci) > 1.5 * width(cells["reading_flat"].ci)

    # The Markdown leaderboard names each task's minimum detectable difference.
    (mde,) = [m for m in neighbour_mdes(board(engine)) if m.task == "reading_flat"]
    assert mde.mde == pytest.approx(flat.mde)
    text = write_markdown(engine, tmp_path / "reports").read_text()
    assert "## Minimum detectable differences" in text
    assert f"- reading_flat (n = 200): alpha vs beta: {flat.mde:.4f}" in text
    assert (
        f"- reading (n = 200, 40 clusters): alpha vs beta: {clustered.mde:.4f} "
        f"(design effect {clustered.design_effect:.2f})"
    ) in text


DATA_QUESTIONS = [
    ("Which word is picked here: {x}?", ["blue", "green"]),
    ("The capital of France is", ["Paris", "Rome"]),
    ("Pick one at random: {x}", ["cat", "dog"]),
    ("Two plus two is", ["four", "seven"]),
    ("The colour of grass is", ["purple", "green"]),
    ("Choose a letter: {x}", ["q", "z"]),
    ("Water freezes at zero degrees", ["Celsius", "Kelvin"]),
    ("A word: {x}", ["left", "right"]),
    ("The opposite of hot is", ["cold", "loud"]),
    ("Another word: {x}", ["up", "down"]),
]

TASK = """\
task: reading_groups
dataset_path: json
dataset_kwargs:
  data_files:
    test: data.jsonl
output_type: multiple_choice
test_split: test
doc_to_text: "{{question}}"
doc_to_choice: "{{choices}}"
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
  cluster: passage
"""


def write_clustered_task(folder: Path, drop_field_at: int | None = None) -> Path:
    """Ten passages with three copies of one question each: a model answers the copies
    alike, so its scores are correlated within each passage. Targets alternate so that
    some passages are right and some wrong."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for p, (question, choices) in enumerate(DATA_QUESTIONS):
        for _ in range(3):
            rows.append(
                {
                    "passage": f"passage {p}",
                    "question": question.format(x=" ".join(choices)),
                    "choices": choices,
                    "answer": p % 2,
                }
            )
    if drop_field_at is not None:
        del rows[drop_field_at]["passage"]
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = folder / "reading_groups.yaml"
    path.write_text(TASK)
    return path


def test_a_row_without_the_cluster_field_is_refused_at_its_line(tmp_path):
    path = write_clustered_task(tmp_path, drop_field_at=4)
    with pytest.raises(TaskYamlError) as info:
        check_task(path)
    assert info.value.path == tmp_path / "data.jsonl"
    assert (info.value.line, info.value.field) == (5, "passage")
    assert "cluster" in str(info.value)


def test_a_real_run_records_clusters_and_its_interval_counts_them(tmp_path):
    write_clustered_task(tmp_path / "tasks")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    run = run_bench(
        "run",
        "--model",
        "smollm2-135m-instruct",
        "--tasks",
        "reading_groups",
        "--include-path",
        str(tmp_path / "tasks"),
        "--store",
        url,
    )
    assert run.returncode == 0, run.stderr
    samples = read_table(url, "samples").sort_values("doc_id")
    assert samples["cluster"].tolist() == [f"passage {i // 3}" for i in range(30)]
    scores = [(json.loads(s) if isinstance(s, str) else s)["acc"] for s in samples["scores"]]
    # The three copies of a question are answered alike: correlated within clusters.
    assert all(len(set(scores[i : i + 3])) == 1 for i in range(0, 30, 3))
    assert 0 < np.mean(scores) < 1

    (row,) = board(open_store(url)).rows
    cell = row.cells["reading_groups"]
    naive = bootstrap_ci([cell.scores[d] for d in sorted(cell.scores)])
    assert cell.ci[1] - cell.ci[0] > naive[1] - naive[0]
