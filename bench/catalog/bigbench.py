"""BIG-bench JSON tasks as lm-eval tasks: `bigbench:<task>` or `bigbench:<task>:<subtask>`.

A BIG-bench `task.json` (from the installed `bigbench` package, or a path) is converted
once into an lm-eval task YAML plus a JSONL data file in the cache, keyed by the json's
sha256, so scoring is lm-eval's own (multiple choice: acc / acc_norm; generative:
exact_match) and the task's content hash covers the task.json. Prompts follow BIG-bench's
own formatting (bigbench/api/json_task.py): task_prefix, example_input_prefix,
choices appended to the input in BIG-bench's seeded order, example_output_prefix, and
few-shot examples joined by few_shot_example_separator.
Programmatic BIG-bench tasks (task.py) are not JSON tasks and are refused.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.errors import BadInput

PREFIX = "bigbench:"
# Bump when the conversion changes: it is part of the cache key and of the task's hash.
CONVERTER = "bench-bigbench-4"
# BIG-bench's default for generative answers (json_task.py _DEFAULT_REGEX): the first
# run of text up to a sentence end or a line break.
DEFAULT_REGEX = r"[^\.\?\!\;\n]+"
MAX_GEN_TOKS = 32


@dataclass(frozen=True)
class BigbenchTask:
    name: str  # bigbench:<task>[:<subtask>]
    json_path: Path


def benchmark_dir() -> Path | None:
    """bigbench/benchmark_tasks of the installed package (found, not imported: its
    __init__ pulls in the full BIG-bench API)."""
    spec = importlib.util.find_spec("bigbench")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "benchmark_tasks"
    return folder if folder.is_dir() else None


def _json_task_names(root: Path) -> list[str]:
    names = []
    for path in sorted(root.glob("*/task.json")):
        names.append(path.parent.name)
        names.extend(
            f"{path.parent.name}:{sub.parent.name}" for sub in path.parent.glob("*/task.json")
        )
    return names


def _expand(name: str, task_json: Path) -> list[BigbenchTask]:
    """A task whose task.json holds no examples is a set of subtasks, one per subfolder."""
    data = json.loads(task_json.read_text(encoding="utf-8"))
    if data.get("examples"):
        return [BigbenchTask(name, task_json)]
    subs = sorted(task_json.parent.glob("*/task.json"))
    if not subs:
        raise BadInput(f"BIG-bench task {task_json} has neither examples nor subtasks")
    return [BigbenchTask(f"{name}:{sub.parent.name}", sub) for sub in subs]


def resolve(name: str) -> list[BigbenchTask]:
    """`bigbench:<task>`, `bigbench:<task>:<subtask>` or `bigbench:<path to task.json or
    its folder>` -> the JSON tasks it names (several for a task made of subtasks)."""
    spec = name[len(PREFIX) :]
    candidate = Path(spec).expanduser()
    if "/" in spec or spec.endswith(".json"):
        task_json = candidate / "task.json" if candidate.is_dir() else candidate
        if not task_json.is_file():
            raise BadInput(f"{name}: no BIG-bench task.json at {task_json}")
        return _expand(f"{PREFIX}{task_json.parent.name}", task_json)
    root = benchmark_dir()
    if root is None:
        raise BadInput(
            f"{name}: the BIG-bench tasks are not installed; "
            "pip install --no-deps bigbench (or pip install -e '.[bigbench]')"
        )
    folder = root.joinpath(*spec.split(":"))
    task_json = folder / "task.json"
    if not spec or not task_json.is_file():
        if (folder / "task.py").is_file():
            raise BadInput(
                f"{name} is a programmatic BIG-bench task (task.py); only JSON tasks run"
            )
        close = difflib.get_close_matches(spec, _json_task_names(root), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(PREFIX + c for c in close)}?" if close else ""
        raise BadInput(f"unknown BIG-bench task '{name}'{hint}")
    return _expand(name, task_json)


def _format_input(example: dict, data: dict, seed: int = 42) -> str:
    """BIG-bench's default_format_fn: prefix, the input, the choices, the output prefix."""
    import numpy as np

    text = example["input"]
    scores = example.get("target_scores")
    if scores and data.get("append_choices_to_input", True):
        choice_prefix = data.get("choice_prefix", "\n  choice: ")
        # BIG-bench shows the choices in a seeded permutation of their sorted order.
        order = np.random.RandomState(seed=seed).permutation(sorted(scores))
        text = text + choice_prefix + choice_prefix.join(order)
    return (
        data.get("example_input_prefix", "\nQ: ")
        + text
        + data.get("example_output_prefix", "\nA: ")
    )


def _is_multiple_choice(data: dict) -> bool:
    preferred = data.get("preferred_score")
    if preferred:
        return preferred == "multiple_choice_grade"
    return all("target_scores" in e for e in data["examples"])


def _rows(data: dict, multiple_choice: bool) -> list[dict]:
    rows, seen = [], set()
    for example in data["examples"]:
        key = json.dumps(example, sort_keys=True)
        if key in seen:  # BIG-bench drops duplicate examples too
            continue
        seen.add(key)
        row = {"input": _format_input(example, data)}
        if multiple_choice:
            scores = example["target_scores"]
            best = max(scores.values())
            row["choices"] = list(scores)
            row["label"] = list(scores.values()).index(best)
        else:
            target = example["target"]
            row["targets"] = target if isinstance(target, list) else [target]
        rows.append(row)
    return rows


def _stops(data: dict) -> list[str]:
    """Where generation may end. BIG-bench generates and then cuts at stop_string or takes
    the first output_regex match, so stopping early must not cut before that match: stop
    at a blank line or where the model starts the next example's input prefix."""
    if data.get("stop_string"):
        return [data["stop_string"]]
    stops = ["\n\n"]
    next_input = data.get("example_input_prefix", "\nQ: ").strip()
    if next_input:
        stops.append(next_input)
    return stops


def _config(task: BigbenchTask, data: dict, multiple_choice: bool, digest: str) -> dict:
    separator = data.get("few_shot_example_separator", "\n")
    config: dict = {
        "task": task.name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": "test.jsonl"}},
        "test_split": "test",
        # Few-shot examples are other examples of the same task, as in BIG-bench.
        "fewshot_split": "test",
        "description": str(data.get("task_prefix", "")),
        "doc_to_text": "input",
        # The output prefix ends the input (often with its space): answers follow directly.
        "target_delimiter": "",
        "fewshot_delimiter": separator,
        # No absolute paths here: the content hash must not depend on where it is installed.
        "metadata": {"version": 1.0, "task_json_sha256": digest},
    }
    if multiple_choice:
        config.update(
            output_type="multiple_choice",
            doc_to_choice="choices",
            doc_to_target="label",
            metric_list=[
                {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
            ],
        )
        return config
    stop = data.get("stop_string")
    regex = data.get("output_regex") or (None if stop else DEFAULT_REGEX)
    try:
        re.compile(regex or "")
    except re.error as err:
        raise BadInput(f"{task.name}: output_regex {regex!r} is not a regex: {err}") from None
    steps = []
    if regex:
        steps.append(
            {"function": "regex", "regex_pattern": regex, "group_select": 0, "fallback": ""}
        )
    steps.append({"function": "take_first"})
    config.update(
        output_type="generate_until",
        doc_to_target="targets",
        generation_kwargs={
            "until": _stops(data),
            "max_gen_toks": MAX_GEN_TOKS,
            "do_sample": False,
        },
        filter_list=[{"name": "bigbench", "filter": steps}],
        metric_list=[{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
    )
    return config


class _Dumper(yaml.SafeDumper):
    """Strings with line breaks as one double-quoted line ("\\nA: "), readable in YAML."""


_Dumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar(
        "tag:yaml.org,2002:str", text, style='"' if "\n" in text else None
    ),
)


def dump_yaml(config: dict) -> str:
    return yaml.dump(config, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def cache_dir() -> Path:
    from bench.models.packs import cache_root

    return cache_root() / "bigbench"


def convert(task: BigbenchTask) -> Path:
    """Write (once) the lm-eval task YAML and data for a BIG-bench task; return the YAML."""
    raw = task.json_path.read_bytes()
    digest = hashlib.sha256(raw + CONVERTER.encode()).hexdigest()
    folder = cache_dir() / digest[:24]
    target = folder / "task.yaml"
    if target.is_file():
        return target
    data = json.loads(raw)
    if not data.get("examples"):
        raise BadInput(f"BIG-bench task {task.json_path} has no examples")
    multiple_choice = _is_multiple_choice(data)
    if multiple_choice and not all("target_scores" in e for e in data["examples"]):
        raise BadInput(f"{task.name}: multiple-choice task with examples lacking target_scores")
    if not multiple_choice and not all("target" in e for e in data["examples"]):
        raise BadInput(f"{task.name}: generative task with examples lacking a target")
    rows = _rows(data, multiple_choice)
    config = _config(task, data, multiple_choice, hashlib.sha256(raw).hexdigest())
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".tmp-"))
    (tmp / "test.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    (tmp / "task.yaml").write_text(dump_yaml(config), encoding="utf-8")
    # Data first, YAML last: a present task.yaml means a complete conversion.
    (tmp / "test.jsonl").replace(folder / "test.jsonl")
    (tmp / "task.yaml").replace(target)
    tmp.rmdir()
    return target


def is_bigbench(name: str) -> bool:
    return name.startswith(PREFIX)


def task_names_hint() -> str:
    root = benchmark_dir()
    if root is None:
        return "bigbench:<task> (not installed: pip install --no-deps bigbench)"
    return f"bigbench:<task> ({len(list(root.glob('*/task.json')))} JSON tasks installed)"
