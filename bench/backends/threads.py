"""How many CPU threads torch should use for this run.

torch starts one OpenMP thread per core. On a machine that other processes also keep
busy, every operator then waits at its barrier for the thread that got no core: a
forward pass of SmolLM2 took 42 s with 2 threads and 8.8 s with 1 at load 10 on 2 cores.
So the backend takes only the cores that other runnable processes leave free (at least
one). The thread count splits a matrix product's rows, not its sums: scores came out
bitwise the same (tests/test_parity.py compares with lm_eval at torch's default). The one
operator found to sum by thread count, attention for a one-token query (a decode step),
keeps torch's default count (bench/backends/decode_attention.py).
"""

from __future__ import annotations

import os
import statistics
import time


def _running_now() -> float | None:
    """Runnable processes other than this one, median of a few looks at /proc/loadavg."""
    samples = []
    try:
        for _ in range(5):
            with open("/proc/loadavg") as handle:
                samples.append(int(handle.read().split()[3].split("/")[0]) - 1)
            time.sleep(0.01)
    except (OSError, ValueError, IndexError):
        return None
    return statistics.median(samples)


def free_cores() -> int:
    """Cores that other runnable processes leave free; at least 1."""
    affinity = getattr(os, "sched_getaffinity", None)
    cores = len(affinity(0)) if affinity else (os.cpu_count() or 1)
    busy = _running_now()
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except OSError:
            return cores
    return max(1, min(cores, int(cores - busy + 0.5)))


def choose_cpu_threads() -> int | None:
    """Threads to give torch, or None to leave its default.

    BENCH_THREADS=N fixes the count; OMP_NUM_THREADS set by the user is respected."""
    fixed = os.environ.get("BENCH_THREADS")
    if fixed:
        return max(1, int(fixed))
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    return free_cores()
