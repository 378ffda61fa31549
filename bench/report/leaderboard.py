"""Store -> Board (rows of models with intervals and tied ranks) -> Markdown / frames.

A row is a (model, backend). Each task cell is the task's primary metric from the newest
complete run that scored all of the task's documents (limited runs only when asked for,
and then only where no full run exists), with a 95% bootstrap interval over that run's samples. The
average covers the bounded higher-is-better scores (accuracy, exact match); rows are
ranked by it, and two rows share a rank range unless one's 95% interval of the average
lies wholly above the other's (the paired bootstrap is `bench compare`'s).
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import groupby
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bench.hardware.profiles import HardwareProfile, load_profiles
from bench.metrics.latency import LatencySummary
from bench.report.performance import RunPerformance, level_performance, run_performance
from bench.report.stats import (
    ALPHA,
    PairedDifference,
    bootstrap_ci,
    design_effect,
    groups_of,
    is_accuracy_like,
    is_clustered,
    minimum_detectable_difference,
    paired_difference,
    resampled_means,
)
from bench.scoring.disparity import AGGREGATIONS
from bench.store.probes import probe_levels_frame
from bench.store.schema import Run, RunTask, Sample
from bench.store.store import metrics_frame, read_table

AVERAGE = "average ↑"
# Where a cell's run comes from (runs.provenance, set on import: bench/store/verify.py).
MEASURED, IMPORTED, SPOT_CHECKED = "measured", "imported", "spot-checked"


def provenance_of(stored) -> str:
    if not isinstance(stored, dict):
        return MEASURED
    return SPOT_CHECKED if stored.get("spot_checked") else IMPORTED


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
    limited: bool = False  # from a run with --limit: a subset of the task's documents
    provenance: str = MEASURED  # MEASURED here, IMPORTED from a bundle, or SPOT_CHECKED
    # doc_id -> cluster id, where the task declares clusters (metadata `cluster`).
    clusters: dict[int, str] = field(default_factory=dict)

    def clusters_of(self, docs: list[int]) -> list[str | None] | None:
        """The documents' cluster ids, or None where the task declares no clusters."""
        return [self.clusters.get(d) for d in docs] if self.clusters else None


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
    # Speed, cost and efficiency of the run that gave wall_s (bench/report/performance.py).
    performance: RunPerformance | None = None
    speed_run: str | None = None
    speed_claimed: bool = False  # the speed run was imported: its figures are a claim


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
    hardware: str = ""  # a substring of the run's hardware (CPU or GPU name, profile name)
    since: datetime | None = None
    until: datetime | None = None
    include_limited: bool = False  # runs with --limit too, where no full run exists

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
            if "hardware_profile" in frame:  # or the name of the run's hardware profile
                text = text + " " + frame["hardware_profile"].fillna("").str.lower()
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
    # So do limited runs: a --limit 4 run must not stand in for a full one.
    frame = frame.assign(limited=[_is_limited(s) for s in frame["settings"]])
    if not selection.include_limited:
        frame = frame[~frame["limited"]]
    if frame.empty:
        return frame
    # The newest full run; a limited one only where there is none.
    frame = frame.sort_values(["limited", "started_at"], ascending=[False, True])
    latest = frame.groupby(["model", "backend", "task"], as_index=False).last()
    return _mark_outdated(engine, latest)


def _is_limited(settings) -> bool:
    return isinstance(settings, dict) and settings.get("limit") is not None


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
    newest["claimed"] = [provenance_of(p) != MEASURED for p in newest["provenance"]]
    return newest[["wall_s", "tokens_per_s", "run_id", "claimed"]]


SampleKey = tuple[str, str, str]  # (run_id, task, filter)


def _sample_items(
    engine: Engine, cells: pd.DataFrame
) -> tuple[dict[SampleKey, dict], dict[SampleKey, dict]]:
    """(run_id, task, filter) -> {doc_id: per-sample value of the cell's metric}, and
    -> {doc_id: cluster id} for the documents whose task declares clusters."""
    wanted = {(r.run_id, r.task, r.filter): r.metric for r in cells.itertuples()}
    items: dict[SampleKey, dict] = {key: {} for key in wanted}
    clusters: dict[SampleKey, dict] = {key: {} for key in wanted}
    query = select(
        Sample.run_id, Sample.task, Sample.filter, Sample.doc_id, Sample.scores, Sample.cluster
    ).where(Sample.run_id.in_({key[0] for key in wanted}))
    with engine.connect() as connection:
        for run_id, task, filt, doc_id, scores, cluster in connection.execute(query):
            metric = wanted.get((run_id, task, filt))
            if metric is not None and metric in scores:
                value = scores[metric]
                items[(run_id, task, filt)][doc_id] = (
                    tuple(value) if isinstance(value, list) else value
                )
                if cluster is not None:
                    clusters[(run_id, task, filt)][doc_id] = cluster
    return items, clusters


def _interval(metric: str, values: list, clusters: list | None) -> tuple[float, float]:
    """Bootstrap interval over the samples; over whole clusters where declared."""
    if values and all(isinstance(v, int | float) for v in values):
        return bootstrap_ci(values, clusters=clusters)
    from lm_eval.api.registry import get_metric_aggregation

    aggregate = AGGREGATIONS.get(metric) or get_metric_aggregation(metric)
    return bootstrap_ci(values, aggregate=aggregate, clusters=clusters)


def board(
    engine: Engine,
    selection: Selection = EVERYTHING,
    profiles: dict[str, HardwareProfile] | None = None,
) -> Board:
    """`profiles` price the runs (default: the shipped and the user's hardware profiles)."""
    cells = latest_primary_metrics(engine, selection)
    if cells.empty:
        return Board([], [])
    columns = [
        TaskColumn(task, group["metric"].iloc[0], _flag(group["higher_is_better"].iloc[0]))
        for task, group in cells.groupby("task")
    ]
    items, clusters = _sample_items(engine, cells)
    speed = measured_speed(engine, selection)
    rows = []
    for (model, backend), group in cells.groupby(["model", "backend"]):
        row_cells = {}
        for c in group.itertuples():
            per_doc = items[(c.run_id, c.task, c.filter)]
            grouped = clusters[(c.run_id, c.task, c.filter)]
            stderr = None if c.stderr is None or pd.isna(c.stderr) else float(c.stderr)
            accuracy = is_accuracy_like(c.higher_is_better, c.value)
            row_cells[c.task] = Cell(
                value=float(c.value),
                stderr=stderr,
                ci=_interval(
                    c.metric,
                    list(per_doc.values()),
                    [grouped.get(d) for d in per_doc] if grouped else None,
                ),
                run_id=c.run_id,
                scores={d: float(v) for d, v in per_doc.items()} if accuracy else {},
                outdated=bool(c.outdated),
                limited=bool(c.limited),
                provenance=provenance_of(c.provenance),
                clusters=grouped,
            )
        averaged = [cell for cell in row_cells.values() if cell.scores]
        average = float(np.mean([c.value for c in averaged])) if averaged else float("nan")
        row = Row(model, backend, row_cells, average, _average_ci(averaged))
        if (model, backend) in speed.index:
            fastest = speed.loc[(model, backend)]
            row.wall_s, row.tokens_per_s = float(fastest["wall_s"]), float(fastest["tokens_per_s"])
            row.speed_run = str(fastest["run_id"])
            row.speed_claimed = bool(fastest["claimed"])
        rows.append(row)
    speed_runs = [r.speed_run for r in rows if r.speed_run]
    performance = run_performance(
        engine, speed_runs, load_profiles() if profiles is None else profiles
    )
    for row in rows:
        row.performance = performance.get(row.speed_run) if row.speed_run else None
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
        docs = list(cell.scores)
        values = np.array([cell.scores[d] for d in docs])
        groups = groups_of(cell.clusters_of(docs), len(docs))
        draws += resampled_means(values, groups, 2000, rng)
    draws /= len(cells)
    low, high = np.quantile(draws, [ALPHA / 2, 1 - ALPHA / 2])
    return float(low), float(high)


def _rank(rows: list[Row]) -> None:
    """Ranks with ties, from each row's 95% interval of its average: a row ranks below
    another only where the other's interval lies wholly above its own (as Chatbot Arena
    ranks). Its best rank is 1 + the rows wholly above it, its worst the row count less
    the rows wholly below it; with the bounds sorted, each is a binary search, so the
    whole board is n log n (a paired bootstrap per pair was n^2 bootstraps). The paired
    test stays where two rows are put side by side: `bench compare`, the compare pages."""
    ranked = [r for r in rows if not math.isnan(r.average)]
    bounds = [_bounds(r) for r in ranked]
    lows = sorted(low for low, _ in bounds)
    highs = sorted(high for _, high in bounds)
    for row, (low, high) in zip(ranked, bounds, strict=True):
        best = 1 + len(lows) - bisect_right(lows, high)
        worst = len(highs) - bisect_left(highs, low)
        row.rank = str(best) if best == worst else f"{best}-{worst}"


def _bounds(row: Row) -> tuple[float, float]:
    """A row's interval, or its average alone where it has none (too few documents)."""
    low, high = row.average_ci
    return (row.average, row.average) if math.isnan(low) else (low, high)


def paired_scores(a: Cell, b: Cell) -> tuple[np.ndarray, np.ndarray, list | None]:
    """Two cells' per-document scores on the documents both answered, in one order,
    with the documents' cluster ids (None where the task declares no clusters)."""
    docs = sorted(set(a.scores) & set(b.scores))
    x = np.array([a.scores[d] for d in docs], dtype=float)
    y = np.array([b.scores[d] for d in docs], dtype=float)
    return x, y, (a.clusters_of(docs) if a.clusters else b.clusters_of(docs))


def cell_text(cell: Cell | None) -> str:
    if cell is None:
        return "—"
    low, high = cell.ci
    text = f"{cell.value:.4f}" if math.isnan(low) else f"{cell.value:.4f} ({low:.4f}–{high:.4f})"
    return text + cell_marks(cell)


def cell_marks(cell: Cell) -> str:
    marks = OUTDATED_MARK if cell.outdated else ""
    marks += LIMITED_MARK if cell.limited else ""
    return marks + PROVENANCE_MARKS[cell.provenance]


OUTDATED_MARK = " †"
LIMITED_MARK = " ‡"
CLAIMED_MARK = " §"
PROVENANCE_MARKS = {MEASURED: "", IMPORTED: CLAIMED_MARK, SPOT_CHECKED: " ✓"}


def leaderboard(
    engine: Engine,
    selection: Selection = EVERYTHING,
    profiles: dict[str, HardwareProfile] | None = None,
) -> pd.DataFrame:
    """The board as text cells: what the Markdown shows."""
    return board_table(board(engine, selection, profiles))


def board_table(result: Board) -> pd.DataFrame:
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
        claimed = CLAIMED_MARK if row.speed_claimed else ""
        record["wall time (s)"] = "—" if row.wall_s is None else f"{row.wall_s:.1f}{claimed}"
        record["tokens/s"] = "—" if row.tokens_per_s is None else f"{row.tokens_per_s:.1f}{claimed}"
        record.update(performance_cells(row.performance))
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


# How to read the board, one point each: bullets in the Markdown, a list on the site, so
# both say the same.
READING_GUIDE: tuple[tuple[str, str], ...] = (
    (
        "Score",
        "the task's primary metric from the newest complete run (↑ higher is better, "
        "↓ lower is better).",
    ),
    (
        "(low–high)",
        "its 95% confidence interval, from resampling the run's documents (bootstrap): "
        "how far the score could move by the luck of which documents the task holds.",
    ),
    (
        "Rank",
        "by the average of the bounded higher-is-better scores (accuracy, exact match). "
        'A range such as "2-3" is a tie: a model ranks below another only where the '
        "other's 95% interval of the average lies wholly above its own. For a paired "
        "test of two models on the documents both answered, open their compare page.",
    ),
    (
        "§ claimed, ✓ verified",
        "§: from a contributor's bundle; its scores were recomputed here from its "
        "answers, but which model gave them, and its speed and cost, are taken on "
        "trust. ✓: its answers were reproduced here by re-running samples (--spot-check).",
    ),
    (
        "‡ limited",
        "a run on a subset of the documents (--limit), shown only with "
        "--include-limited where no full run exists.",
    ),
    ("† outdated", "made with an older version of the task: rerun to compare like with like."),
    (
        "Speed and cost",
        "from the newest run whose requests all ran on the model; wall time excludes "
        "model load, tokens/s counts prompt and completion tokens; TTFT and ITL from "
        "streamed generations; cost from the run's hardware profile at its current price "
        "($/1M output tokens = $ per second / output tokens per second x 1e6; $/correct "
        '= cost / (accuracy x samples)). Definitions: the README, "Latency and cost".',
    ),
)
INTRO = (
    "# Leaderboard\n\n" + "".join(f"- **{term}**: {text}\n" for term, text in READING_GUIDE) + "\n"
)
PROBE_INTRO = (
    "## Latency probes\n\n"
    "The newest probe of each model and backend: the tasks' own prompts replayed through "
    "the streaming path after a warm-up, at a fixed number of requests in flight "
    "(concurrency) or at a Poisson request rate. Times in milliseconds; TPOT excludes the "
    "first token; ITL pools every gap between streamed chunks.\n\n"
)


def _num(value: float | None, digits: int) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:.1f}"


def _usd(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}" if value < 1 else f"{value:,.2f}"


PERFORMANCE_HEADERS = (
    "TTFT p50 (ms)",
    "TTFT p95 (ms)",
    "ITL p50 (ms)",
    "output tok/s",
    "$/1M output tok",
    "$/correct",
)


def performance_cells(perf: RunPerformance | None) -> dict[str, str]:
    if perf is None:
        return dict.fromkeys(PERFORMANCE_HEADERS, "—")
    latency = perf.latency
    return dict(
        zip(
            PERFORMANCE_HEADERS,
            (
                _ms(latency.ttft.p50 if latency else None),
                _ms(latency.ttft.p95 if latency else None),
                _ms(latency.itl.p50 if latency else None),
                _num(perf.output_tokens_per_s, 1),
                _usd(perf.cost.per_1m_output),
                _usd(perf.cost.per_correct),
            ),
            strict=True,
        )
    )


def performance_numbers(perf: RunPerformance | None) -> dict[str, float | str | None]:
    """The same figures as numbers (seconds, USD), for CSV and JSON."""
    if perf is None:
        return {}
    latency = perf.latency
    return {
        "hardware_profile": perf.hardware_profile,
        "ttft_p50_s": latency.ttft.p50 if latency else None,
        "ttft_p95_s": latency.ttft.p95 if latency else None,
        "itl_p50_s": latency.itl.p50 if latency else None,
        "tpot_p50_s": latency.tpot.p50 if latency else None,
        "output_tokens_per_s": perf.output_tokens_per_s,
        "cost_usd": perf.cost.total_usd,
        "usd_per_1m_input": perf.cost.per_1m_input,
        "usd_per_1m_output": perf.cost.per_1m_output,
        "usd_per_1k_samples": perf.cost.per_1k_samples,
        "usd_per_correct": perf.cost.per_correct,
        "mfu": perf.mfu,
        "mfu_tokens": perf.computed_tokens,
        "mfu_tokens_counted": perf.tokens_counted,
        "peak_flops_source": perf.flops_peak.source if perf.flops_peak else None,
        "mbu": perf.mbu,
        "memory_bandwidth_source": perf.bandwidth_peak.source if perf.bandwidth_peak else None,
        "energy_j": perf.energy_j,
        "joules_per_output_token": perf.joules_per_output_token,
    }


def newest_probe_levels(engine: Engine, selection: Selection = EVERYTHING) -> pd.DataFrame:
    """Every level of the newest probe of each (model, backend) the selection covers."""
    frame = probe_levels_frame(engine)
    if frame.empty:
        return frame
    frame = replace(selection, tasks=()).apply(frame)
    if frame.empty:
        return frame
    newest = frame.sort_values("started_at").groupby(["model", "backend"])["probe_id"].last()
    frame = frame[frame["probe_id"].isin(set(newest))]
    return frame.sort_values(["model", "backend", "level"])


def probe_table(
    engine: Engine,
    selection: Selection = EVERYTHING,
    profiles: dict[str, HardwareProfile] | None = None,
    markdown: bool = True,
) -> pd.DataFrame:
    """One row per level of the newest probes; text cells (Markdown-escaped, or plain for
    the HTML page, where Jinja2 escapes)."""
    profiles = load_profiles() if profiles is None else profiles
    text = md if markdown else str
    records = []
    for level in newest_probe_levels(engine, selection).itertuples():
        summary = LatencySummary.from_dict(level.summary)
        perf = level_performance(level, profiles)
        load = (
            f"concurrency {int(level.concurrency)}"
            if level.concurrency is not None and not pd.isna(level.concurrency)
            else f"{level.request_rate:g} req/s (Poisson)"
        )
        records.append(
            {
                "model": text(level.model),
                "backend": level.backend,
                "hardware": text(level.hardware_profile or "—"),
                "load": load,
                "requests": str(summary.completed),
                "req/s": _num(summary.request_throughput, 2),
                "output tok/s": _num(summary.output_throughput, 1),
                "TTFT p50": _ms(summary.ttft.p50),
                "TTFT p95": _ms(summary.ttft.p95),
                "TPOT p50": _ms(summary.tpot.p50),
                "ITL p50": _ms(summary.itl.p50),
                "E2E p50": _ms(summary.e2e.p50),
                "goodput req/s": _num(summary.goodput, 2) if summary.goodput is not None else "—",
                "$/1M output tok": _usd(perf.cost.per_1m_output),
                "MBU": _num(perf.mbu, 4) if perf.mbu is not None else "—",
            }
        )
    return pd.DataFrame(records)


def write_markdown(
    engine: Engine,
    out_dir: Path,
    selection: Selection = EVERYTHING,
    profiles: dict[str, HardwareProfile] | None = None,
) -> Path:
    profiles = load_profiles() if profiles is None else profiles
    result = board(engine, selection, profiles)
    table = board_table(result)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "leaderboard.md"
    body = (
        table.to_markdown(index=False, disable_numparse=True)
        if not table.empty
        else "_No complete runs in the store match this report._"
    )
    detectable = mde_markdown(result)
    if detectable:
        body += "\n\n" + MDE_INTRO + detectable
    probes = probe_table(engine, selection, profiles)
    if not probes.empty:
        body += "\n\n" + PROBE_INTRO + probes.to_markdown(index=False, disable_numparse=True)
    path.write_text(INTRO + body + "\n", encoding="utf-8")
    return path


def long_frame(
    engine: Engine,
    selection: Selection = EVERYTHING,
    profiles: dict[str, HardwareProfile] | None = None,
) -> pd.DataFrame:
    """One row per (model, backend, task) with numbers, for CSV and JSON reports."""
    result = board(engine, selection, profiles)
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
            "limited": cell.limited,
            "provenance": cell.provenance,
            **performance_numbers(row.performance),
        }
        for row in result.rows
        for column in result.columns
        if (cell := row.cells.get(column.task)) is not None
    ]
    return pd.DataFrame(records)


def row_label(row: Row, rows: list[Row]) -> str:
    """How `bench compare` names a row: its model, or model@backend where the model has
    rows on several backends."""
    alone = sum(r.model == row.model for r in rows) == 1
    return row.model if alone else f"{row.model}@{row.backend}"


def find_row(result: Board, name: str) -> Row:
    """The row `name` ("model" or "model@backend") names; LookupError if not exactly one."""
    model, _, backend = name.partition("@")
    matches = [r for r in result.rows if r.model == model and backend in ("", r.backend)]
    if len(matches) != 1:
        known = ", ".join(f"{r.model}@{r.backend}" for r in result.rows)
        raise LookupError(f"'{name}' matches {len(matches)} rows; rows: {known}")
    return matches[0]


@dataclass(frozen=True)
class TaskDelta:
    task: str
    metric: str
    a: float
    b: float
    p_value: float | None  # None where per-sample scores cannot be paired
    # The paired comparison on the documents both answered (bench/report/stats.py), where
    # the metric is accuracy-like; p_value is its p-value.
    paired: PairedDifference | None = None


def compare(
    engine: Engine, first: str, second: str, selection: Selection = EVERYTHING
) -> list[TaskDelta]:
    """Per-task differences between two rows ("model" or "model@backend")."""
    result = board(engine, selection)
    return compare_pair(result, find_row(result, first), find_row(result, second))


def compare_pair(result: Board, a: Row, b: Row) -> list[TaskDelta]:
    """What `bench compare` prints and the site's compare pages show, for rows of `result`."""
    deltas = []
    for column in result.columns:
        if column.task not in a.cells or column.task not in b.cells:
            continue
        first, second = a.cells[column.task], b.cells[column.task]
        paired = None
        if first.scores and second.scores:
            x, y, clusters = paired_scores(first, second)
            paired = paired_difference(x, y, clusters) if len(x) else None
        deltas.append(
            TaskDelta(
                column.task,
                column.metric,
                first.value,
                second.value,
                None if paired is None else paired.p_value,
                paired,
            )
        )
    return deltas


COMPARE_HEADERS = (
    "delta",
    "95% CI",
    "p",
    "significant",
    "win/tie/loss",
    "MDE",
    "design effect",
)


def delta_cells(delta: TaskDelta) -> dict[str, str]:
    """A task's comparison as text: the two scores ("a", "b") and COMPARE_HEADERS;
    `bench compare` and the compare page both show exactly these."""
    p = delta.paired
    scores = {"a": f"{delta.a:.4f}", "b": f"{delta.b:.4f}"}
    difference = f"{delta.a - delta.b:+.4f}"
    if p is None:  # not accuracy-like (perplexity): no paired comparison
        figures = (difference, *["n/a"] * (len(COMPARE_HEADERS) - 1))
    else:
        figures = (
            difference,
            f"[{p.ci[0]:+.4f}, {p.ci[1]:+.4f}]",
            f"{p.p_value:.3f}",
            "yes" if p.p_value < ALPHA else "no",
            f"{p.wins}/{p.ties}/{p.losses}",
            _num(p.mde, 4),
            f"{_num(p.design_effect, 2)} ({p.groups} clusters)" if p.clustered else "—",
        )
    return scores | dict(zip(COMPARE_HEADERS, figures, strict=True))


@dataclass(frozen=True)
class NeighbourMde:
    """The minimum detectable difference between two rows adjacent on the board."""

    task: str
    a: str  # row labels (row_label)
    b: str
    n: int  # documents both answered
    mde: float
    design_effect: float  # 1 where the task declares no clusters
    clusters: int | None  # clusters among the documents, where declared


def neighbour_mdes(result: Board) -> list[NeighbourMde]:
    """For each accuracy-like task, each pair of rows next to each other in board order
    (among the rows that scored the task): the task's power to tell them apart."""
    found = []
    for column in result.columns:
        rows = [r for r in result.rows if column.task in r.cells and r.cells[column.task].scores]
        for upper, lower in zip(rows, rows[1:], strict=False):
            x, y, clusters = paired_scores(upper.cells[column.task], lower.cells[column.task])
            if len(x) < 2:
                continue
            groups = groups_of(clusters, len(x))
            found.append(
                NeighbourMde(
                    column.task,
                    row_label(upper, result.rows),
                    row_label(lower, result.rows),
                    len(x),
                    minimum_detectable_difference(x - y, groups),
                    design_effect(x - y, groups),
                    int(groups.max()) + 1 if is_clustered(groups) else None,
                )
            )
    return found


MDE_INTRO = (
    "## Minimum detectable differences\n\n"
    "Per task, the smallest true difference between two models next to each other above "
    "that a paired test on the task's documents would detect 80% of the time at alpha "
    "0.05, from the spread of their per-document differences (docs/statistics.md): two "
    "neighbours closer than this are ones the task is too small to separate. Where a task "
    "declares that its documents come in clusters, each cluster counts once and the design "
    "effect (how much clustering inflates the variance) is given.\n\n"
)


def mde_markdown(result: Board) -> str:
    """One line per task: its neighbours' minimum detectable differences."""
    lines = []
    for task, group in groupby(neighbour_mdes(result), key=lambda m: m.task):
        group = list(group)
        pairs = "; ".join(
            f"{md(m.a)} vs {md(m.b)}: {_num(m.mde, 4)}"
            + (f" (design effect {_num(m.design_effect, 2)})" if m.clusters else "")
            for m in group
        )
        size = f"n = {group[0].n}"
        size += f", {group[0].clusters} clusters" if group[0].clusters else ""
        lines.append(f"- {md(task)} ({size}): {pairs}")
    return "\n".join(lines)
