"""A run's manifest as a person reads it: the tasks it ran at which version, and its
model, settings, package versions, hardware and timings as labelled sections."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.store.schema import Run, RunTask


@dataclass(frozen=True)
class TaskEntry:
    """One task of a run and the version of it the run used (store: run_tasks)."""

    task: str
    content_hash: str  # sha256 of the task's YAML and data: a changed task, a new hash
    source: str
    output_type: str
    n_samples: int


@dataclass(frozen=True)
class Section:
    title: str
    rows: list[tuple[str, str]]  # (label, value as text)


def text(value: object) -> str:
    """One manifest value as text: nested values as compact JSON, nothing as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str) if value else "—"
    return str(value)


def run_tasks(session: Session, run_id: str) -> list[TaskEntry]:
    query = select(RunTask).where(RunTask.run_id == run_id).order_by(RunTask.task)
    return [
        TaskEntry(t.task, t.content_hash, t.source, t.output_type, t.n_samples)
        for t in session.scalars(query)
    ]


def _pairs(stored: dict | None) -> list[tuple[str, str]]:
    return [(str(k), text(v)) for k, v in (stored or {}).items()]


def sections(run: Run) -> list[Section]:
    """The manifest, grouped as a reader looks for it; every stored field appears once."""
    model = [
        ("name", run.model),
        ("path", run.model_path),
        ("source", run.model_source),
        ("weights sha256", run.weights_sha256),
        ("backend", run.backend),
        ("parameters", text(run.model_params)),
        ("weight bytes", text(run.weight_bytes)),
        ("KV cache bytes per token", text(run.kv_bytes_per_token)),
    ]
    hardware = [("profile", text(run.hardware_profile)), *_pairs(run.hardware)]
    timing = [
        ("started", text(run.started_at)),
        ("status", run.status),
        ("error", text(run.error)),
        ("model load (s)", f"{run.load_s:.2f}"),
        ("evaluation wall time (s)", f"{run.wall_s:.2f}"),
        ("prompt tokens", text(run.prompt_tokens)),
        ("completion tokens", text(run.completion_tokens)),
        ("tokens/s", f"{run.tokens_per_s:.1f}"),
        ("requests sent to the model", text(run.requests_sent)),
        ("requests reused from the store", text(run.requests_reused)),
        ("energy (J)", text(run.energy_j) if run.energy_j is not None else text(run.energy_note)),
    ]
    return [
        Section("Model", model),
        Section("Settings", _pairs(run.settings)),
        Section("Versions", _pairs(run.versions)),
        Section("Hardware", hardware),
        Section("Timing and tokens", timing),
    ]


def raw(run: Run) -> str:
    """Every column of the run as JSON, for copying."""
    return json.dumps(
        {c.name: getattr(run, c.name) for c in Run.__table__.columns}, indent=2, default=str
    )
