"""What a Ray actor runs: one model loaded once, answering work units, then scoring the run.

Plain Python (the driver wraps it with `ray.remote`), so it imports no Ray itself.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bench.backends import create_backend
from bench.backends.timing import RequestKey, RequestLog, RequestTiming
from bench.catalog.loader import load_tasks
from bench.distributed.units import WorkUnit
from bench.engine.evaluate import answer_shard, cache_namespace, score_answers
from bench.records import ModelRef, RunPlan, RunRecord
from bench.store.cache import RequestCache
from bench.store.store import open_store


@dataclass(frozen=True)
class UnitResult:
    unit: WorkUnit
    answers: dict[RequestKey, Any]
    timings: dict[RequestKey, RequestTiming]
    sent: int  # requests the model answered
    reused: int  # requests answered from the store's request cache
    wall_s: float
    pid: int
    node: str


class ModelWorker:
    def __init__(self, model: ModelRef, plan: RunPlan, store: str | None):
        self.model = model
        self.plan = plan
        begin = time.perf_counter()
        self.backend = create_backend(plan.settings.backend, model.path, plan.settings)
        self.load_s = time.perf_counter() - begin
        # Answers go to the store's request cache as they arrive, as in a local run: a
        # unit cut off by a dead worker, or a run interrupted, resumes from them.
        self.cache = (
            RequestCache(open_store(store), cache_namespace(model, plan.settings))
            if plan.settings.use_cache
            else None
        )

    def where(self) -> tuple[int, str]:
        return os.getpid(), platform.node()

    def _tasks(self):
        # Fresh Task objects each time: lm-eval keeps per-run state on them.
        return load_tasks(self.plan.tasks, self.plan.include_paths, self.plan.trust_task_code)

    def run_unit(self, unit: WorkUnit) -> UnitResult:
        log = RequestLog(cache=self.cache)
        self.backend.timings = log
        begin = time.perf_counter()
        # Only the unit's task: lm-eval builds each task's requests on its own.
        tasks = [t for t in self._tasks() if t.name == unit.task]
        answer_shard(
            self.backend, tasks, self.plan.settings, unit.task, range(unit.start, unit.stop)
        )
        pid, node = self.where()
        return UnitResult(
            unit,
            dict(log.answers),
            dict(log.records),
            log.sent,
            log.reused,
            time.perf_counter() - begin,
            pid,
            node,
        )

    def score(self, results: list[UnitResult], started_at: datetime) -> RunRecord:
        """The model's run over all tasks, from its units' answers (no model calls)."""
        merged = RequestLog()
        for result in results:
            merged.answers.update(result.answers)
            merged.records.update(result.timings)
            merged.sent += result.sent
            merged.reused += result.reused
        return score_answers(
            self.backend,
            merged,
            self._tasks(),
            self.model,
            self.plan.settings,
            started_at=started_at,
            load_s=self.load_s,
            wall_s=sum(r.wall_s for r in results),
        )

    def close(self) -> None:
        if hasattr(self.backend, "close"):
            self.backend.close()
