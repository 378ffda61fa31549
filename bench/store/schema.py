"""Results store tables (v0): runs, the task versions they used, metrics and samples."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Run(Base):
    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(512), index=True)
    model_path: Mapped[str] = mapped_column(Text)
    model_source: Mapped[str] = mapped_column(String(32))
    weights_sha256: Mapped[str] = mapped_column(String(64))
    backend: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict] = mapped_column(JSON)
    versions: Mapped[dict] = mapped_column(JSON)
    hardware: Mapped[dict] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    load_s: Mapped[float] = mapped_column(Float)
    wall_s: Mapped[float] = mapped_column(Float)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    tokens_per_s: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="complete")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    requests_sent: Mapped[int] = mapped_column(Integer, default=0)
    requests_reused: Mapped[int] = mapped_column(Integer, default=0)
    # Revision 0002 (latency and cost): the profile's name, never its price.
    hardware_profile: Mapped[str | None] = mapped_column(String(64), nullable=True)
    energy_j: Mapped[float | None] = mapped_column(Float, nullable=True)
    energy_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    model_params: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    weight_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    kv_bytes_per_token: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Revision 0003: None for a run measured into this store; for an imported run, what
    # the importer checked (bench/store/verify.py: Provenance).
    provenance: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class RunTask(Base):
    __tablename__ = "run_tasks"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    task: Mapped[str] = mapped_column(String(256), primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    output_type: Mapped[str] = mapped_column(String(32))
    n_samples: Mapped[int] = mapped_column(Integer)


class Metric(Base):
    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(256))
    metric: Mapped[str] = mapped_column(String(128))
    filter: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    stderr: Mapped[float | None] = mapped_column(Float, nullable=True)
    higher_is_better: Mapped[bool | None] = mapped_column(nullable=True)
    n_samples: Mapped[int] = mapped_column(Integer)
    is_primary: Mapped[bool] = mapped_column(default=False)


class Sample(Base):
    __tablename__ = "samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(256))
    doc_id: Mapped[int] = mapped_column(Integer)
    filter: Mapped[str] = mapped_column(String(128))
    prompt: Mapped[str] = mapped_column(Text)
    response: Mapped[str] = mapped_column(Text)
    raw_response: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    scores: Mapped[dict] = mapped_column(JSON)
    wall_s: Mapped[float] = mapped_column(Float)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    # Revision 0004: the document's cluster where its task declares one (metadata
    # `cluster`), else None; reports resample whole clusters (bench/report/stats.py).
    cluster: Mapped[str | None] = mapped_column(String(256), nullable=True)


class RequestTiming(Base):
    __tablename__ = "request_timings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(256))
    doc_id: Mapped[int] = mapped_column(Integer)
    idx: Mapped[int] = mapped_column(Integer)
    request_type: Mapped[str] = mapped_column(String(32))
    wall_s: Mapped[float] = mapped_column(Float)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    batch_size: Mapped[int] = mapped_column(Integer)
    ttft_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    chunk_times: Mapped[list | None] = mapped_column(JSON, nullable=True)
    tokens_counted_by: Mapped[str] = mapped_column(String(16))
    # Revision 0005: tokens that went through the model for this request in this run
    # (backends/timing.py); NULL in older rows, which the report counts as prompt +
    # completion tokens and marks.
    computed_tokens: Mapped[float | None] = mapped_column(Float, nullable=True)


class CachedAnswer(Base):
    __tablename__ = "request_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(64), index=True)
    request_type: Mapped[str] = mapped_column(String(32))
    answer: Mapped[object] = mapped_column(JSON)
    timing: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LatencyProbe(Base):
    """One latency probe (bench probe, bench run --latency): its settings and model."""

    __tablename__ = "latency_probes"

    probe_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str | None] = mapped_column(
        ForeignKey("runs.run_id", ondelete="SET NULL"), nullable=True, index=True
    )
    model: Mapped[str] = mapped_column(String(512), index=True)
    model_path: Mapped[str] = mapped_column(Text)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    backend: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict] = mapped_column(JSON)
    probe_settings: Mapped[dict] = mapped_column(JSON)
    tasks: Mapped[list] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    hardware: Mapped[dict] = mapped_column(JSON)
    hardware_profile: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ignore_eos: Mapped[bool] = mapped_column(Boolean)
    model_params: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    weight_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    kv_bytes_per_token: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ProbeLevel(Base):
    """One concurrency level (or request rate) of a probe, with its summary figures."""

    __tablename__ = "probe_levels"

    probe_id: Mapped[str] = mapped_column(
        ForeignKey("latency_probes.probe_id", ondelete="CASCADE"), primary_key=True
    )
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    concurrency: Mapped[int | None] = mapped_column(Integer, nullable=True)
    request_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    duration_s: Mapped[float] = mapped_column(Float)
    summary: Mapped[dict] = mapped_column(JSON)
    energy_j: Mapped[float | None] = mapped_column(Float, nullable=True)
    energy_note: Mapped[str | None] = mapped_column(Text, nullable=True)


class ProbeRequest(Base):
    """Every request a probe sent: when, how long, and each chunk's arrival."""

    __tablename__ = "probe_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    probe_id: Mapped[str] = mapped_column(
        ForeignKey("latency_probes.probe_id", ondelete="CASCADE"), index=True
    )
    level: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(256))
    doc_id: Mapped[int] = mapped_column(Integer)
    start_s: Mapped[float] = mapped_column(Float)
    e2e_s: Mapped[float] = mapped_column(Float)
    ttft_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    chunk_times: Mapped[list | None] = mapped_column(JSON, nullable=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    tokens_counted_by: Mapped[str] = mapped_column(String(16))
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
