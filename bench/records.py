"""Typed records passed between the stages: plan -> engine -> store -> report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunSettings:
    backend: str = "hf"
    model_args: dict[str, str] = field(default_factory=dict)
    num_fewshot: int | None = None
    limit: float | None = None
    batch_size: int = 8
    apply_chat_template: bool = False
    bootstrap_iters: int = 100_000  # lm-eval's default, so stderrs match its CLI
    base_url: str | None = None  # server backends
    use_cache: bool = True  # reuse answers stored by earlier runs (request cache)
    concurrency: int = 8  # requests in flight at once, server backends


@dataclass(frozen=True)
class RunPlan:
    models: list[str]
    tasks: list[str]
    settings: RunSettings
    include_paths: list[Path] = field(default_factory=list)
    trust_task_code: bool = False  # let local task YAML run its `!function` Python
    hardware_profile: str | None = None  # --hardware NAME; None: detected where safe
    hardware_file: Path | None = None  # --hardware-file: profiles beside the defaults
    latency: ProbeSettings | None = None  # --latency: probe each model after its run


@dataclass(frozen=True)
class ModelRef:
    name: str  # what the user typed: pack name, HF id or folder
    path: Path  # local Hugging Face directory
    weights_sha256: str
    source: str  # "pack" | "local" | "hub-cache"


@dataclass(frozen=True)
class TaskVersion:
    name: str
    content_hash: str
    source: str
    output_type: str
    n_samples: int


@dataclass(frozen=True)
class MetricRecord:
    task: str
    metric: str
    filter: str
    value: float
    stderr: float | None
    higher_is_better: bool | None
    n_samples: int
    primary: bool


@dataclass(frozen=True)
class SampleRecord:
    task: str
    doc_id: int
    filter: str
    prompt: str
    response: str  # JSON list of filtered responses (what the metric saw)
    raw_response: str  # JSON of the model's responses before filters
    target: str
    scores: dict[str, Any]
    wall_s: float
    prompt_tokens: int
    completion_tokens: int
    # The document's group where the task declares one (metadata `cluster`; see
    # bench/catalog/clusters.py): reports resample whole clusters. None otherwise.
    cluster: str | None = None


@dataclass(frozen=True)
class RequestRecord:
    """One lm-eval request's timing, as a backend measured it (see backends/timing.py)."""

    task: str
    doc_id: int
    idx: int
    request_type: str
    wall_s: float
    prompt_tokens: int
    completion_tokens: int
    batch_size: int
    ttft_s: float | None
    chunk_times: list[float] | None
    tokens_counted_by: str
    computed_tokens: float | None = None  # tokens through the model in this run (MFU)


@dataclass(frozen=True)
class Determinism:
    """What makes a run's per-sample results repeat bit for bit, as its backend set it up.
    Kept in the manifest's versions, as versions["determinism"]."""

    threads: int  # CPU threads of the model's arithmetic, fixed for the whole run
    deterministic_algorithms: bool  # torch's deterministic kernels (where there is a choice)
    batching: str  # how requests form batches: from the requests and the batch size alone
    holds: str = (
        "the same settings on the same machine, with answers computed afresh (a new store "
        "or --no-cache), give identical per-sample results; an answer reused from the "
        "store is the one its first run computed, in that run's batches"
    )


@dataclass(frozen=True)
class RunManifest:
    run_id: str
    model: ModelRef
    tasks: list[TaskVersion]
    settings: RunSettings
    # Package versions; and "determinism": the backend's Determinism as a dict, where it
    # describes one (the hf backend does).
    versions: dict[str, Any]
    hardware: dict[str, str | int | float]
    started_at: datetime
    load_s: float
    wall_s: float  # evaluation time, model load excluded
    prompt_tokens: int
    completion_tokens: int
    status: str = "complete"  # or "partial": stopped by a failure, answered documents only
    error: str | None = None
    requests_sent: int = 0  # requests the model answered during this run
    requests_reused: int = 0  # requests answered from the store's request cache
    # Cost and efficiency inputs (see bench/metrics/cost.py). Only the hardware profile's
    # name is stored: prices are read from the profiles when a report is written.
    hardware_profile: str | None = None
    energy_j: float | None = None  # NVML energy over the timed region; None: see note
    energy_note: str | None = None
    model_params: int | None = None
    weight_bytes: int | None = None
    kv_bytes_per_token: int | None = None

    @property
    def tokens_per_s(self) -> float:
        total = self.prompt_tokens + self.completion_tokens
        return total / self.wall_s if self.wall_s > 0 else 0.0


@dataclass(frozen=True)
class RunRecord:
    manifest: RunManifest
    metrics: list[MetricRecord]
    samples: list[SampleRecord]
    requests: list[RequestRecord] = field(default_factory=list)


@dataclass(frozen=True)
class ProbeSettings:
    """How the latency probe replays a task's prompts (see bench/probe)."""

    concurrency_levels: tuple[int, ...] = (1, 8)  # closed loop: this many in flight
    request_rate: float | None = None  # instead: Poisson arrivals at this many per second
    output_len: int | None = None  # fixed max_tokens (and ignore_eos where the server can)
    num_prompts: int | None = None  # requests per level [default: every prompt, at least
    # twice the highest concurrency, the prompts repeated in order]
    warmup: int = 2  # requests sent and discarded before the first level
    seed: int = 0  # Poisson arrival times
    slo: str = ""  # goodput limits, "ttft=MS,tpot=MS,e2e=MS"


@dataclass(frozen=True)
class ProbeRequest:
    level: int  # index of the level in ProbeRecord.levels
    seq: int
    task: str
    doc_id: int
    start_s: float  # send time, from the level's start
    e2e_s: float
    ttft_s: float | None
    chunk_times: list[float] | None
    prompt_tokens: int
    completion_tokens: int
    tokens_counted_by: str
    ok: bool = True
    error: str | None = None


@dataclass(frozen=True)
class ProbeLevel:
    level: int
    concurrency: int | None
    request_rate: float | None
    duration_s: float
    summary: dict  # bench.metrics.latency.LatencySummary.as_dict()
    energy_j: float | None = None
    energy_note: str | None = None


@dataclass(frozen=True)
class ProbeRecord:
    probe_id: str
    model: ModelRef
    settings: RunSettings
    probe: ProbeSettings
    tasks: list[str]
    started_at: datetime
    hardware: dict[str, str | int | float]
    hardware_profile: str | None
    ignore_eos: bool  # whether the server accepted ignore_eos with --output-len
    levels: list[ProbeLevel]
    requests: list[ProbeRequest]
    run_id: str | None = None  # the run it followed (bench run --latency)
    model_params: int | None = None
    weight_bytes: int | None = None
    kv_bytes_per_token: int | None = None


@dataclass(frozen=True)
class ExecutorOptions:
    """Where a plan runs: in this process (local) or on a Ray cluster (ray)."""

    kind: str = "local"  # local | ray
    address: str | None = None  # Ray cluster to join (ray start --head ...); None: Ray here
    shard_size: int | None = 100  # documents per work unit; None: a whole task per unit
    replicas: int = 1  # workers (loaded copies) per model
    cpus_per_worker: float = 1
    max_retries: int = 3  # restarts of a dead worker, and retries of the unit it was on
