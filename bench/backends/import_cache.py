"""Two steps of transformers' import, remembered on disk between runs.

Importing transformers spends about 1.2 s of the hf model's start (2-core machine) on two
computations whose answers change only when packages are installed, removed or upgraded:
- `importlib.metadata.packages_distributions()`, which reads the file list of every
  installed distribution;
- the lazy modules' import structure (`create_import_structure_from_path`), for which it
  reads all 3,000 files under transformers/models for their `__all__`, twice (its own
  cache is keyed by a Path once and by a str the other time).
Both answers are kept in the bench cache, keyed by what they read: sys.path and the
distributions' metadata folders in each entry (an install or upgrade renames them);
transformers' version, the folder and its modification time. Nothing else changes: where
a cached answer is missing or unreadable, transformers computes it as usual.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import os
import pickle
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STRUCTURED_MODULE = "transformers.utils.import_utils"


@contextmanager
def remembered_transformers_imports() -> Iterator[None]:
    """While transformers is first imported, answer those two steps from the cache."""
    if "transformers" in sys.modules:  # imported already: nothing left to save
        yield
        return
    finder = PatchAfterExec(STRUCTURED_MODULE, _remember_import_structure)
    computed = importlib.metadata.packages_distributions
    importlib.metadata.packages_distributions = lambda: _remembered(
        ("packages_distributions", *_installed()), computed
    )
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        importlib.metadata.packages_distributions = computed
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)


def _installed() -> tuple:
    """sys.path with the metadata folders (name-version.dist-info) in each entry."""
    return tuple((entry, _metadata_folders(entry)) for entry in sys.path)


def _metadata_folders(entry: str) -> tuple[str, ...]:
    try:
        names = os.listdir(entry or ".")
    except OSError:
        return ()
    return tuple(sorted(n for n in names if n.endswith((".dist-info", ".egg-info"))))


def _mtime(path: str | Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _remembered(key: tuple, compute: Callable[[], Any]) -> Any:
    from bench.models.packs import cache_root

    name = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
    path = cache_root() / "import-cache" / f"{name}.pickle"
    try:
        return pickle.loads(path.read_bytes())
    except Exception:  # missing, or written by another version: compute it again
        pass
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(pickle.dumps(value))
        os.replace(partial, path)  # readers never see half a file
    except OSError:
        pass  # a read-only cache only costs the time
    return value


def _remember_import_structure(module: Any) -> None:
    """Answer top-level calls of create_import_structure_from_path from the cache; the
    calls it makes on itself for subfolders go to the original."""
    original = getattr(module, "create_import_structure_from_path", None)
    if original is None:  # another transformers: leave it alone
        return
    version = getattr(sys.modules.get("transformers"), "__version__", None)
    depth = 0

    def create_import_structure_from_path(module_path: Any) -> Any:
        nonlocal depth
        if depth:
            return original(module_path)
        depth += 1
        try:
            folder = Path(module_path)  # a file stands for its folder
            folder = folder if folder.is_dir() else folder.parent
            key = ("import_structure", version, str(module_path), _mtime(folder))
            return _remembered(key, lambda: original(module_path))
        finally:
            depth -= 1

    module.create_import_structure_from_path = create_import_structure_from_path


class PatchAfterExec(importlib.abc.MetaPathFinder):
    """Finds one module as the path finder would, and patches it right after its code has
    run, before the module that imports it reads anything from it."""

    def __init__(self, name: str, patch: Callable[[Any], None]):
        self.name = name
        self.patch = patch

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # once
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return spec
        execute = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            execute(module)
            self.patch(module)

        spec.loader.exec_module = exec_module
        return spec
