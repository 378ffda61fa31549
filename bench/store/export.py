"""Flat exports of the store: metrics, samples or runs, as JSON, JSON lines, CSV, Parquet."""

from __future__ import annotations

import io
import json

from sqlalchemy.engine import Engine

from bench.store.schema import Run, Sample
from bench.store.store import metrics_frame, read_table

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
FORMATS = ("json", "jsonl", "csv", "parquet")
TABLES = ("metrics", "samples", "runs")


def export_metrics(engine: Engine, fmt: str) -> str:
    """Metrics as text: JSON (a list of objects) or CSV."""
    return export_table(engine, "metrics", fmt).decode()


def export_table(engine: Engine, what: str, fmt: str) -> bytes:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format '{fmt}'; use one of {', '.join(FORMATS)}")
    if what == "metrics":
        frame = metrics_frame(engine).reindex(columns=COLUMNS)
    elif what == "samples":
        frame = read_table(engine, Sample)
    elif what == "runs":
        frame = read_table(engine, Run)
    else:
        raise ValueError(f"unknown table '{what}'; use one of {', '.join(TABLES)}")
    for column in frame.columns:
        if column.endswith("_at"):
            frame[column] = frame[column].astype(str)
    if fmt == "parquet":
        # Nested JSON columns (settings, scores, ...) travel as JSON text.
        for column in frame.columns:
            if frame[column].map(lambda v: isinstance(v, dict | list)).any():
                frame[column] = frame[column].map(json.dumps)
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()
    if fmt == "csv":
        return frame.to_csv(index=False).encode()
    return encode_json(frame, fmt)


def encode_json(frame, fmt: str = "json") -> bytes:
    """JSON (a list) or JSON lines, through Python floats: DataFrame.to_json rounds to 10
    decimal places, which loses all but a few digits of small figures (costs per token)."""
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    if fmt == "jsonl":
        return "".join(json.dumps(r, default=str) + "\n" for r in records).encode()
    return json.dumps(records, indent=2, default=str).encode()
