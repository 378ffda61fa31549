"""Wall-clock marks of a run's phases, for the start-up benchmark (benchmarks/startup.py).

With BENCH_TRACE=FILE set, each mark appends one JSON line {"event": ..., "t": unix time}
to FILE; unset, a mark costs one dictionary lookup. Nothing heavy is imported here.
"""

from __future__ import annotations

import json
import os
import time

_seen: set[str] = set()


def mark(event: str, once: bool = False) -> None:
    path = os.environ.get("BENCH_TRACE")
    if not path or (once and event in _seen):
        return
    _seen.add(event)
    with open(path, "a") as handle:
        handle.write(json.dumps({"event": event, "t": time.time(), "pid": os.getpid()}) + "\n")
