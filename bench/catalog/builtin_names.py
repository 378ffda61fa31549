"""The names of lm-eval's built-in tasks, groups and tags, remembered per installed lm-eval.

lm-eval knows its names only after indexing its ~14,700 task files (14-15 s here). bench
keeps the list of names (its own data, from `TaskManager().all_tasks`) under the cache
root, keyed by lm-eval's version and install path, so that a name that is neither local
nor built-in (a typo) is refused with suggestions without that index. A built-in task is
still built by lm-eval's own TaskManager. An editable install, whose files may change,
is never remembered.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from pathlib import Path


def _cache_file() -> Path | None:
    """Where the names of this lm-eval install are kept; None where they must not be."""
    from bench.models.packs import cache_root

    dist = importlib.metadata.distribution("lm_eval")
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct.get("dir_info", {}).get("editable"):
        return None
    root = Path(dist.locate_file("lm_eval")).resolve()
    key = hashlib.sha256(f"{dist.version}\0{root}".encode()).hexdigest()[:16]
    return cache_root() / "lm-eval-names" / f"{dist.version}-{key}.json"


def remembered() -> list[str] | None:
    """The built-in names, if this install's list was written before."""
    path = _cache_file()
    if path is None or not path.is_file():
        return None
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # a torn or foreign file: learnt again
        return None
    return names if isinstance(names, list) else None


def remember(names: list[str]) -> None:
    """Keep the names that `TaskManager()` (lm-eval's defaults only) lists."""
    path = _cache_file()
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(sorted(names)), encoding="utf-8")
    partial.replace(path)  # atomic: a parallel run reads the old file or the new one
