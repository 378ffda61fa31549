"""Result bundles: runs with their manifests, metrics and samples in one file.

Importing checks a bundle before it lands in a store: its tasks must be the local task
definitions (same content hash), and every stored score must follow from its samples
(recomputed with the task's own lm-eval aggregation). A bundle that fails is refused.
"""

from __future__ import annotations

import gzip
import json
import math
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.errors import BadInput
from bench.scoring.disparity import aggregation_for
from bench.store.schema import Metric, RequestTiming, Run, RunTask, Sample

FORMAT = "bench-bundle/1"
TABLES = {"tasks": RunTask, "metrics": Metric, "samples": Sample, "requests": RequestTiming}
TOLERANCE = 1e-9


class BundleRefused(BadInput):
    """The bundle does not match the local tasks, or its scores do not follow from it."""


def _row(obj) -> dict:
    row = {c.name: getattr(obj, c.name) for c in obj.__table__.columns}
    row.pop("id", None)  # surrogate keys are the importing store's business
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def write_bundle(engine: Engine, path: Path, run_ids: list[str] | None = None) -> int:
    with Session(engine) as session:
        query = select(Run)
        if run_ids:
            query = query.where(Run.run_id.in_(run_ids))
        runs = []
        for run in session.scalars(query):
            entry = {"run": _row(run)}
            for name, table in TABLES.items():
                rows = session.scalars(select(table).where(table.run_id == run.run_id))
                entry[name] = [_row(r) for r in rows]
            runs.append(entry)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump({"format": FORMAT, "runs": runs}, handle)
    return len(runs)


def read_bundle(path: Path) -> list[dict]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError) as err:
        raise BundleRefused(f"{path} is not a bench bundle: {err}") from None
    if data.get("format") != FORMAT:
        raise BundleRefused(f"{path} is not a {FORMAT} file")
    return data["runs"]


def verify(runs: list[dict], include_paths: list[Path] | None = None) -> None:
    """Raise BundleRefused naming the first task or metric that does not hold."""
    from bench.catalog.loader import load_tasks

    names = sorted({t["task"] for entry in runs for t in entry["tasks"]})
    local = {t.name: t for t in load_tasks(names, include_paths)} if names else {}
    for entry in runs:
        run_id = entry["run"]["run_id"]
        for task in entry["tasks"]:
            mine = local[task["task"]].content_hash
            if task["content_hash"] != mine:
                raise BundleRefused(
                    f"run {run_id}: task '{task['task']}' was run with content hash "
                    f"{task['content_hash'][:12]}, the local definition has {mine[:12]}"
                )
        for metric in entry["metrics"]:
            aggregate = aggregation_for(local[metric["task"]].task, metric["metric"])
            items = [
                s["scores"][metric["metric"]]
                for s in entry["samples"]
                if s["task"] == metric["task"] and s["filter"] == metric["filter"]
            ]
            if len(items) != metric["n_samples"]:
                raise BundleRefused(
                    f"run {run_id}: {metric['task']}/{metric['metric']} claims "
                    f"{metric['n_samples']} samples, the bundle has {len(items)}"
                )
            value = float(aggregate([tuple(i) if isinstance(i, list) else i for i in items]))
            both_undefined = math.isnan(value) and math.isnan(metric["value"])
            close = math.isclose(value, metric["value"], rel_tol=TOLERANCE, abs_tol=TOLERANCE)
            if not (close or both_undefined):
                raise BundleRefused(
                    f"run {run_id}: {metric['task']}/{metric['metric']} ({metric['filter']}) "
                    f"is stored as {metric['value']} but its samples give {value}"
                )


def import_runs(engine: Engine, runs: list[dict]) -> list[str]:
    """Insert verified runs; a run id already in the store is refused."""
    with Session(engine) as session, session.begin():
        for entry in runs:
            run = dict(entry["run"])
            if session.get(Run, run["run_id"]) is not None:
                raise BundleRefused(f"run {run['run_id']} is already in the store")
            run["started_at"] = datetime.fromisoformat(run["started_at"])
            session.add(Run(**run))
            session.flush()
            for name, table in TABLES.items():
                session.add_all(table(**row) for row in entry[name])
    return [entry["run"]["run_id"] for entry in runs]
