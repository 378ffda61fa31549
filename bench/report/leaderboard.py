"""Store -> Board (rows of models with intervals and tied ranks) -> Markdown / frames.

A row is a (model, backend). Each task cell is the task's primary metric from the newest
complete run that scored it, with a 95% bootstrap interval over that run's samples. The
average covers the bounded higher-is-better scores (accuracy, exact match); rows are
ranked by it, and two rows share ranks unless a paired bootstrap over the documents both
answered says they differ (p < 0.05).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bench.report.stats import ALPHA, bootstrap_ci, paired_p_value, tied_ranks
from bench.scoring.disparity import AGGREGATIONS
from bench.store.schema import Run, RunTask, Sample
from bench.store.store import metrics_frame, read_table

AVERAGE = "average ↑"


@dataclass(frozen=True)
class TaskColumn:
    task: str
    metric: str
    higher_is_better: bool | None

    @property
    def header(self) -> str:
        return f"{self.task} ({self.metric} {arrow(self.higher_is_better)})".replace(" )", ")")


@dataclass
class Cell:
    value: float
    stderr: float | None
    ci: tuple[float, float]
    run_id: str
    scores: dict[int, float] = field(default_factory=dict)  # doc_id -> score (accuracy-like)
    outdated: bool = False  # made with an older version of the task than the current one


@dataclass
class Row:
    model: str
    backend: str
    cells: dict[str, Cell]
    average: float
    average_ci: tuple[float, float]
    rank: str = "—"
    wall_s: float | None = None
    tokens_per_s: float | None = None


@dataclass
class Board:
    columns: list[TaskColumn]
    rows: list[Row]


def _flag(value) -> bool | None:
    return None if value is None or pd.isna(value) else bool(value)


def arrow(higher_is_better) -> str:
    if higher_is_better is None or pd.isna(higher_is_better):
        return ""
    return "↑" if bool(higher_is_better) else "↓"


@dataclass(frozen=True)
class Selection:
    """Which part of the store a report covers; empty fields select everything."""

    models: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    backends: tuple[str, ...] = ()
    hardware: str = ""  # a substring of the run's hardware description (CPU or GPU name)
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        keep = pd.Series(True, index=frame.index)
        for column, wanted in (
            ("model", self.models),
            ("task", self.tasks),
            ("backend", self.backends),
        ):
            if wanted and column in frame:
                keep &= frame[column].isin(wanted)
        if self.hardware:
            text = frame["hardware"].map(lambda h: json.dumps(h).lower())
            keep &= text.str.contains(self.hardware.lower(), regex=False)
        started = pd.to_datetime(frame["started_at"], utc=True)
        if self.since is not None:
            keep &= started >= _utc(self.since)
        if self.until is not None:
            keep &= started <= _utc(self.until)
        return frame[keep]


EVERYTHING = Selection()


def _utc(moment: datetime) -> pd.Timestamp:
    """Naive times (as typed on the command line) are read as UTC."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def latest_primary_metrics(engine: Engine, selection: Selection = EVERYTHING) -> pd.DataFrame:
    """For each (model, backend, task): the primary metric of the newest run that scored it."""
    frame = selection.apply(metrics_frame(engine))
    # Partial runs (stopped by a failure) hold a subset of documents: not comparable.
    frame = frame[frame["is_primary"] & (frame["status"] == "complete")]
    if frame.empty:
        return frame
    frame = frame.sort_values("started_at")
    latest = frame.groupby(["model", "backend", "task"], as_index=False).last()
    return _mark_outdated(engine, latest)


def _mark_outdated(engine: Engine, cells: pd.DataFrame) -> pd.DataFrame:
    """Add `outdated`: the cell's run used another version of the task than the current
    one: the local YAML's content hash where the task is local, else the newest stored."""
    from bench.catalog.loader import local_task_hashes

    versions = read_table(engine, RunTask).merge(
        read_table(engine, Run)[["run_id", "started_at"]], on="run_id"
    )
    newest = versions.sort_values("started_at").groupby("task")["content_hash"].last().to_dict()
    current = {**newest, **local_task_hashes()}
    used = versions.set_index(["run_id", "task"])["content_hash"].to_dict()
    cells = cells.copy()
    cells["content_hash"] = [used.get((r.run_id, r.task)) for r in cells.itertuples()]
    cells["outdated"] = [
        r.content_hash is not None and current.get(r.task, r.content_hash) != r.content_hash
        for r in cells.itertuples()
    ]
    return cells


def measured_speed(engine: Engine, selection: Selection = EVERYTHING) -> pd.DataFrame:
    """Wall time and tokens/s of the newest complete run per (model, backend) whose every
    request ran on the model: answers reused from the store would flatter the speed."""
    runs = replace(selection, tasks=()).apply(read_table(engine, Run))
    runs = runs[(runs["status"] == "complete") & (runs["requests_reused"] == 0)]
    newest = runs.sort_values("started_at").groupby(["model", "backend"]).last()
    return newest[["wall_s", "tokens_per_s"]]


def is_accuracy_like(higher_is_better, value: float) -> bool:
    """Bounded higher-is-better scores (accuracy, exact match) are the ones averaged."""
    return bool(higher_is_better) and 0.0 <= value <= 1.0


def _sample_items(engine: Engine, cells: pd.DataFrame) -> dict[tuple[str, str, str], dict]:
    """(run_id, task, filter) -> {doc_id: per-sample value of the cell's metric}."""
    wanted = {(r.run_id, r.task, r.filter): r.metric for r in cells.itertuples()}
    items: dict[tuple[str, str, str], dict] = {key: {} for key in wanted}
    query = select(Sample.run_id, Sample.task, Sample.filter, Sample.doc_id, Sample.scores).where(
        Sample.run_id.in_({key[0] for key in wanted})
    )
    with engine.connect() as connection:
        for run_id, task, filt, doc_id, scores in connection.execute(query):
            metric = wanted.get((run_id, task, filt))
            if metric is not None and metric in scores:
                value = scores[metric]
                items[(run_id, task, filt)][doc_id] = (
                    tuple(value) if isinstance(value, list) else value
                )
    return items


def _interval(metric: str, values: list) -> tuple[float, float]:
    if values and all(isinstance(v, int | float) for v in values):
        return bootstrap_ci(values)
    from lm_eval.api.registry import get_metric_aggregation

    aggregate = AGGREGATIONS.get(metric) or get_metric_aggregation(metric)
    return bootstrap_ci(values, aggregate=aggregate)


def board(engine: Engine, selection: Selection = EVERYTHING) -> Board:
    cells = latest_primary_metrics(engine, selection)
    if cells.empty:
        return Board([], [])
    columns = [
        TaskColumn(task, group["metric"].iloc[0], _flag(group["higher_is_better"].iloc[0]))
        for task, group in cells.groupby("task")
    ]
    items = _sample_items(engine, cells)
    speed = measured_speed(engine, selection)
    rows = []
    for (model, backend), group in cells.groupby(["model", "backend"]):
        row_cells = {}
        for c in group.itertuples():
            per_doc = items[(c.run_id, c.task, c.filter)]
            stderr = None if c.stderr is None or pd.isna(c.stderr) else float(c.stderr)
            accuracy = is_accuracy_like(c.higher_is_better, c.value)
            row_cells[c.task] = Cell(
                value=float(c.value),
                stderr=stderr,
                ci=_interval(c.metric, list(per_doc.values())),
                run_id=c.run_id,
                scores={d: float(v) for d, v in per_doc.items()} if accuracy else {},
                outdated=bool(c.outdated),
            )
        averaged = [cell for cell in row_cells.values() if cell.scores]
        average = float(np.mean([c.value for c in averaged])) if averaged else float("nan")
        row = Row(model, backend, row_cells, average, _average_ci(averaged))
        if (model, backend) in speed.index:
            row.wall_s, row.tokens_per_s = (float(x) for x in speed.loc[(model, backend)])
        rows.append(row)
    rows.sort(key=lambda r: (math.isnan(r.average), -r.average if not math.isnan(r.average) else 0))
    _rank(rows)
    return Board(columns, rows)


def _average_ci(cells: list[Cell]) -> tuple[float, float]:
    if not cells:
        return (float("nan"), float("nan"))
    # Resample documents within each task, then average the task means.
    rng = np.random.default_rng(0)
    draws = np.zeros(2000)
    for cell in cells:
        values = np.array(list(cell.scores.values()))
        draws += values[rng.integers(0, len(values), size=(2000, len(values)))].mean(axis=1)
    draws /= len(cells)
    low, high = np.quantile(draws, [ALPHA / 2, 1 - ALPHA / 2])
    return float(low), float(high)


def _rank(rows: list[Row]) -> None:
    ranked = [r for r in rows if not math.isnan(r.average)]
    key = {id(r): f"{r.model}\x00{r.backend}" for r in ranked}
    significant = {}
    for i, a in enumerate(ranked):
        for b in ranked[i + 1 :]:
            significant[(key[id(a)], key[id(b)])] = compare_rows(a, b) < ALPHA
    labels = tied_ranks([key[id(r)] for r in ranked], significant)
    for row in ranked:
        row.rank = labels[key[id(row)]]


def compare_rows(a: Row, b: Row, tasks: list[str] | None = None) -> float:
    """Paired p-value of two rows' averages over the accuracy-like tasks both scored,
    on the documents both answered."""
    shared = [
        t for t in (tasks or a.cells) if t in b.cells and a.cells[t].scores and b.cells[t].scores
    ]
    xs, ys = [], []
    for task in shared:
        docs = sorted(set(a.cells[task].scores) & set(b.cells[task].scores))
        if docs:
            xs.append(np.array([a.cells[task].scores[d] for d in docs]))
            ys.append(np.array([b.cells[task].scores[d] for d in docs]))
    return paired_p_value(xs, ys) if xs else 1.0


def cell_text(cell: Cell | None) -> str:
    if cell is None:
        return "—"
    low, high = cell.ci
    text = f"{cell.value:.4f}" if math.isnan(low) else f"{cell.value:.4f} ({low:.4f}–{high:.4f})"
    return text + OUTDATED_MARK if cell.outdated else text


OUTDATED_MARK = " †"


def leaderboard(engine: Engine, selection: Selection = EVERYTHING) -> pd.DataFrame:
    """The board as text cells: what the Markdown shows."""
    result = board(engine, selection)
    records = []
    for row in result.rows:
        record = {"rank": row.rank, "model": md(row.model), "backend": row.backend}
        for column in result.columns:
            record[md(column.header)] = cell_text(row.cells.get(column.task))
        record[AVERAGE] = (
            "—"
            if math.isnan(row.average)
            else (f"{row.average:.4f} ({row.average_ci[0]:.4f}–{row.average_ci[1]:.4f})")
        )
        record["wall time (s)"] = "—" if row.wall_s is None else f"{row.wall_s:.1f}"
        record["tokens/s"] = "—" if row.tokens_per_s is None else f"{row.tokens_per_s:.1f}"
        records.append(record)
    return pd.DataFrame(records)


def md(text: str) -> str:
    """Table-safe Markdown text: a pipe would end the cell; markup shows as text."""
    return (
        str(text)
        .replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
    )


INTRO = (
    "# Leaderboard\n\n"
    "Each cell is the task's primary metric from the newest complete run, with its 95% "
    "bootstrap confidence interval over the run's samples. ↑ higher is better, ↓ lower is "
    "better. The average covers the bounded higher-is-better scores (accuracy, exact "
    'match). Ranks follow the average; models share a rank range ("1-2") unless a paired '
    "bootstrap on the documents both answered finds the difference significant (p < 0.05). "
    "Wall time is the evaluation time with model load excluded; tokens/s counts prompt and "
    "completion tokens over that time; both come from the newest run whose requests all "
    "ran on the model (none reused from the store). † marks a result made with an older "
    "version of the task (its YAML or data changed since): rerun it to compare like with "
    "like.\n\n"
)


def write_markdown(engine: Engine, out_dir: Path, selection: Selection = EVERYTHING) -> Path:
    table = leaderboard(engine, selection)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "leaderboard.md"
    body = (
        table.to_markdown(index=False, disable_numparse=True)
        if not table.empty
        else "_No complete runs in the store match this report._"
    )
    path.write_text(INTRO + body + "\n", encoding="utf-8")
    return path


def long_frame(engine: Engine, selection: Selection = EVERYTHING) -> pd.DataFrame:
    """One row per (model, backend, task) with numbers, for CSV and JSON reports."""
    result = board(engine, selection)
    records = [
        {
            "rank": row.rank,
            "model": row.model,
            "backend": row.backend,
            "task": column.task,
            "metric": column.metric,
            "value": cell.value,
            "ci_low": cell.ci[0],
            "ci_high": cell.ci[1],
            "stderr": cell.stderr,
            "run_id": cell.run_id,
            "outdated_task_version": cell.outdated,
        }
        for row in result.rows
        for column in result.columns
        if (cell := row.cells.get(column.task)) is not None
    ]
    return pd.DataFrame(records)


@dataclass(frozen=True)
class TaskDelta:
    task: str
    metric: str
    a: float
    b: float
    p_value: float | None  # None where per-sample scores cannot be paired


def compare(engine: Engine, first: str, second: str) -> list[TaskDelta]:
    """Per-task differences between two rows ("model" or "model@backend")."""
    result = board(engine)

    def find(name: str) -> Row:
        model, _, backend = name.partition("@")
        matches = [r for r in result.rows if r.model == model and backend in ("", r.backend)]
        if len(matches) != 1:
            known = ", ".join(f"{r.model}@{r.backend}" for r in result.rows)
            raise LookupError(f"'{name}' matches {len(matches)} rows; rows: {known}")
        return matches[0]

    a, b = find(first), find(second)
    deltas = []
    for column in result.columns:
        if column.task in a.cells and column.task in b.cells:
            paired = a.cells[column.task].scores and b.cells[column.task].scores
            deltas.append(
                TaskDelta(
                    column.task,
                    column.metric,
                    a.cells[column.task].value,
                    b.cells[column.task].value,
                    compare_rows(a, b, [column.task]) if paired else None,
                )
            )
    return deltas
