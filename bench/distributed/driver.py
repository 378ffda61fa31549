"""Runs a plan on a Ray cluster: one actor per model copy, work units streamed back.

Each model gets `replicas` actors with the resources its backend needs, so the model is
loaded once per worker and reused for all its units. The driver hands each worker one
unit at a time, writes nothing until a model's units are all in, then has one of the
model's workers score the whole run from the gathered answers (lm-eval's aggregation
over every document, so the scores equal a local run's) and writes that run to the
store at once, while the other models go on. Answers also reach the store's request
cache as they arrive (the workers write them), so a rerun after an interruption asks
the models only what is missing. A worker that dies is restarted by Ray and its unit
retried (max_restarts / max_task_retries), and resubmitted by the driver if Ray gives up.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bench.distributed.units import WorkUnit, worker_resources
from bench.distributed.worker import ModelWorker, UnitResult
from bench.errors import BadInput, RunFailed
from bench.records import ExecutorOptions, ModelRef, RunPlan, RunRecord

# What workers need from the driver's environment (offline hubs, where packs and tasks
# live). Secrets are not passed: set them where the workers start (`ray start`).
WORKER_ENV = (
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "HF_HOME",
    "TOKENIZERS_PARALLELISM",
    "BENCH_CACHE",
    "BENCH_TASKS",
    "PYTHONPATH",
)


@dataclass
class _Model:
    ref: ModelRef
    todo: deque[WorkUnit]
    units: int
    actors: list = field(default_factory=list)
    results: list[UnitResult] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def run_on_ray(
    plan: RunPlan,
    models: list[ModelRef],
    units: list[WorkUnit],
    store: str,
    options: ExecutorOptions,
    write: Callable[[RunRecord], None],
    progress: Callable[[str], None],
) -> list[RunRecord]:
    try:
        import ray
    except ImportError:
        raise BadInput("--executor ray needs Ray: pip install -e '.[ray]'") from None

    env = {name: os.environ[name] for name in WORKER_ENV if name in os.environ}
    start_here = {} if options.address else {"include_dashboard": False}
    ray.init(
        address=options.address,
        runtime_env={"env_vars": env},
        log_to_driver=False,
        logging_level=logging.ERROR,
        **start_here,
    )
    try:
        _check_store_reachable(store, ray)
        return _Scheduler(ray, plan, models, units, store, options, write, progress).run()
    finally:
        ray.shutdown()


def _check_store_reachable(store: str, ray) -> None:
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if store.startswith("sqlite") and len(nodes) > 1:
        raise BadInput(
            f"the store {store} is a file on this machine, and workers on the cluster's other "
            f"{len(nodes) - 1} nodes cannot write it: use a shared store (--store postgresql://...)"
        )


class _Scheduler:
    def __init__(self, ray, plan, models, units, store, options, write, progress):
        self.ray = ray
        self.options = options
        self.write = write
        self.progress = progress
        self.models = {
            m.name: _Model(m, deque(u for u in units if u.model == m.name), 0) for m in models
        }
        for model in self.models.values():
            model.units = len(model.todo)
        self.worker_class = ray.remote(ModelWorker)
        self.plan = plan
        self.store = store
        self.in_flight: dict = {}  # ObjectRef -> (kind, model name, actor, unit)
        self.attempts: dict[WorkUnit, int] = {}
        self.records: dict[str, RunRecord] = {}

    def run(self) -> list[RunRecord]:
        for model in self.models.values():
            resources = worker_resources(
                self.plan.settings, model.ref.path, self.options.cpus_per_worker
            )
            self.progress(f"{model.ref.name}: {model.units} units, {resources.describe()}")
            for _ in range(self.options.replicas):
                actor = self.worker_class.options(
                    **resources.as_options(),
                    max_restarts=self.options.max_retries,
                    max_task_retries=self.options.max_retries,
                ).remote(model.ref, self.plan, self.store)
                model.actors.append(actor)
                self._submit("ready", model, actor, None, actor.where.remote())
                self._next(model, actor)
        while self.in_flight:
            ready, _ = self.ray.wait(list(self.in_flight), num_returns=1)
            kind, name, actor, unit = self.in_flight.pop(ready[0])
            self._finished(kind, self.models[name], actor, unit, ready[0])
        return [self.records[name] for name in self.models]

    def _submit(self, kind, model: _Model, actor, unit, ref) -> None:
        self.in_flight[ref] = (kind, model.ref.name, actor, unit)

    def _next(self, model: _Model, actor) -> None:
        """Give the worker its next unit; when the model's units are all in, score it."""
        if model.todo:
            unit = model.todo.popleft()
            self._submit("unit", model, actor, unit, actor.run_unit.remote(unit))
        elif len(model.results) == model.units and not any(
            v[1] == model.ref.name and v[0] in ("unit", "score") for v in self.in_flight.values()
        ):
            ref = actor.score.remote(model.results, model.started_at)
            self._submit("score", model, actor, None, ref)

    def _finished(self, kind, model: _Model, actor, unit, ref) -> None:
        from ray.exceptions import RayActorError, RayTaskError

        try:
            value = self.ray.get(ref)
        except RayActorError as err:
            # Ray restarted the worker and retried as often as allowed; try again until
            # our own count is spent too (the unit's answers so far are in the cache).
            self._retry(kind, model, actor, unit, err)
            return
        except RayTaskError as err:
            cause = getattr(err, "cause", None) or err
            if isinstance(cause, BadInput | RunFailed):
                raise cause from err
            raise RunFailed(f"{model.ref.name}: a worker failed: {cause!r}") from err
        if kind == "ready":
            pid, node = value
            self.progress(f"{model.ref.name}: worker ready on {node}, pid {pid}")
        elif kind == "unit":
            model.results.append(value)
            done = len(model.results)
            self.progress(
                f"{unit.label}: {len(value.answers)} requests ({value.sent} sent, "
                f"{value.reused} reused) in {value.wall_s:.1f} s on {value.node} pid "
                f"{value.pid} [{done}/{model.units}]"
            )
            self._next(model, actor)
            # Idle replicas may be the ones to score the model.
            for other in model.actors:
                if other is not actor and not self._busy(other):
                    self._next(model, other)
        elif kind == "score":
            self.write(value)
            self.records[model.ref.name] = value
            self.progress(f"{model.ref.name}: run {value.manifest.run_id} written")
            self._release(model)

    def _release(self, model: _Model) -> None:
        """Free the model's resources for the others; vLLM's engine processes stop first."""
        from ray.exceptions import RayError

        try:
            self.ray.get([w.close.remote() for w in model.actors], timeout=120)
        except RayError:  # a worker that cannot close is killed all the same
            pass
        for worker in model.actors:
            self.ray.kill(worker)

    def _busy(self, actor) -> bool:
        return any(v[2] is actor and v[0] != "ready" for v in self.in_flight.values())

    def _retry(self, kind, model: _Model, actor, unit, err) -> None:
        if kind == "ready":
            return  # only a greeting; the worker's units say whether it came back
        key = unit or WorkUnit(model.ref.name, f"<{kind}>", 0, 0)
        self.attempts[key] = self.attempts.get(key, 0) + 1
        if self.attempts[key] > self.options.max_retries:
            raise RunFailed(
                f"{model.ref.name}: a worker died {self.attempts[key]} times "
                f"({key.label if unit else kind}): {err}"
            ) from err
        self.progress(f"{model.ref.name}: worker died ({kind}); trying again")
        if kind == "unit":
            self._submit(kind, model, actor, unit, actor.run_unit.remote(unit))
        elif kind == "score":
            self._submit(
                kind, model, actor, None, actor.score.remote(model.results, model.started_at)
            )
