"""Checks task YAML before lm-eval sees it, so a mistake is reported as file:line: field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


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


class _TolerantLoader(_SafeLoader):
    """Safe loader that keeps lm-eval's `!function` tags as plain strings (never runs them)."""


_TolerantLoader.add_constructor(
    "!function", lambda loader, node: f"!function {loader.construct_scalar(node)}"
)

OUTPUT_TYPES = ("loglikelihood", "loglikelihood_rolling", "multiple_choice", "generate_until")


def _key_lines(document: yaml.Node) -> dict[str, int]:
    """1-based line of every top-level key."""
    if not isinstance(document, yaml.MappingNode):
        return {}
    return {key.value: key.start_mark.line + 1 for key, _ in document.value}


def check_task_yaml(path: Path) -> dict:
    """Parse one task YAML and check the fields a task needs; return its mapping."""
    text = path.read_text(encoding="utf-8")
    loader = _TolerantLoader(text)
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
    lines = _key_lines(node)
    if "task" not in config or "include" in config or "group" in config:
        return config  # groups and partial configs are checked by lm-eval itself

    def need(field: str, why: str) -> None:
        if config.get(field) in (None, ""):
            raise TaskYamlError(path, lines.get("task", 1), field, f"task '{config['task']}' {why}")

    if "custom_dataset" not in config:
        need("dataset_path", "names no dataset_path")
    output_type = config.get("output_type", "generate_until")
    if output_type not in OUTPUT_TYPES:
        raise TaskYamlError(
            path,
            lines.get("output_type", 1),
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
    return config


def task_yaml_files(folders: list[Path]) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.y*ml") if p.is_file())


def function_tags(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every `!function` in a YAML file: task code that would run."""
    node = yaml.compose(path.read_text(encoding="utf-8"), Loader=_TolerantLoader)
    found = []

    def walk(n) -> None:
        if isinstance(n, yaml.ScalarNode) and n.tag == "!function":
            found.append((n.start_mark.line + 1, n.value))
        elif isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                walk(key)
                walk(value)
        elif isinstance(n, yaml.SequenceNode):
            for item in n.value:
                walk(item)

    if node is not None:
        walk(node)
    return found


TEMPLATE_FIELDS = ("doc_to_text", "doc_to_target", "doc_to_choice")


def _template_variables(template) -> set[str]:
    """Data fields a doc_to_* entry reads: a Jinja template's variables, or a bare field name."""
    import jinja2
    from jinja2 import meta

    if not isinstance(template, str) or template.startswith("!function"):
        return set()
    if "{{" not in template and "{%" not in template:
        return {template} if template.isidentifier() else set()
    return meta.find_undeclared_variables(jinja2.Environment().parse(template))


def _rows(data: Path) -> list[dict]:
    import json

    text = data.read_text(encoding="utf-8")
    if data.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if data.suffix == ".json":
        loaded = json.loads(text)
        return loaded if isinstance(loaded, list) else loaded.get("data", [])
    if data.suffix == ".csv":
        import csv

        return list(csv.DictReader(text.splitlines()))
    return []


def check_task_data(path: Path, config: dict) -> None:
    """Every field the templates read exists in every data row, and targets point at choices."""
    files = (config.get("dataset_kwargs") or {}).get("data_files")
    if not files:
        return
    named = files.values() if isinstance(files, dict) else [files]
    paths = [p for item in named for p in (item if isinstance(item, list) else [item])]
    needed = set().union(*(_template_variables(config.get(f)) for f in TEMPLATE_FIELDS))
    target, choices = config.get("doc_to_target"), config.get("doc_to_choice")
    for name in paths:
        data = path.parent / name
        if not data.is_file():
            raise TaskYamlError(
                path, 1, "dataset_kwargs.data_files", f"data file {data} is missing"
            )
        for row_number, row in enumerate(_rows(data), start=1):
            where = f"{data}:{row_number}"
            missing = sorted(needed - set(row))
            if missing:
                raise TaskYamlError(
                    data,
                    row_number,
                    missing[0],
                    f"row {row_number} lacks the field the template of {path.name} uses",
                )
            if (
                config.get("output_type") == "multiple_choice"
                and isinstance(target, str)
                and target in row
                and isinstance(choices, str)
            ):
                options = _choices(choices, row)
                label = row[target]
                if options is not None and isinstance(label, int) and not 0 <= label < len(options):
                    raise TaskYamlError(
                        data,
                        row_number,
                        target,
                        f"{where}: label {label} is out of range for {len(options)} choices",
                    )


def _choices(template: str, row: dict):
    fields = _template_variables(template)
    if len(fields) == 1:
        value = row.get(next(iter(fields)))
        return value if isinstance(value, list) else None
    return None
