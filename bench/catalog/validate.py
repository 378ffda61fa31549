"""Checks task YAML and its data before lm-eval sees them, so that a mistake is reported
as file:line: problem (field). `bench run` (through the loader) and `bench tasks validate`
both call `check_task`, so the two cannot disagree about a task."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.catalog.clusters import declared_field


@dataclass
class TaskYamlError(Exception):
    path: Path
    line: int
    field: str
    problem: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}"
        return f"{where}: {self.problem}" + (f" (field '{self.field}')" if self.field else "")


# libyaml's parser where PyYAML was built with it: 10x faster, same nodes and marks.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class FunctionTag(str):
    """A `!function module.func` of a task YAML, kept as its text ("!function
    module.func") and never run here; it knows the file and line it was written on, as
    its module is looked up beside that file (bench/catalog/task_code.py)."""

    def __new__(cls, target: str, path: Path, line: int) -> FunctionTag:
        tag = super().__new__(cls, f"!function {target}")
        tag.target, tag.path, tag.line = target, path, line
        return tag

    def __getnewargs__(self) -> tuple[str, Path, int]:  # copies keep the origin
        return self.target, self.path, self.line


class _TolerantLoader(_SafeLoader):
    """Safe loader that keeps lm-eval's `!function` tags as FunctionTag text."""

    path = Path("<unknown>")  # the file being parsed, set per instance by _parse


def _function_tag(loader: _TolerantLoader, node: yaml.ScalarNode) -> FunctionTag:
    return FunctionTag(loader.construct_scalar(node), loader.path, node.start_mark.line + 1)


_TolerantLoader.add_constructor("!function", _function_tag)

OUTPUT_TYPES = ("loglikelihood", "loglikelihood_rolling", "multiple_choice", "generate_until")


def read_text(path: Path) -> str:
    """The file as UTF-8 text; anything else is a TaskYamlError at the first bad byte."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise TaskYamlError(
            path, line, "", f"is not UTF-8 text (byte 0x{data[err.start]:02x}); save it as UTF-8"
        ) from None


def _key_lines(document: yaml.Node) -> dict[str, int]:
    """1-based line of every top-level key."""
    if not isinstance(document, yaml.MappingNode):
        return {}
    return {key.value: key.start_mark.line + 1 for key, _ in document.value}


def _parse(path: Path) -> tuple[dict, dict[str, int]]:
    """One YAML file's mapping and the line of each of its top-level keys."""
    loader = _TolerantLoader(read_text(path))
    loader.path = path
    try:  # one parse: the node tree gives the lines, its construction the mapping
        node = loader.get_single_node()
        config = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 1
        raise TaskYamlError(path, line, "", f"YAML syntax error: {err.problem}") from None
    finally:
        loader.dispose()
    if not isinstance(config, dict):
        raise TaskYamlError(path, 1, "", "a task YAML must be a mapping of fields")
    return config, _key_lines(node)


def _with_includes(path: Path, config: dict, lines: dict[str, int], seen: set[Path]) -> dict:
    """The config with its `include`s merged in as lm-eval's load_yaml merges them: each
    included file (relative to this one's folder) in order, then this file's own keys."""
    if "include" not in config:
        return config
    seen.add(path.resolve())
    includes = config["include"]
    merged: dict = {}
    for name in includes if isinstance(includes, list) else [includes]:
        line = lines.get("include", 1)
        if not isinstance(name, str):
            raise TaskYamlError(path, line, "include", f"include {name!r} is not a file name")
        target = Path(name) if Path(name).is_absolute() else path.parent / name
        if not target.is_file():
            raise TaskYamlError(path, line, "include", f"included file {target} is missing")
        if target.resolve() in seen:
            raise TaskYamlError(path, line, "include", f"{target} is included twice (a cycle)")
        included, included_lines = _parse(target)
        included = _with_includes(target, included, included_lines, seen)
        included.pop("task_list", None)  # it names the included file's own tasks
        merged.update(included)
    merged.update({k: v for k, v in config.items() if k != "include"})
    return merged


def read_task_yaml(path: Path, includes: bool = True) -> dict:
    """One YAML file's mapping, unchecked: its `include`s merged in (or left as the
    names they are), its `!function`s kept as text. A bad file is a TaskYamlError."""
    config, lines = _parse(path)
    return _with_includes(path, config, lines, set()) if includes else config


def is_task(config: dict) -> bool:
    """A single task's config (not a group, nor a partial config made to be included)."""
    return isinstance(config.get("task"), str) and "group" not in config


def check_task(path: Path) -> dict:
    """Everything bench checks of one task YAML before lm-eval builds it: its fields (its
    includes merged in) and, for a task, its data files. Returns the merged mapping."""
    config = check_task_yaml(path)
    if is_task(config):
        check_task_data(path, config)
    return config


def check_task_yaml(path: Path) -> dict:
    """Parse one task YAML and check the fields a task needs; return its mapping, with
    the files it includes merged in."""
    config, lines = _parse(path)
    config = _with_includes(path, config, lines, set())
    if not is_task(config):
        return config  # groups and partial configs are checked by lm-eval itself

    def line(field: str) -> int:
        return lines.get(field, lines.get("include", lines.get("task", 1)))

    def need(field: str, why: str) -> None:
        if config.get(field) in (None, ""):
            raise TaskYamlError(path, line("task"), field, f"task '{config['task']}' {why}")

    if "custom_dataset" not in config:
        need("dataset_path", "names no dataset_path")
    output_type = config.get("output_type", "generate_until")
    if output_type not in OUTPUT_TYPES:
        raise TaskYamlError(
            path,
            line("output_type"),
            "output_type",
            f"unknown output_type {output_type!r}; use one of {', '.join(OUTPUT_TYPES)}",
        )
    if not any(config.get(s) for s in ("test_split", "validation_split")):
        need("test_split", "has neither test_split nor validation_split")
    if output_type != "loglikelihood_rolling":
        if "doc_to_text" not in config:
            need("doc_to_text", "has no doc_to_text")
    if "doc_to_target" not in config:
        need("doc_to_target", "has no doc_to_target")
    if output_type == "multiple_choice":
        need("doc_to_choice", "is multiple_choice but has no doc_to_choice")
    _check_shapes(path, config, line)
    return config


def _check_shapes(path: Path, config: dict, line) -> None:
    """Fields lm-eval iterates over or indexes must have the shape it expects."""
    metrics = config.get("metric_list")
    if metrics is not None and not (
        isinstance(metrics, list)
        and all(isinstance(m, dict) and isinstance(m.get("metric"), str) for m in metrics)
    ):
        raise TaskYamlError(
            path,
            line("metric_list"),
            "metric_list",
            "metric_list must be a list of mappings, each with a `metric` name",
        )
    kwargs = config.get("dataset_kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TaskYamlError(
            path, line("dataset_kwargs"), "dataset_kwargs", "dataset_kwargs must be a mapping"
        )
    shots = config.get("num_fewshot")
    if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 0):
        raise TaskYamlError(
            path, line("num_fewshot"), "num_fewshot", "num_fewshot must be a whole number >= 0"
        )


def task_yaml_files(folders: list[Path]) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.y*ml") if p.is_file())


TEMPLATE_FIELDS = ("doc_to_text", "doc_to_target", "doc_to_choice")
DATA_FIELD = "dataset_kwargs.data_files"


def _template_variables(template) -> set[str]:
    """Data fields a doc_to_* entry reads: a Jinja template's variables, or a bare field name."""
    import jinja2
    from jinja2 import meta

    if not isinstance(template, str) or template.startswith("!function"):
        return set()
    if "{{" not in template and "{%" not in template:
        return {template} if template.isidentifier() else set()
    return meta.find_undeclared_variables(jinja2.Environment().parse(template))


def data_file_names(config: dict) -> list[str]:
    """The data files a task config names, flattened from str / list / {split: ...}."""
    files = (config.get("dataset_kwargs") or {}).get("data_files")
    if files is None:
        return []
    named = files.values() if isinstance(files, dict) else [files]
    return [p for item in named for p in (item if isinstance(item, list) else [item])]


def _rows(data: Path) -> list[tuple[int, dict]] | None:
    """(line, row) of every row of a JSON Lines, JSON or CSV file; None for other formats."""
    if data.suffix not in (".jsonl", ".json", ".csv"):
        return None  # parquet, compressed files ...: datasets reads them, unchecked here
    text = read_text(data)
    if data.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                rows.append((number, _json(data, number, line)))
        return rows
    if data.suffix == ".json":
        loaded = _json(data, 1, text) if text.strip() else []
        if isinstance(loaded, dict):
            if not isinstance(loaded.get("data"), list):
                return None  # a layout read with dataset_kwargs.field: not checked here
            loaded = loaded["data"]
        return list(enumerate(loaded if isinstance(loaded, list) else [loaded], start=1))
    import csv

    reader = csv.DictReader(text.splitlines())
    return [(reader.line_num, row) for row in reader]


def _json(data: Path, line: int, text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise TaskYamlError(data, line + err.lineno - 1, "", f"not valid JSON: {err.msg}") from None


def check_task_data(path: Path, config: dict) -> None:
    """The data files lie in the task's folder and hold rows; every field the templates
    read exists in every row, and every multiple-choice label is one of its choices."""
    names = data_file_names(config)
    if not names:
        return
    lines = _key_lines(yaml.compose(read_text(path), Loader=_TolerantLoader))
    where = lines.get("dataset_kwargs", 1)
    folder = path.parent.resolve()
    # Fields that process_docs (task code) adds are not in the file.
    needed = (
        set().union(*(_template_variables(config.get(f)) for f in TEMPLATE_FIELDS))
        if "process_docs" not in config
        else set()
    )
    # metadata: {cluster: FIELD} groups the documents (bench/catalog/clusters.py).
    cluster = declared_field(config.get("metadata")) if "process_docs" not in config else None
    for name in names:
        if not isinstance(name, str):
            raise TaskYamlError(path, where, DATA_FIELD, f"data file {name!r} is not a file name")
        data = path.parent / name
        if not data.resolve().is_relative_to(folder):
            raise TaskYamlError(
                path,
                where,
                DATA_FIELD,
                f"data file {name} is outside the task's folder {folder}: a task reads only "
                "files in its own folder",
            )
        if not data.is_file():
            raise TaskYamlError(path, where, DATA_FIELD, f"data file {data} is missing")
        rows = _rows(data)
        if rows == []:
            raise TaskYamlError(data, 1, "", f"data file of {path.name} holds no rows")
        for line, row in rows or []:
            if not isinstance(row, dict):
                raise TaskYamlError(data, line, "", f"row is {type(row).__name__}, not a mapping")
            missing = sorted(needed - set(row))
            if missing:
                raise TaskYamlError(
                    data,
                    line,
                    missing[0],
                    f"row lacks the field the template of {path.name} uses",
                )
            if cluster is not None and row.get(cluster) is None:
                raise TaskYamlError(
                    data, line, cluster, f"row lacks the field {path.name} names as its cluster"
                )
            if config.get("output_type") == "multiple_choice":
                _check_label(data, line, config, row)


def _check_label(data: Path, line: int, config: dict, row: dict) -> None:
    """The row's target must pick one of its choices, as lm-eval reads both; where they
    cannot be read without running task code, nothing is said."""
    options = _choices(config.get("doc_to_choice"), row)
    target = config.get("doc_to_target")
    label = _label(target, row)
    if options is None or label is None:
        return
    field = target if isinstance(target, str) and target in row else "doc_to_target"
    for one in label if isinstance(label, list) else [label]:
        if isinstance(one, bool) or not isinstance(one, int | str):
            continue
        if isinstance(one, int) and not 0 <= one < len(options):
            problem = f"label {one} is out of range for {len(options)} choices"
        elif isinstance(one, str) and one not in options:
            problem = f"label {one!r} is not one of the choices {options}"
        else:
            continue
        raise TaskYamlError(data, line, field, problem)


def _render(template: str, row: dict):
    """A template rendered as lm-eval renders it (strict Jinja); None if it cannot be."""
    import jinja2

    try:
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        return env.from_string(template).render(**row)
    except Exception:  # noqa: BLE001 - e.g. a filter only lm-eval registers: not checked here
        return None


def _choices(spec, row: dict) -> list | None:
    if isinstance(spec, list):
        return spec
    if not isinstance(spec, str) or spec.startswith("!function"):
        return None
    if spec in row:
        value = row[spec]
    else:
        text = _render(spec, row)
        try:
            value = ast.literal_eval(text) if text is not None else None
        except (SyntaxError, ValueError):
            return None
    return value if isinstance(value, list) else None


def _label(spec, row: dict):
    """doc_to_target as lm-eval reads it for a multiple-choice task."""
    if isinstance(spec, int):
        return spec
    if not isinstance(spec, str) or spec.startswith("!function"):
        return None
    if spec in row:
        return row[spec]
    text = _render(spec, row)
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    if len(text) >= 2 and text[0] == "[" and text[-1] == "]":
        try:
            return ast.literal_eval(text)
        except (SyntaxError, ValueError):
            return text
    return text
