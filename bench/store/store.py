"""Opens a results store by SQLAlchemy URL and writes / reads whole runs."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import create_engine, event, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.records import RunRecord
from bench.secrets import redact_values
from bench.store.migrate import upgrade
from bench.store.schema import Metric, RequestTiming, Run, RunTask, Sample

if TYPE_CHECKING:  # pandas costs 0.4 s to import; only readers need it
    import pandas as pd


DEFAULT_STORE = "sqlite:///results/bench.db"


def store_url(url: str | None) -> str:
    """--store, else $BENCH_STORE, else results/bench.db."""
    return url or os.environ.get("BENCH_STORE") or DEFAULT_STORE


def open_store(url: str | None = None) -> Engine:
    url = store_url(url)
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]  # psycopg 3, the postgres extra
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    upgrade(engine)  # a new store is created, an older one brought up to date
    return engine


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def write_run(engine: Engine, record: RunRecord) -> None:
    """One transaction per run: a run is in the store whole, or not at all."""
    m = record.manifest
    with Session(engine) as session, session.begin():
        session.add(
            Run(
                run_id=m.run_id,
                model=m.model.name,
                model_path=str(m.model.path),
                model_source=m.model.source,
                weights_sha256=m.model.weights_sha256,
                backend=m.settings.backend,
                settings=_public(dataclasses.asdict(m.settings)),
                versions=m.versions,
                hardware=m.hardware,
                started_at=m.started_at,
                load_s=m.load_s,
                wall_s=m.wall_s,
                prompt_tokens=m.prompt_tokens,
                completion_tokens=m.completion_tokens,
                tokens_per_s=m.tokens_per_s,
                status=m.status,
                error=m.error,
                requests_sent=m.requests_sent,
                requests_reused=m.requests_reused,
                hardware_profile=m.hardware_profile,
                energy_j=m.energy_j,
                energy_note=m.energy_note,
                model_params=m.model_params,
                weight_bytes=m.weight_bytes,
                kv_bytes_per_token=m.kv_bytes_per_token,
            )
        )
        session.flush()
        key = {"run_id": m.run_id}
        insert_records(session, RunTask, m.tasks, key, name="task")
        insert_records(session, Metric, record.metrics, key, primary="is_primary")
        insert_records(session, Sample, record.samples, key)
        insert_records(session, RequestTiming, record.requests, key)
    checkpoint(engine)


def checkpoint(engine: Engine) -> None:
    """Copies what the SQLite write-ahead log holds into the file itself, so that the file
    alone holds every run written (users share a store by copying bench.db). Called once
    per run written: a process that keeps the store open, such as a notebook or a long
    run beside others, otherwise leaves the run in bench.db-wal until the last
    connection closes. PASSIVE: it neither waits for nor blocks other processes using
    the store; frames a reader still needs are copied by a later checkpoint."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


def insert_records(session: Session, table, records, key: dict, **renamed: str) -> None:
    """Records (flat dataclasses) as rows of `table`, with the `key` columns and some
    fields renamed, in one executemany INSERT. Building an ORM object per row, or a
    deep copy with dataclasses.asdict, cost 5x as much: 6.5 s for a run of 10,000
    samples and 23,000 request timings."""
    rows = []
    for record in records:
        row = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
        for field, column in renamed.items():
            row[column] = row.pop(field)
        rows.append({**key, **row})
    if rows:
        session.execute(insert(table), rows)


def public_url(url: str | None) -> str | None:
    """A server URL without credentials or query string: what may be stored."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _public(settings: dict) -> dict:
    # The last guard: should a path forget to refuse a secret, none is written.
    return redact_values({**settings, "base_url": public_url(settings.get("base_url"))})


def read_sql(query, connection) -> pd.DataFrame:
    import pandas

    return pandas.read_sql(query, connection)


def read_table(engine: Engine, table) -> pd.DataFrame:
    with engine.connect() as connection:
        return read_sql(select(table), connection)


def metrics_frame(engine: Engine) -> pd.DataFrame:
    """Every metric joined with its run's model and speed figures."""
    with engine.connect() as connection:
        query = select(
            Metric,
            Run.model,
            Run.backend,
            Run.started_at,
            Run.wall_s,
            Run.tokens_per_s,
            Run.prompt_tokens,
            Run.completion_tokens,
            Run.status,
            Run.hardware,
            Run.hardware_profile,
            Run.settings,
            Run.provenance,
        ).join(Run, Run.run_id == Metric.run_id)
        return read_sql(query, connection)
