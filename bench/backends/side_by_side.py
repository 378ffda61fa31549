"""Independent forward passes side by side on a CPU, one torch thread each.

A batch of a few short rows keeps two cores poorly busy: a matrix product that small
spends much of its time splitting its rows among threads and waiting at barriers. Two
such batches side by side, each on one core, finished 1.2-1.3x sooner than one after the
other on both cores (SmolLM2, 8 rows of 18 tokens, this 2-core machine). torch releases
the GIL inside its operators, and OpenMP's thread count is a per-thread setting, so each
worker sets its own. A scored row comes out as the same bits at any thread count
(bench/backends/threads.py; tests/test_speedups.py checks it), so answers do not change.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

Item = TypeVar("Item")
Result = TypeVar("Result")


class Occupancy:
    """When each item ran, to split the wall time among the items that ran together."""

    def __init__(self) -> None:
        self._spans: list[list[float]] = []
        self._lock = threading.Lock()

    def begin(self) -> list[float]:
        with self._lock:  # stamped under the lock: share() sees every span begun before it
            span = [time.perf_counter(), math.inf]
            self._spans.append(span)
        return span

    def end(self, span: list[float]) -> None:
        span[1] = time.perf_counter()

    def share(self, span: list[float]) -> float:
        """The span's seconds, each moment divided by the number of items running then.
        Items begin in order, so spans ended before this one began are dropped."""
        start, end = span
        with self._lock:
            self._spans = [s for s in self._spans if s[1] > start]
            together = [s for s in self._spans if s[0] < end]
        cuts = sorted({start, end, *(t for s in together for t in s if start < t < end)})
        return sum(
            (b - a) / sum(1 for s in together if s[0] <= a and s[1] >= b)
            for a, b in zip(cuts, cuts[1:], strict=False)
        )


class ThreadShare:
    """The caller's torch threads shared out among the items still to finish: one each
    while there are as many items as workers, all of them to the last item alone (alone
    on one thread, it would leave the other cores idle)."""

    def __init__(self, threads: int, workers: int, items: int) -> None:
        self.threads, self.workers, self.unfinished = threads, workers, items
        self._lock = threading.Lock()

    def apply(self, *_) -> None:
        """Set the calling thread's torch threads to its share now (a module pre-hook:
        a batch picks up freed cores from its next module on)."""
        share = max(1, self.threads // max(1, min(self.workers, self.unfinished)))
        if torch.get_num_threads() != share:
            torch.set_num_threads(share)  # this thread's own OpenMP setting

    def finished(self) -> None:
        with self._lock:
            self.unfinished -= 1


def run_in_order(
    compute: Callable[[Item], Result], items: list[Item], workers: int
) -> Iterator[tuple[Result, float]]:
    """Yield (compute(item), seconds) for each item, in order, computing up to `workers`
    items at once, each on a thread of its own with its share of the caller's torch
    threads (ThreadShare). `seconds` is the item's share of the wall time (Occupancy):
    the shares add up to the time the work took, as a batch's time is split among its
    requests."""
    if workers <= 1 or len(items) <= 1:
        for item in items:
            start = time.perf_counter()
            result = compute(item)
            yield result, time.perf_counter() - start
        return

    clock = Occupancy()
    share = ThreadShare(torch.get_num_threads(), workers, len(items))

    def timed(item: Item) -> tuple[Result, list[float]]:
        share.apply()
        span = clock.begin()
        try:
            result = compute(item)
        finally:
            clock.end(span)
            share.finished()
        return result, span

    pool = ThreadPoolExecutor(workers, thread_name_prefix="bench-batch")
    hook = torch.nn.modules.module.register_module_forward_pre_hook(share.apply)
    pending: deque = deque()
    queue = iter(items)
    try:
        # A few items ahead of the consumer: enough to keep every worker busy, few
        # enough that finished results do not pile up in memory.
        for item in queue:
            pending.append(pool.submit(timed, item))
            if len(pending) > workers:
                break
        while pending:
            result, span = pending.popleft().result()
            for item in queue:
                pending.append(pool.submit(timed, item))
                break
            yield result, clock.share(span)
    finally:
        hook.remove()
        pool.shutdown(wait=True, cancel_futures=True)
