"""The results store as pandas DataFrames, for notebooks: `bench.results.load(store)`."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bench.store.schema import Metric, RequestTiming, Run, RunTask, Sample
from bench.store.store import metrics_frame, open_store, read_table


@dataclass(frozen=True)
class Results:
    runs: pd.DataFrame
    metrics: pd.DataFrame  # joined with each run's model, backend and speed
    samples: pd.DataFrame


def load(store: str | None = None) -> Results:
    """Every run, metric and sample in the store (default: results/bench.db)."""
    engine = open_store(store)
    return Results(read_table(engine, Run), metrics_frame(engine), read_table(engine, Sample))


def find_run(store: str | None, run_id: str) -> dict | None:
    """A run's manifest, its tasks and metrics; a unique prefix of the id is enough."""
    engine = open_store(store)
    with Session(engine) as session:
        runs = session.scalars(select(Run).where(Run.run_id.startswith(run_id))).all()
        if len(runs) != 1:
            return None
        run = runs[0]
        manifest = {c.name: getattr(run, c.name) for c in Run.__table__.columns}
        tasks = session.scalars(select(RunTask).where(RunTask.run_id == run.run_id)).all()
        metrics = session.scalars(select(Metric).where(Metric.run_id == run.run_id)).all()
        manifest["tasks"] = [
            {c.name: getattr(t, c.name) for c in RunTask.__table__.columns if c.name != "run_id"}
            for t in tasks
        ]
        manifest["metrics"] = [
            {k: getattr(m, k) for k in ("task", "metric", "filter", "value", "stderr", "n_samples")}
            for m in metrics
        ]
        return manifest


def delete_run(store: str | None, run_id: str) -> bool:
    """Remove a run with its tasks, metrics, samples and timings (exact id)."""
    engine = open_store(store)
    with Session(engine) as session, session.begin():
        if session.get(Run, run_id) is None:
            return False
        for table in (RequestTiming, Sample, Metric, RunTask, Run):
            session.execute(delete(table).where(table.run_id == run_id))
    return True
