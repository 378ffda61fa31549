"""lm-eval's index of its ~14,700 built-in task files, built once per installed lm-eval.

TaskManager parses every built-in YAML each time it is constructed (14-15 s here) before
it can name a single task. That index depends only on the installed files, so bench
keeps it under the cache root (pickled, keyed by lm-eval's version and install path) and
hands it to TaskManager in place of the walk; folders of local tasks are still indexed
afresh each time. An editable install of lm-eval, whose files may change, is never cached.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def builtin_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def cache_file(root: Path) -> Path | None:
    """Where the index of this lm-eval install is kept; None where it must not be."""
    from bench.models.packs import cache_root

    dist = importlib.metadata.distribution("lm_eval")
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct.get("dir_info", {}).get("editable"):
        return None
    key = hashlib.sha256(f"{dist.version}\0{root.resolve()}".encode()).hexdigest()[:16]
    return cache_root() / "lm-eval-index" / f"{dist.version}-{key}.pickle"


def builtin_index(build) -> dict:
    """{name: Entry} of the built-in tasks: from the cache, else `build([root])` once."""
    root = builtin_dir()
    path = cache_file(root)
    if path is not None and path.is_file():
        try:
            with path.open("rb") as handle:
                return pickle.load(handle)
        except Exception:  # a torn or foreign file: build it again
            pass
    index = build([root])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        with partial.open("wb") as handle:
            pickle.dump(index, handle, protocol=pickle.HIGHEST_PROTOCOL)
        partial.replace(path)  # atomic: a parallel run reads the old file or the new one
    return index


@contextmanager
def cached_builtin_index() -> Iterator[None]:
    """While active, a TaskManager built with lm-eval's defaults gets the cached index."""
    from lm_eval.tasks._index import TaskIndex

    walk = TaskIndex.build
    root = builtin_dir()

    def build(paths, *, resolve_includes: bool = True) -> dict:
        paths = [Path(p) for p in paths]
        if not resolve_includes or not paths or paths[0] != root:
            return walk(paths, resolve_includes=resolve_includes)
        index = builtin_index(walk)
        index.update(walk(paths[1:]))  # later paths override, as in lm-eval's own merge
        return index

    TaskIndex.build = staticmethod(build)
    try:
        yield
    finally:
        TaskIndex.build = staticmethod(walk)
