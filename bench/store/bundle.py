"""Result bundles: runs with their manifests, metrics and samples in one file.

Importing checks a bundle before it lands in a store (bench/store/verify.py): its tasks
must be the local task definitions, and every sample, score and metric must follow from
the model's answers. A bundle that fails is refused. A bundle carries no local paths.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.store.schema import Metric, RequestTiming, Run, RunTask, Sample
from bench.store.verify import BundleRefused, Provenance, rescore

FORMAT = "bench-bundle/1"
TABLES = {"tasks": RunTask, "metrics": Metric, "samples": Sample, "requests": RequestTiming}


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
            runs.append(_portable(entry))
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


def _portable(entry: dict) -> dict:
    """The entry without the paths of the machine it was made on: a task's source is
    named by its pack folder and file, the model by its name (and weights hash) alone.
    Provenance is the importing store's own finding, never taken from a bundle."""
    run = {**entry["run"], "model_path": "", "provenance": None}
    tasks = [{**t, "source": _pack_relative(t["source"])} for t in entry["tasks"]]
    return {**entry, "run": run, "tasks": tasks}


def _pack_relative(source: str) -> str:
    path = Path(source)
    return f"{path.parent.name}/{path.name}" if path.is_absolute() else source


def verify(runs: list[dict], include_paths: list[Path] | None = None) -> dict:
    """Raise BundleRefused naming the first task, sample or metric that does not hold.
    Returns the local tasks the runs were checked against, by name."""
    local = local_tasks(runs, include_paths)
    for entry in runs:
        run_id = entry["run"]["run_id"]
        for task in entry["tasks"]:
            mine = local[task["task"]].content_hash
            if task["content_hash"] != mine:
                raise BundleRefused(
                    f"run {run_id}: task '{task['task']}' was run with content hash "
                    f"{task['content_hash'][:12]}, the local definition has {mine[:12]}"
                )
        rescore(entry, local)
    return local


def local_tasks(runs: list[dict], include_paths: list[Path] | None = None) -> dict:
    from bench.catalog.loader import load_tasks

    names = sorted({t["task"] for entry in runs for t in entry["tasks"]})
    return {t.name: t for t in load_tasks(names, include_paths)} if names else {}


def import_runs(engine: Engine, runs: list[dict], spot_checked: int = 0) -> list[str]:
    """Insert verified runs, marked as imported; a run id already in the store is refused.
    spot_checked: samples of each run re-run on the local model and found equal."""
    provenance = Provenance(
        imported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        spot_checked=spot_checked,
        claimed=("speed", "cost", "hardware") if spot_checked else Provenance.claimed,
    )
    with Session(engine) as session, session.begin():
        for entry in map(_portable, runs):
            run = {**entry["run"], "provenance": provenance.as_dict()}
            if session.get(Run, run["run_id"]) is not None:
                raise BundleRefused(f"run {run['run_id']} is already in the store")
            run["started_at"] = datetime.fromisoformat(run["started_at"])
            session.add(Run(**run))
            session.flush()
            for name, table in TABLES.items():
                session.add_all(table(**row) for row in entry[name])
    return [entry["run"]["run_id"] for entry in runs]
