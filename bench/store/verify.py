"""Checks a bundle's runs before they land in a store.

A bundle is a contributor's claim. What follows from the model's answers is recomputed
here, from the answers alone, with the local task definitions: lm-eval builds every
request of every task again (prompts and targets from the local documents, few-shot
picks with its own seeds, the run's limit), takes each request's answer from the bundle,
and runs the task's own filters, per-sample metrics and aggregations. Every stored
sample, score, metric and stderr must equal what that gives, and the bundle must hold
exactly the documents the task has at the stated limit.

What cannot follow from the answers (that this model produced them, how fast, on what
hardware, at what cost) stays a claim, unless `spot_check` re-runs some samples on the
local model: then the answers, and with them the model's identity, are checked too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.backends.timing import RequestKey, RequestLog
from bench.catalog.loader import LoadedTask
from bench.errors import BadInput
from bench.records import ModelRef, RunSettings

# Per-sample scores and aggregates are recomputed by the same code from the same numbers,
# but on another machine numpy may sum in another order: a difference a forger could use
# is far above this.
TOLERANCE = 1e-9
# A spot check re-runs the model, possibly on another machine and batch: lm-eval's
# loglikelihoods agree to this (relative), greedy generations exactly.
SPOT_CHECK_TOLERANCE = 1e-4
# What an importer cannot recompute from a bundle: the contributor's word.
CLAIMS = ("model", "speed", "cost", "hardware")


class BundleRefused(BadInput):
    """The bundle does not match the local tasks, or its scores do not follow from it."""


@dataclass(frozen=True)
class Provenance:
    """Stored with an imported run (runs.provenance): what the importer checked."""

    imported_at: str
    rescored: bool = True  # every sample and metric recomputed from the answers
    spot_checked: int = 0  # samples re-run on the local model, answers equal
    claimed: tuple[str, ...] = CLAIMS  # figures taken on the contributor's word

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def run_settings(stored: dict) -> RunSettings:
    """RunSettings from a stored run's settings (fields a newer bench added are ignored)."""
    known = {f.name for f in dataclasses.fields(RunSettings)}
    return RunSettings(**{k: v for k, v in stored.items() if k in known})


def _answer(output_type: str, response):
    """One request's answer as the backend returned it, from its JSON form."""
    if output_type in ("loglikelihood", "multiple_choice"):
        logprob, greedy = response
        return float(logprob), bool(greedy)
    if output_type == "loglikelihood_rolling":
        return float(response)
    if not isinstance(response, str):
        raise TypeError(f"a generation must be text, not {type(response).__name__}")
    return response


def bundle_answers(entry: dict, tasks: dict[str, LoadedTask]) -> RequestLog:
    """Every request's answer, from the samples' raw responses (lm-eval's `resps`: one list
    per request, in request order). A document's filters share one set of answers."""
    run_id = entry["run"]["run_id"]
    log = RequestLog()
    seen: dict[tuple[str, int], str] = {}
    for sample in entry["samples"]:
        doc = (sample["task"], int(sample["doc_id"]))
        if doc in seen:
            if seen[doc] != sample["raw_response"]:
                raise BundleRefused(
                    f"run {run_id}: {doc[0]} doc {doc[1]} has different answers under "
                    "different filters"
                )
            continue
        seen[doc] = sample["raw_response"]
        if doc[0] not in tasks:
            raise BundleRefused(f"run {run_id}: sample of task '{doc[0]}', not in the run")
        output_type = tasks[doc[0]].output_type
        try:
            for idx, responses in enumerate(json.loads(sample["raw_response"])):
                log.answers[RequestKey(doc[0], doc[1], idx)] = _answer(output_type, responses[0])
        except (TypeError, ValueError, IndexError, KeyError) as err:
            raise BundleRefused(
                f"run {run_id}: {doc[0]} doc {doc[1]} has no readable answers ({err})"
            ) from None
    return log


class _NoModel:
    """What lm-eval asks of a model while building requests, for a replay with no model."""

    rank = 0
    world_size = 1
    tokenizer_name = ""

    def __init__(self, timings: RequestLog):
        self.timings = timings


def rescore(entry: dict, tasks: dict[str, LoadedTask]) -> None:
    """Raise BundleRefused naming the first sample, task or metric of the run that does not
    follow from its answers and the local task definitions."""
    from bench.engine.evaluate import score_answers

    run = entry["run"]
    run_id = run["run_id"]
    settings = run_settings(run["settings"])
    if settings.apply_chat_template:
        raise BundleRefused(
            f"run {run_id} used the model's chat template, which bench cannot rebuild "
            "without the model; re-scoring such runs is not supported yet"
        )
    run_tasks = [tasks[t["task"]] for t in entry["tasks"]]
    answers = bundle_answers(entry, tasks)
    partial = run.get("status") != "complete"
    # A partial run answered each task's first documents (see RequestLog.answered_docs).
    docs = {t["task"]: list(range(int(t["n_samples"]))) for t in entry["tasks"]}
    model = ModelRef(run["model"], Path(), run["weights_sha256"], run["model_source"])
    try:
        record = score_answers(
            _NoModel(answers),
            answers,
            run_tasks,
            model,
            settings,
            started_at=datetime.now(UTC),
            load_s=0.0,
            wall_s=0.0,
            samples=docs if partial else None,
        )
    except KeyError as err:
        key = err.args[0] if err.args else None
        if isinstance(key, RequestKey):
            raise BundleRefused(
                f"run {run_id}: {key.task} doc {key.doc_id} is missing (the task has it "
                f"{'at limit ' + format(settings.limit, 'g') if settings.limit else 'in full'})"
            ) from None
        raise
    _same_tasks(run_id, entry["tasks"], record.manifest.tasks)
    _same_samples(run_id, entry["samples"], record.samples)
    _same_metrics(run_id, entry["metrics"], record.metrics)


def _close(claimed, computed, tolerance: float = TOLERANCE) -> bool:
    if isinstance(claimed, list | tuple) and isinstance(computed, list | tuple):
        return len(claimed) == len(computed) and all(
            _close(a, b, tolerance) for a, b in zip(claimed, computed, strict=True)
        )
    if isinstance(claimed, bool) or isinstance(computed, bool):
        return claimed == computed
    if isinstance(claimed, int | float) and isinstance(computed, int | float):
        if math.isnan(claimed) or math.isnan(computed):
            return math.isnan(claimed) and math.isnan(computed)
        return math.isclose(claimed, computed, rel_tol=tolerance, abs_tol=tolerance)
    return claimed == computed


def _same_tasks(run_id: str, claimed: list[dict], computed) -> None:
    for row, version in zip(claimed, computed, strict=True):
        if int(row["n_samples"]) != version.n_samples:
            raise BundleRefused(
                f"run {run_id}: task '{row['task']}' claims {row['n_samples']} documents, "
                f"the task has {version.n_samples} at the run's limit"
            )


def _same_samples(run_id: str, claimed: list[dict], computed) -> None:
    expected = {(s.task, s.doc_id, s.filter): s for s in computed}
    seen: set[tuple] = set()
    for row in claimed:
        key = (row["task"], int(row["doc_id"]), row["filter"])
        where = f"run {run_id}: {key[0]} doc {key[1]} ({key[2]})"
        if key in seen:
            raise BundleRefused(f"{where} appears twice")
        seen.add(key)
        mine = expected.get(key)
        if mine is None:
            raise BundleRefused(f"{where} is not a document of the task at the run's limit")
        for name in ("prompt", "target", "response"):
            if row[name] != getattr(mine, name):
                raise BundleRefused(f"{where}: its {name} is not what the local task gives")
        # Bundles made before revision 0004 carry no cluster, as their tasks declared none.
        if row.get("cluster") != mine.cluster:
            raise BundleRefused(f"{where}: its cluster is not what the local task gives")
        if set(row["scores"]) != set(mine.scores):
            raise BundleRefused(f"{where}: scores {sorted(row['scores'])} are not the task's")
        for metric, value in mine.scores.items():
            if not _close(row["scores"][metric], value):
                raise BundleRefused(
                    f"{where}: {metric} is stored as {row['scores'][metric]} but its answers "
                    f"give {value}"
                )
    missing = sorted(set(expected) - seen)
    if missing:
        task, doc, filter_name = missing[0]
        raise BundleRefused(
            f"run {run_id}: {task} doc {doc} ({filter_name}) is missing "
            f"({len(missing)} samples in all)"
        )


def _same_metrics(run_id: str, claimed: list[dict], computed) -> None:
    expected = {(m.task, m.metric, m.filter): m for m in computed}
    keys = [(row["task"], row["metric"], row["filter"]) for row in claimed]
    if sorted(keys) != sorted(expected):
        extra = sorted(set(keys) ^ set(expected))
        raise BundleRefused(f"run {run_id}: metrics differ from the task's: {extra[:3]}")
    for row, key in zip(claimed, keys, strict=True):
        mine = expected[key]
        name = f"run {run_id}: {key[0]}/{key[1]} ({key[2]})"
        if not _close(row["value"], mine.value):
            raise BundleRefused(
                f"{name} is stored as {row['value']} but its samples give {mine.value}"
            )
        if not _close(row["stderr"], mine.stderr):
            raise BundleRefused(
                f"{name} has stderr {row['stderr']} but its samples give {mine.stderr}"
            )
        if int(row["n_samples"]) != mine.n_samples or bool(row["is_primary"]) != mine.primary:
            raise BundleRefused(f"{name}: its sample count or primary flag was changed")


def choose_docs(entry: dict, n: int, rng: random.Random) -> dict[str, list[int]]:
    """n documents of the run, drawn at random across its tasks."""
    docs = sorted({(s["task"], int(s["doc_id"])) for s in entry["samples"]})
    chosen: dict[str, list[int]] = {}
    for task, doc in rng.sample(docs, min(n, len(docs))):
        chosen.setdefault(task, []).append(doc)
    return chosen


def spot_check(
    entry: dict,
    tasks: dict[str, LoadedTask],
    n: int,
    backend_for: Callable[[dict], object],
    rng: random.Random | None = None,
) -> int:
    """Re-run n random documents of the run on the local model (`backend_for(run)` starts
    the run's backend on it) and refuse the bundle if any answer differs. Returns n."""
    from bench.engine.evaluate import answer_shard

    run = entry["run"]
    settings = run_settings(run["settings"])
    claimed = bundle_answers(entry, tasks).answers
    chosen = choose_docs(entry, n, rng or random.SystemRandom())
    backend = backend_for(run)
    try:
        for task, doc_ids in chosen.items():
            answer_shard(backend, [tasks[task]], settings, task, set(doc_ids))
        answers = dict(backend.timings.answers)
    finally:
        if hasattr(backend, "close"):
            backend.close()
    for key, answer in sorted(answers.items(), key=lambda kv: (kv[0].task, kv[0].doc_id)):
        theirs = claimed.get(key)
        if not _same_answer(theirs, answer):
            raise BundleRefused(
                f"run {run['run_id']}: spot check of {key.task} doc {key.doc_id} request "
                f"{key.idx}: the bundle says {_show(theirs)}, the model here gives {_show(answer)}"
            )
    return sum(len(d) for d in chosen.values())


def _same_answer(claimed, computed) -> bool:
    if isinstance(computed, tuple):  # (loglikelihood, greedy)
        return (
            isinstance(claimed, tuple)
            and _close(claimed[0], computed[0], SPOT_CHECK_TOLERANCE)
            and claimed[1] == computed[1]
        )
    if isinstance(computed, float):
        return isinstance(claimed, float) and _close(claimed, computed, SPOT_CHECK_TOLERANCE)
    return claimed == computed


def _show(answer) -> str:
    text = repr(answer)
    return text if len(text) <= 80 else text[:77] + "..."


def local_backend(run: dict):
    """The run's backend on the local copy of its model, for a spot check; refused where
    the model is not here, or its weights are not the ones the bundle names."""
    from bench.backends import GGUF_BACKENDS, SERVER_BACKENDS
    from bench.engine.evaluate import start_backend
    from bench.models.packs import PackError
    from bench.models.resolve import UnknownModelError, resolve_model

    settings = run_settings(run["settings"])
    name = run["model"]
    if settings.backend in SERVER_BACKENDS:
        raise BundleRefused(
            f"run {run['run_id']} was answered by a server ({name}): a spot check needs "
            "the model's weights here"
        )
    try:
        model = resolve_model(name, gguf=settings.backend in GGUF_BACKENDS)
    except (UnknownModelError, PackError) as err:
        raise BundleRefused(f"cannot spot-check run {run['run_id']}: {err}") from None
    if model.weights_sha256 != run["weights_sha256"]:
        raise BundleRefused(
            f"cannot spot-check run {run['run_id']}: the local {name} has weights "
            f"{model.weights_sha256[:12]}, the bundle names {run['weights_sha256'][:12]}"
        )
    return start_backend(settings.backend, model.path, settings)
