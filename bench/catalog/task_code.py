"""The Python a task YAML names with `!function`: found, refused unless trusted, imported.

A `!function module.func` resolves as lm-eval resolves it: `module.py` (dots are
folders) beside the YAML file the tag is written in, else an importable module. A module
file runs once per build and is kept by bench; nothing is registered in `sys.modules`.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.catalog.validate import FunctionTag, TaskYamlError


def function_tags(config: Any) -> list[FunctionTag]:
    """Every `!function` in a task config, its included files' included."""
    found: list[FunctionTag] = []

    def walk(value: Any) -> None:
        if isinstance(value, FunctionTag):
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(config)
    return found


def refuse_task_code(path: Path, config: dict) -> None:
    """Task YAML is data; a `!function` would import and run Python from the pack. The
    refusal names the tag's own file and line (the task's file first, then includes)."""
    tags = sorted(function_tags(config), key=lambda t: (t.path != path, str(t.path), t.line))
    if tags:
        tag = tags[0]
        raise TaskYamlError(
            tag.path,
            tag.line,
            "!function",
            f"the task runs Python code ({tag.target}); pass --trust-task-code to allow it",
        )


def resolve_task_code(config: dict) -> dict:
    """The config with each `!function` replaced by the function it names (this runs
    the task's code: callers have the user's trust)."""
    modules: dict[Path, ModuleType] = {}

    def resolve(value: Any) -> Any:
        if isinstance(value, FunctionTag):
            return _function(value, modules)
        if isinstance(value, dict):
            return {key: resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [resolve(item) for item in value]
        return value

    return resolve(config)


def _function(tag: FunctionTag, modules: dict[Path, ModuleType]):
    module_name, _, name = tag.target.rpartition(".")
    try:
        if not module_name:
            raise ValueError("it names no module; write module.function")
        file = (tag.path.resolve().parent / f"{module_name.replace('.', '/')}.py").resolve()
        if file.is_file():
            if file not in modules:
                modules[file] = _run_module(file)
            module = modules[file]
        else:
            module = importlib.import_module(module_name)
        return getattr(module, name)
    except Exception as err:  # the task's own code: any failure is the task's, one line
        raise TaskYamlError(
            tag.path,
            tag.line,
            "!function",
            f"{tag.target} cannot be loaded: {type(err).__name__}: {err}",
        ) from err


def _run_module(file: Path) -> ModuleType:
    # Named by its path without suffix, as lm-eval names a task's module file.
    spec = importlib.util.spec_from_file_location(str(file.with_suffix("")), file)
    if spec is None or spec.loader is None:
        raise ImportError(f"{file} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
