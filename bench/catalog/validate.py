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


class _TolerantLoader(yaml.SafeLoader):
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
    try:
        node = yaml.compose(text, Loader=_TolerantLoader)
        config = yaml.load(text, Loader=_TolerantLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 1
        raise TaskYamlError(path, line, "", f"YAML syntax error: {err.problem}") from None
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
