"""Runs one model on a set of tasks through lm-eval and returns a typed RunRecord."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime

from lm_eval.api.model import LM

from bench.backends import create_backend
from bench.backends.process import ModelProcess
from bench.backends.spawn import in_child_process, spawn
from bench.backends.timing import RequestLog
from bench.catalog.clusters import cluster_field, cluster_of
from bench.catalog.loader import LoadedTask
from bench.engine.environment import hardware, package_versions
from bench.errors import RunFailed
from bench.hardware.energy import EnergyMeter
from bench.records import (
    MetricRecord,
    ModelRef,
    RequestRecord,
    RunManifest,
    RunRecord,
    RunSettings,
    SampleRecord,
    TaskVersion,
)
from bench.scoring import disparity
from bench.scoring.disparity import paired_field, sample_item
from bench.store.cache import RequestCache, digest
from bench.store.store import public_url


class PartialRun(RunFailed):
    """A run stopped by a failure; `record` holds the documents answered before it."""

    def __init__(self, failure: RunFailed, record: RunRecord | None):
        super().__init__(str(failure))
        self.record = record


class BackendView(LM):
    """An LM that answers requests its own way and takes everything else (tokenizer, chat
    template, rank) from a real backend, so lm-eval builds the very same requests."""

    def __init__(self, backend):
        super().__init__()
        self.backend = backend

    def __getattr__(self, name):
        return getattr(self.backend, name)

    # LM defines these itself, so __getattr__ would never reach the backend's.
    @property
    def rank(self) -> int:
        return self.backend.rank

    @property
    def world_size(self) -> int:
        return self.backend.world_size

    @property
    def tokenizer_name(self) -> str:
        return self.backend.tokenizer_name

    def apply_chat_template(self, *args, **kwargs):
        return self.backend.apply_chat_template(*args, **kwargs)

    def chat_template(self, *args, **kwargs):
        return self.backend.chat_template(*args, **kwargs)


class ReplayLM(BackendView):
    """Answers requests from a RequestLog, without a model: scores what a failed run
    had already received, or what the workers of a distributed run answered."""

    def __init__(self, backend, timings: RequestLog | None = None):
        super().__init__(backend)
        self.timings = timings if timings is not None else backend.timings

    def _replay(self, requests):
        return [self.timings.answers[self.timings.key(r)] for r in requests]

    def loglikelihood(self, requests, disable_tqdm=False):
        return self._replay(requests)

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        return self._replay(requests)

    def generate_until(self, requests, disable_tqdm=False):
        return self._replay(requests)


class ShardAnswered(Exception):
    """Raised by ShardLM once its documents are answered, to stop lm-eval before scoring."""


class ShardLM(BackendView):
    """Sends the backend only the requests of one task's documents in `doc_ids`.

    lm-eval draws few-shot examples from one random stream per task, document after
    document, so a document's prompt depends on the documents before it: a shard's
    requests must be cut from the whole task's requests, built as a local run builds them.
    """

    def __init__(self, backend, task: str, doc_ids: Collection[int]):
        super().__init__(backend)
        self.task = task
        self.doc_ids = doc_ids

    def _answer(self, request_type: str, requests):
        mine = [r for r in requests if r.task_name == self.task and r.doc_id in self.doc_ids]
        if mine:
            getattr(self.backend, request_type)(mine)
            raise ShardAnswered
        return [None] * len(requests)  # another task's requests (there are none in a unit)

    def loglikelihood(self, requests, disable_tqdm=False):
        return self._answer("loglikelihood", requests)

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        return self._answer("loglikelihood_rolling", requests)

    def generate_until(self, requests, disable_tqdm=False):
        return self._answer("generate_until", requests)


def cache_namespace(model: ModelRef, settings: RunSettings) -> str:
    """What, besides the request itself, decides a model's answer."""
    return digest(
        model.weights_sha256,
        model.name if model.source == "server" else "",
        settings.backend,
        settings.model_args,
        public_url(settings.base_url),
    )


def evaluate(
    model: ModelRef,
    load_tasks: Callable[[], list[LoadedTask]],
    settings: RunSettings,
    cache: Callable[[str], RequestCache] | None = None,
    backend: ModelProcess | None = None,
    listener: Callable[[int, int], None] | None = None,
) -> RunRecord:
    """Run the tasks on the model. On a failure mid-run (a dead server), raise PartialRun
    carrying a record of every document that was completely answered before it.

    With `cache` (namespace -> RequestCache), answers already in the store are reused and
    new ones are written there as they arrive. `backend`: the model's process, started
    earlier (start_backend). `listener(answered, asked)`: progress of the requests."""
    started_at = datetime.now(UTC)
    begin = time.perf_counter()
    backend = backend or start_backend(settings.backend, model.path, settings)
    # A model process may still be loading: the evaluation's clock starts once it is done.
    if isinstance(backend, ModelProcess):
        load_s = backend.ready().load_s
    else:
        load_s = time.perf_counter() - begin
    if cache is not None:
        backend.timings.cache = cache(cache_namespace(model, settings))
    backend.timings.listener = listener
    run = dict(model=model, settings=settings, started_at=started_at, load_s=load_s)
    try:
        return _evaluate(backend, load_tasks(), **run)
    except RunFailed as failure:
        answered = backend.timings.answered_docs()
        tasks = [t for t in load_tasks() if t.name in answered]
        if not tasks:
            raise PartialRun(failure, None) from failure
        partial = _evaluate(
            ReplayLM(backend), tasks, **run, samples=answered, status="partial", error=str(failure)
        )
        raise PartialRun(failure, partial) from failure
    finally:
        if hasattr(backend, "close"):
            backend.close()


def start_backend(name: str, model_path, settings: RunSettings):
    """The run's backend: in a child process where its model loads in Python (it may still
    be loading when this returns), else loaded here."""
    if in_child_process(name):
        return ModelProcess(spawn(name), model_path, settings)
    return create_backend(name, model_path, settings)


def _evaluate(
    backend,
    tasks: list[LoadedTask],
    model: ModelRef,
    settings: RunSettings,
    started_at: datetime,
    load_s: float,
    samples: dict[str, list[int]] | None = None,
    status: str = "complete",
    error: str | None = None,
) -> RunRecord:
    energy = EnergyMeter().start()  # over the timed region: model load excluded
    begin = time.perf_counter()
    results = _simple_evaluate(backend, tasks, settings, samples)
    wall_s = time.perf_counter() - begin
    energy.stop()

    pairing = {t.name: f for t in tasks if (f := paired_field(t.task))}
    clustering = {t.name: f for t in tasks if (f := cluster_field(t.task))}
    samples = _samples(results, backend.timings, pairing, clustering)
    versions = [
        TaskVersion(
            t.name,
            t.content_hash,
            t.source,
            t.output_type,
            int(results["n-samples"][t.name]["effective"]),
        )
        for t in tasks
    ]
    manifest = RunManifest(
        run_id=uuid.uuid4().hex[:12],
        model=model,
        tasks=versions,
        settings=settings,
        versions=_versions(backend),
        hardware=hardware(settings, model.path),
        started_at=started_at,
        load_s=load_s,
        wall_s=wall_s,
        prompt_tokens=sum(t.prompt_tokens for t in backend.timings.records.values()),
        completion_tokens=sum(t.completion_tokens for t in backend.timings.records.values()),
        status=status,
        error=error,
        requests_sent=backend.timings.sent,
        requests_reused=backend.timings.reused,
        energy_j=energy.reading.joules,
        energy_note=energy.reading.note,
    )
    requests = [
        RequestRecord(key.task, key.doc_id, key.idx, **dataclasses.asdict(timing))
        for key, timing in backend.timings.records.items()
    ]
    return RunRecord(manifest, _metrics(results, tasks), samples, requests)


def _versions(backend) -> dict:
    """Package versions, and what the backend does to repeat its results bit for bit."""
    versions: dict = package_versions()
    determinism = getattr(backend, "determinism", None)
    if determinism is not None:
        versions["determinism"] = dataclasses.asdict(determinism)
    return versions


def _simple_evaluate(
    lm, tasks: list[LoadedTask], settings: RunSettings, samples: dict | None = None
) -> dict:
    """lm-eval's evaluation of the built tasks, set up as its simple_evaluate does."""
    from bench.engine.harness import run_lm_eval

    return run_lm_eval(
        lm,
        [t.task for t in tasks],
        num_fewshot=settings.num_fewshot,
        limit=None if samples else settings.limit,
        samples=samples,
        apply_chat_template=settings.apply_chat_template,
        # The lm_eval CLI turns multi-turn few-shot on only together with a chat template.
        fewshot_as_multiturn=settings.apply_chat_template,
        bootstrap_iters=settings.bootstrap_iters,
    )


def answer_shard(
    backend, tasks: list[LoadedTask], settings: RunSettings, task: str, doc_ids: Collection[int]
) -> None:
    """Have the backend answer the requests of `task`'s documents in doc_ids (one work unit
    of a distributed run, or a bundle's spot check); the answers land in backend.timings
    (and its cache)."""
    try:
        _simple_evaluate(ShardLM(backend, task, doc_ids), tasks, settings)
    except ShardAnswered:
        return
    raise RunFailed(f"task {task} has none of the documents {min(doc_ids)}-{max(doc_ids)}")


def score_answers(
    backend,
    answers: RequestLog,
    tasks: list[LoadedTask],
    model: ModelRef,
    settings: RunSettings,
    started_at: datetime,
    load_s: float,
    wall_s: float,
    samples: dict[str, list[int]] | None = None,
) -> RunRecord:
    """The run's record from answers gathered elsewhere: lm-eval builds every request as a
    local run does, takes its answer from `answers`, and aggregates over all documents
    (same metrics, same bootstrap stderrs). `samples`: only these documents per task."""
    record = _evaluate(
        ReplayLM(backend, answers),
        tasks,
        model,
        settings,
        started_at=started_at,
        load_s=load_s,
        samples=samples,
    )
    return dataclasses.replace(record, manifest=dataclasses.replace(record.manifest, wall_s=wall_s))


def _primary_metric(task) -> str | None:
    chosen = (getattr(task.config, "metadata", None) or {}).get("primary_metric")
    if chosen:
        return chosen
    metric_list = getattr(task.config, "metric_list", None) or []
    return metric_list[0]["metric"] if metric_list else None


def _disparity_metric(results: dict, loaded: LoadedTask, n: int) -> MetricRecord | None:
    field = paired_field(loaded.task)
    if field is None:
        return None
    items = [
        sample_item(entry, field)
        for entry in results.get("samples", {}).get(loaded.name, [])
        if entry.get("filter", "none") == "none"
    ]
    return MetricRecord(
        task=loaded.name,
        metric=disparity.METRIC,
        filter="none",
        value=disparity.disparity(items),
        stderr=disparity.disparity_stderr(items),
        higher_is_better=False,
        n_samples=n,
        primary=False,
    )


def _metrics(results: dict, tasks: list[LoadedTask]) -> list[MetricRecord]:
    records = []
    for loaded in tasks:
        values = results["results"][loaded.name]
        better = results.get("higher_is_better", {}).get(loaded.name, {})
        n = int(results["n-samples"][loaded.name]["effective"])
        primary = _primary_metric(loaded.task)
        primary_taken = False
        paired = _disparity_metric(results, loaded, n)
        if paired is not None:
            records.append(dataclasses.replace(paired, primary=primary == disparity.METRIC))
            primary_taken = primary == disparity.METRIC
        for key, value in values.items():
            if "," not in key or "_stderr," in key or not isinstance(value, int | float):
                continue
            metric, filter_name = key.split(",", 1)
            stderr = values.get(f"{metric}_stderr,{filter_name}")
            is_primary = metric == primary and not primary_taken
            primary_taken = primary_taken or is_primary
            records.append(
                MetricRecord(
                    task=loaded.name,
                    metric=metric,
                    filter=filter_name,
                    value=float(value),
                    stderr=float(stderr) if isinstance(stderr, int | float) else None,
                    higher_is_better=better.get(metric),
                    n_samples=n,
                    primary=is_primary,
                )
            )
    return records


def _sample_scores(entry: dict, paired_by: str | None) -> dict:
    scores = {m: entry[m] for m in entry.get("metrics", []) if m in entry}
    if paired_by is not None and entry.get("filter", "none") == "none":
        scores[disparity.METRIC] = list(sample_item(entry, paired_by))
    return scores


def _as_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _samples(
    results: dict, timings: RequestLog, pairing: dict[str, str], clustering: dict[str, str]
) -> list[SampleRecord]:
    """pairing: task -> the document field that groups its paired prompts; clustering:
    task -> the document field that names each document's cluster."""
    by_doc = timings.by_doc()
    records = []
    for task_name, entries in results.get("samples", {}).items():
        for entry in entries:
            doc_id = int(entry["doc_id"])
            parts = by_doc.get((task_name, doc_id), [])
            # arguments: one tuple per request; its first element is the prompt.
            arguments = entry.get("arguments") or [("",)]
            records.append(
                SampleRecord(
                    task=task_name,
                    doc_id=doc_id,
                    filter=entry.get("filter", "none"),
                    prompt=_as_text(arguments[0][0]),
                    response=json.dumps(entry.get("filtered_resps"), default=str),
                    raw_response=json.dumps(entry.get("resps"), default=str),
                    target=_as_text(entry.get("target", "")),
                    # Per-sample metric values as lm-eval gives them (perplexity: [ll, units]).
                    scores=_sample_scores(entry, pairing.get(task_name)),
                    wall_s=sum(p.wall_s for p in parts),
                    prompt_tokens=sum(p.prompt_tokens for p in parts),
                    completion_tokens=sum(p.completion_tokens for p in parts),
                    cluster=cluster_of(entry, clustering.get(task_name)),
                )
            )
    return records
