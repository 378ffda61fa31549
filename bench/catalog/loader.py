"""Finds tasks by name: YAML in `tasks/` and `--include-path` folders, then lm-eval's own.

lm-eval indexes about 14,700 built-in task files on start, so that index is built only
when a requested name is not one of the local YAML tasks.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.catalog.validate import (
    TaskYamlError,
    check_task_yaml,
    function_tags,
    task_yaml_files,
)
from bench.trace import mark

BUILTIN = "lm-eval"


def default_task_dir() -> Path:
    """The repository's `tasks/` folder (BENCH_TASKS overrides it)."""
    override = os.environ.get("BENCH_TASKS")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "tasks"


class UnknownTaskError(LookupError):
    def __init__(self, name: str, suggestions: list[str]):
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown task '{name}'{hint}")
        self.name = name
        self.suggestions = suggestions


class TaskLoadError(RuntimeError):
    """lm-eval could not build a task: its data is unreachable, or its config is wrong."""


@dataclass(frozen=True)
class LoadedTask:
    name: str
    task: Any  # lm_eval.api.task.Task
    content_hash: str
    source: str  # YAML path, or "lm-eval" for a built-in task
    output_type: str


def _local_task_files(folders: list[Path]) -> dict[str, Path]:
    """Task name -> YAML file, for every task YAML under the folders (validated)."""
    found: dict[str, Path] = {}
    for path in task_yaml_files(folders):
        config = check_task_yaml(path)
        if isinstance(config.get("task"), str):
            found[config["task"]] = path
    return found


def _data_files(config: dict) -> list[str]:
    files = (config.get("dataset_kwargs") or {}).get("data_files")
    if files is None:
        return []
    if isinstance(files, dict):
        files = list(files.values())
    flat: list[str] = []
    for item in files if isinstance(files, list) else [files]:
        flat.extend(item if isinstance(item, list) else [item])
    return flat


def _resolve_data_files(config: dict, folder: Path) -> dict:
    """Make relative `data_files` relative to the YAML's folder rather than the cwd."""
    kwargs = dict(config.get("dataset_kwargs") or {})
    files = kwargs.get("data_files")
    if files is None:
        return config

    def fix(item):
        if isinstance(item, list):
            return [fix(i) for i in item]
        candidate = folder / item
        return str(candidate) if not Path(item).is_absolute() and candidate.exists() else item

    kwargs["data_files"] = (
        {split: fix(item) for split, item in files.items()}
        if isinstance(files, dict)
        else fix(files)
    )
    return {**config, "dataset_kwargs": kwargs}


def yaml_content_hash(path: Path) -> str:
    """sha256 over the YAML, the YAML files it includes, and the data files it names."""
    from lm_eval.tasks._yaml_loader import load_yaml

    digest = hashlib.sha256()
    seen: set[Path] = set()

    def add_yaml(file: Path) -> None:
        file = file.resolve()
        if file in seen or not file.exists():
            return
        seen.add(file)
        digest.update(file.read_bytes())
        raw = load_yaml(file, resolve_func=False, recursive=False)
        includes = raw.get("include") or []
        for inc in includes if isinstance(includes, list) else [includes]:
            add_yaml(file.parent / inc)

    add_yaml(path)
    config = load_yaml(path, resolve_func=False)
    for name in sorted(_data_files(config)):
        data = path.parent / name if not Path(name).is_absolute() else Path(name)
        digest.update(name.encode())
        if data.is_file():
            digest.update(data.read_bytes())
    return digest.hexdigest()


def local_task_hashes(include_paths: list[Path] | None = None) -> dict[str, str]:
    """Task name -> content hash of its current definition, for every local task YAML."""
    folders = [f for f in [default_task_dir(), *(include_paths or [])] if f.is_dir()]
    return {name: yaml_content_hash(path) for name, path in _local_task_files(folders).items()}


def builtin_content_hash(task) -> str:
    config = task.dump_config()
    text = json.dumps(
        config, sort_keys=True, default=lambda o: getattr(o, "__qualname__", type(o).__name__)
    )
    return hashlib.sha256(text.encode()).hexdigest()


def refuse_task_code(path: Path) -> None:
    """Task YAML is data; a `!function` would import and run Python from the pack."""
    tags = function_tags(path)
    if tags:
        line, target = tags[0]
        raise TaskYamlError(
            path,
            line,
            "!function",
            f"the task runs Python code ({target}); pass --trust-task-code to allow it",
        )


def load_tasks(
    names: list[str], include_paths: list[Path] | None = None, trust_code: bool = False
) -> list[LoadedTask]:
    """Build lm-eval Task objects for the names; raise UnknownTaskError / TaskYamlError.

    Local task YAML that asks to run Python (`!function`) is refused unless trust_code;
    lm-eval's own built-in tasks come with the installed library and are trusted."""
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    folders = [default_task_dir(), *(include_paths or [])]
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"include path {folder} is not a folder")
    local = _local_task_files(folders)
    need_builtin = any(name not in local for name in names)
    manager = TaskManager(include_path=[str(f) for f in folders], include_defaults=need_builtin)
    for name in names:
        if name not in local and name not in manager.all_tasks:
            known = list(local) + manager.all_tasks
            raise UnknownTaskError(name, difflib.get_close_matches(name, known, n=3, cutoff=0.6))

    built: dict[str, Any] = {}
    for name in names:
        path = local.get(name)
        if path is not None and not trust_code:
            refuse_task_code(path)
        spec = (
            _resolve_data_files(load_yaml(path, resolve_func=True), path.parent) if path else name
        )
        try:
            built.update(manager.load([spec])["tasks"])
        except Exception as err:  # lm-eval raises many kinds; all mean "cannot build it here"
            where = str(path) if path else "lm-eval built-in task"
            raise TaskLoadError(f"task '{name}' ({where}) could not be built: {err}") from err

    loaded = []
    for task_name, task in built.items():
        path = local.get(task_name)
        loaded.append(
            LoadedTask(
                name=task_name,
                task=task,
                content_hash=yaml_content_hash(path) if path else builtin_content_hash(task),
                source=str(path) if path else BUILTIN,
                output_type=task.OUTPUT_TYPE,
            )
        )
    mark("tasks_loaded")
    return loaded
