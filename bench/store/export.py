"""Flat exports of the store's metrics (JSON list of objects, or CSV)."""

from __future__ import annotations

import json

from sqlalchemy.engine import Engine

from bench.store.store import metrics_frame

COLUMNS = [
    "run_id",
    "model",
    "task",
    "metric",
    "filter",
    "value",
    "stderr",
    "n_samples",
    "higher_is_better",
    "is_primary",
    "backend",
    "started_at",
]
FORMATS = ("json", "csv")


def export_metrics(engine: Engine, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format '{fmt}'; use one of {', '.join(FORMATS)}")
    frame = metrics_frame(engine).reindex(columns=COLUMNS)
    frame["started_at"] = frame["started_at"].astype(str)
    if fmt == "csv":
        return frame.to_csv(index=False)
    # Through Python floats, not DataFrame.to_json, which rounds to 10 digits.
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return json.dumps(records, indent=2)
