"""Store -> leaderboard DataFrame -> Markdown."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine

from bench.store.schema import Run
from bench.store.store import metrics_frame, read_table

AVERAGE = "average ↑"


def latest_primary_metrics(engine: Engine) -> pd.DataFrame:
    """For each (model, backend, task): the primary metric of the newest run that scored it."""
    frame = metrics_frame(engine)
    # Partial runs (stopped by a failure) hold a subset of documents: not comparable.
    frame = frame[frame["is_primary"] & (frame["status"] == "complete")]
    if frame.empty:
        return frame
    frame = frame.sort_values("started_at")
    return frame.groupby(["model", "backend", "task"], as_index=False).last()


def _md(text: str) -> str:
    """Table-safe Markdown text: a pipe would end the cell."""
    return str(text).replace("|", "\\|")


def _arrow(higher_is_better) -> str:
    if higher_is_better is None or pd.isna(higher_is_better):
        return ""
    return "↑" if bool(higher_is_better) else "↓"


def _cell(value: float, stderr: float | None) -> str:
    if stderr is None or math.isnan(stderr):
        return f"{value:.4f}"
    return f"{value:.4f} ± {stderr:.4f}"


def is_accuracy_like(row) -> bool:
    """Only bounded higher-is-better scores (accuracy, exact match) go into the average."""
    return bool(row["higher_is_better"]) and 0.0 <= row["value"] <= 1.0


def measured_speed(engine: Engine) -> pd.DataFrame:
    """Wall time and tokens/s of the newest complete run per (model, backend) whose every
    request ran on the model: answers reused from the store would flatter the speed."""
    runs = read_table(engine, Run)
    runs = runs[(runs["status"] == "complete") & (runs["requests_reused"] == 0)]
    newest = runs.sort_values("started_at").groupby(["model", "backend"]).last()
    return newest[["wall_s", "tokens_per_s"]]


def leaderboard(engine: Engine) -> pd.DataFrame:
    """One row per (model, backend), one column per task (primary metric ± stderr), speed."""
    cells = latest_primary_metrics(engine)
    if cells.empty:
        return pd.DataFrame()
    speed = measured_speed(engine)
    headers = {
        task: f"{_md(task)} ({group['metric'].iloc[0]} {_arrow(group['higher_is_better'].iloc[0])})"
        for task, group in cells.groupby("task")
    }
    rows = []
    for (model, backend), group in cells.groupby(["model", "backend"]):
        row: dict[str, object] = {"model": _md(model), "backend": backend}
        for _, cell in group.iterrows():
            row[headers[cell["task"]]] = _cell(cell["value"], cell["stderr"])
        scored = [c["value"] for _, c in group.iterrows() if is_accuracy_like(c)]
        row[AVERAGE] = sum(scored) / len(scored) if scored else float("nan")
        if (model, backend) in speed.index:
            wall, tokens_per_s = speed.loc[(model, backend)]
            row["wall time (s)"] = round(float(wall), 1)
            row["tokens/s"] = round(float(tokens_per_s), 1)
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(AVERAGE, ascending=False, na_position="last")
    ordered = ["model", "backend", *sorted(headers.values()), AVERAGE, "wall time (s)", "tokens/s"]
    table = table.reindex(columns=ordered)
    table[AVERAGE] = table[AVERAGE].map(lambda v: "" if pd.isna(v) else f"{v:.4f}")
    return table.fillna("—")


def write_markdown(engine: Engine, out_dir: Path) -> Path:
    table = leaderboard(engine)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "leaderboard.md"
    intro = (
        "# Leaderboard\n\n"
        "Each cell is the task's primary metric from the newest run, ± its standard error "
        "(lm-eval's). ↑ higher is better, ↓ lower is better. The average covers the "
        "bounded higher-is-better scores (accuracy, exact match). Wall time is the "
        "evaluation time with model load excluded; tokens/s counts prompt and completion "
        "tokens over that time; both come from the newest run whose requests all ran on "
        "the model (none reused from the store).\n\n"
    )
    body = (
        table.to_markdown(index=False, disable_numparse=True)
        if not table.empty
        else "_The store holds no runs yet._"
    )
    path.write_text(intro + body + "\n", encoding="utf-8")
    return path
