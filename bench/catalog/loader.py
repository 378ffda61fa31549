"""Finds tasks by name: YAML in `tasks/` and `--include-path` folders, then lm-eval's own.

lm-eval indexes about 14,700 built-in task files on start, so that index is built only
when a requested name is not a local task: local tasks are built by a TaskManager of the
local folders alone (`include_defaults=False`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.catalog.task_code import refuse_task_code, resolve_task_code
from bench.catalog.validate import (
    TaskYamlError,
    check_task,
    check_task_yaml,
    is_task,
    read_task_yaml,
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
    digest = hashlib.sha256()
    seen: set[Path] = set()

    def add_yaml(file: Path) -> None:
        file = file.resolve()
        if file in seen or not file.exists():
            return
        seen.add(file)
        digest.update(file.read_bytes())
        includes = read_task_yaml(file, includes=False).get("include") or []
        for inc in includes if isinstance(includes, list) else [includes]:
            add_yaml(file.parent / inc)

    add_yaml(path)
    for name in sorted(_data_files(read_task_yaml(path))):
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


@dataclass(frozen=True)
class _Shipped:
    """A task bench builds itself (BIG-bench JSON, HumanEval): its lm-eval config."""

    config: dict
    content_hash: str
    source: str


def _shipped_tasks(names: list[str]) -> tuple[list[str], dict[str, _Shipped]]:
    """Expand `bigbench:` names (a task of subtasks becomes its subtasks) and build the
    configs of BIG-bench and HumanEval tasks; other names pass through unchanged."""
    from bench.catalog import bigbench, humaneval

    expanded: list[str] = []
    shipped: dict[str, _Shipped] = {}
    for name in names:
        if bigbench.is_bigbench(name):
            for task in bigbench.resolve(name):
                path = bigbench.convert(task)
                config = _resolve_data_files(read_task_yaml(path), path.parent)
                shipped[task.name] = _Shipped(config, yaml_content_hash(path), str(task.json_path))
                expanded.append(task.name)
        elif humaneval.is_humaneval(name):
            config = humaneval.config(name)
            shipped[name] = _Shipped(
                config, humaneval.content_hash(config), str(humaneval.data_file())
            )
            expanded.append(name)
        else:
            expanded.append(name)
    return list(dict.fromkeys(expanded)), shipped


def shipped_task_text(name: str) -> str:
    """What `bench tasks show` prints for BIG-bench and HumanEval tasks."""
    from bench.catalog.bigbench import dump_yaml

    names, shipped = _shipped_tasks([name])
    parts = []
    for task_name in names:
        task = shipped[task_name]
        config = {k: v for k, v in task.config.items() if not callable(v) and k != "filter_list"}
        parts.append(
            f"# {task_name}\n# source {task.source}\n# content hash {task.content_hash}\n"
            + dump_yaml(config)
        )
    return "\n".join(parts)


def _task_manager(folders: list[Path], builtin: bool = False):
    """lm-eval's TaskManager over the folders, and over its own ~14,700 built-in task
    files if `builtin` (slow)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=[str(f) for f in folders], include_defaults=builtin)


def _build(manager, name: str, where: str, spec: dict | str) -> dict[str, Any]:
    """lm-eval's Task objects for a config or a task name, any failure one line."""
    try:
        return manager.load([spec])["tasks"]
    except Exception as err:  # lm-eval raises many kinds; all mean "cannot build it here"
        raise _cannot_build(name, where, err) from err


def _cannot_build(name: str, where: str, err: Exception) -> TaskLoadError:
    return TaskLoadError(f"task '{name}' ({where}) could not be built: {err}")


def build_local_task(path: Path, manager, trust_code: bool) -> dict[str, Any]:
    """The one way a local task YAML becomes lm-eval Tasks, for `bench run` and `bench
    tasks validate` alike: bench's checks (file:line), its Python refused unless trusted,
    then lm-eval's own build of the config."""
    config = check_task(path)  # includes merged, `!function`s still text
    if not trust_code:
        refuse_task_code(path, config)
    spec = _resolve_data_files(resolve_task_code(config), path.parent)
    return _build(manager, config["task"], str(path), spec)


def task_problems(paths: list[Path], trust_code: bool = False) -> list[str]:
    """What `bench run` would refuse in each task YAML, one message per file: the checks
    of build_local_task, lm-eval's build included (`bench tasks validate`)."""
    problems: list[str] = []
    tasks: list[Path] = []
    for path in paths:
        try:
            if is_task(check_task(path)):
                tasks.append(path)
        except TaskYamlError as err:
            problems.append(str(err))
    if tasks:  # lm-eval's import (seconds) only where there is something to build
        manager = _task_manager(sorted({p.parent for p in tasks}), builtin=False)
        for path in tasks:
            try:
                build_local_task(path, manager, trust_code)
            except (TaskYamlError, TaskLoadError) as err:
                problems.append(str(err))
    return problems


def _builtin_manager(names: list[str], local: list[str]):
    """lm-eval's TaskManager of its built-in tasks, for names that are not local; a name
    that lm-eval does not know either is an UnknownTaskError, told without its index
    where the built-in names are remembered (bench/catalog/builtin_names.py)."""
    from bench.catalog import builtin_names

    known = builtin_names.remembered()
    manager = None  # not built where a remembered list already tells an unknown name
    if known is None or all(name in known for name in names):
        manager = _task_manager([], builtin=True)
        known = manager.all_tasks
        builtin_names.remember(known)
    unknown = [name for name in names if name not in known]
    if unknown:
        candidates = list(dict.fromkeys([*local, *known]))
        close = difflib.get_close_matches(unknown[0], candidates, n=3, cutoff=0.6)
        raise UnknownTaskError(unknown[0], close)
    return manager


def load_tasks(
    names: list[str], include_paths: list[Path] | None = None, trust_code: bool = False
) -> list[LoadedTask]:
    """Build lm-eval Task objects for the names; raise UnknownTaskError / TaskYamlError.

    Local task YAML that asks to run Python (`!function`) is refused unless trust_code;
    lm-eval's own built-in tasks come with the installed library and are trusted."""
    folders = [default_task_dir(), *(include_paths or [])]
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"include path {folder} is not a folder")
    names, shipped = _shipped_tasks(names)
    local = _local_task_files(folders)
    manager = _task_manager(folders)  # local folders only: their tasks, groups and tags
    others = [n for n in names if n not in local and n not in shipped]
    missing = [n for n in others if n not in manager.all_tasks]
    builtin = _builtin_manager(missing, [*local, *manager.all_tasks]) if missing else None
    if any(n in manager.all_groups for n in others):
        # A local group may name built-in tasks: lm-eval's index of both, as lm-eval has.
        manager = _task_manager(folders, builtin=True)

    built: dict[str, Any] = {}
    for name in names:
        if name in shipped:  # our own code: trusted
            built.update(_build(manager, name, shipped[name].source, shipped[name].config))
        elif name in local:
            built.update(build_local_task(local[name], manager, trust_code))
        elif builtin is not None and name in builtin.all_tasks:
            built.update(_build(builtin, name, "lm-eval built-in task", name))
        else:
            built.update(_build(manager, name, "local group or tag", name))

    loaded = []
    for task_name, task in built.items():
        path = local.get(task_name)
        if task_name in shipped:
            content_hash, source = shipped[task_name].content_hash, shipped[task_name].source
        elif path:
            content_hash, source = yaml_content_hash(path), str(path)
        else:
            content_hash, source = builtin_content_hash(task), BUILTIN
        loaded.append(
            LoadedTask(
                name=task_name,
                task=task,
                content_hash=content_hash,
                source=source,
                output_type=task.OUTPUT_TYPE,
            )
        )
    mark("tasks_loaded")
    return loaded
