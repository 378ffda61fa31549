"""Writes latency probes to the store (one transaction each) and reads them back."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.records import ProbeRecord
from bench.store.schema import LatencyProbe, ProbeLevel, ProbeRequest
from bench.store.store import _public, checkpoint, insert_records, read_sql

if TYPE_CHECKING:  # pandas costs 0.4 s to import; only readers need it
    import pandas as pd


def write_probe(engine: Engine, record: ProbeRecord) -> None:
    with Session(engine) as session, session.begin():
        session.add(
            LatencyProbe(
                probe_id=record.probe_id,
                run_id=record.run_id,
                model=record.model.name,
                model_path=str(record.model.path),
                weights_sha256=record.model.weights_sha256,
                backend=record.settings.backend,
                settings=_public(dataclasses.asdict(record.settings)),
                probe_settings=dataclasses.asdict(record.probe),
                tasks=list(record.tasks),
                started_at=record.started_at,
                hardware=record.hardware,
                hardware_profile=record.hardware_profile,
                ignore_eos=record.ignore_eos,
                model_params=record.model_params,
                weight_bytes=record.weight_bytes,
                kv_bytes_per_token=record.kv_bytes_per_token,
            )
        )
        session.flush()
        key = {"probe_id": record.probe_id}
        insert_records(session, ProbeLevel, record.levels, key)
        insert_records(session, ProbeRequest, record.requests, key)
    checkpoint(engine)


def probe_levels_frame(engine: Engine) -> pd.DataFrame:
    """Every probe level joined with its probe (model, backend, profile, settings)."""
    query = select(
        ProbeLevel,
        LatencyProbe.model,
        LatencyProbe.backend,
        LatencyProbe.started_at,
        LatencyProbe.hardware,
        LatencyProbe.hardware_profile,
        LatencyProbe.probe_settings,
        LatencyProbe.ignore_eos,
        LatencyProbe.weight_bytes,
        LatencyProbe.kv_bytes_per_token,
        LatencyProbe.model_params,
    ).join(LatencyProbe, LatencyProbe.probe_id == ProbeLevel.probe_id)
    with engine.connect() as connection:
        return read_sql(query, connection)


def probe_requests_frame(engine: Engine, probe_id: str) -> pd.DataFrame:
    query = select(ProbeRequest).where(ProbeRequest.probe_id == probe_id)
    with engine.connect() as connection:
        return read_sql(query, connection)
