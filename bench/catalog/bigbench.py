"""BIG-bench JSON tasks as lm-eval tasks: `bigbench:<task>[:<subtask>]` or `bigbench:<path>`.

BIG-bench's task.json format is the contract, not its package. A name finds its task.json
in the folder that BENCH_BIGBENCH_TASKS names (a BIG-bench checkout's
bigbench/benchmark_tasks) or in the installed `bigbench` package's benchmark_tasks (an
optional extra); a path (`bigbench:./mytask`, `bigbench:/x/task.json`) needs neither.
A task.json is converted once into an lm-eval task YAML plus a JSONL data file in the
cache, keyed by the json's sha256 and the task's name, so scoring is lm-eval's own
(multiple choice: acc / acc_norm; generative: exact_match) and the task's content hash
covers the task.json. Prompts follow BIG-bench's own formatting (bigbench/api/json_task.py):
task_prefix, example_input_prefix, choices appended to the input in BIG-bench's seeded
order, example_output_prefix, and few-shot examples joined by few_shot_example_separator.
Programmatic BIG-bench tasks (task.py) are not JSON tasks and are refused.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.errors import BadInput

PREFIX = "bigbench:"
# A folder of BIG-bench tasks (a checkout's bigbench/benchmark_tasks) that names resolve in.
TASKS_ENV = "BENCH_BIGBENCH_TASKS"
# Bump when the conversion changes: it is part of the cache key.
CONVERTER = "bench-bigbench-5"
# BIG-bench's default for generative answers (json_task.py _DEFAULT_REGEX): the first
# run of text up to a sentence end or a line break.
DEFAULT_REGEX = r"[^\.\?\!\;\n]+"
MAX_GEN_TOKS = 32


def install_hint(name: str) -> str:
    return (
        f"{name} needs BIG-bench's task files: set {TASKS_ENV} to a BIG-bench checkout's "
        "bigbench/benchmark_tasks, or install the package (pip install --no-deps "
        "bigbench==1.0.0, where your index serves it), or pass "
        f"{PREFIX}<path to a task.json or its folder>"
    )


@dataclass(frozen=True)
class BigbenchTask:
    name: str  # bigbench:<task>[:<subtask>]
    json_path: Path


def benchmark_dir() -> Path | None:
    """bigbench/benchmark_tasks of the installed package (found, not imported: its
    __init__ pulls in the full BIG-bench API). None without the package, and for a
    package without task files (the index's bigbench 0.0.1)."""
    spec = importlib.util.find_spec("bigbench")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "benchmark_tasks"
    return folder if folder.is_dir() else None


def env_dir() -> Path | None:
    """The folder BENCH_BIGBENCH_TASKS names (None when unset); a checkout's root is taken
    to mean its bigbench/benchmark_tasks."""
    value = os.environ.get(TASKS_ENV, "").strip()
    if not value:
        return None
    folder = Path(value).expanduser()
    inner = folder / "bigbench" / "benchmark_tasks"
    return inner if inner.is_dir() else folder


def task_roots() -> list[Path]:
    """Where `bigbench:<name>` looks, in order: BENCH_BIGBENCH_TASKS, then the package."""
    roots = []
    env = env_dir()
    if env is not None:
        if not env.is_dir():
            raise BadInput(
                f"{TASKS_ENV}={os.environ[TASKS_ENV]} is not a folder; point it at a "
                "BIG-bench checkout's bigbench/benchmark_tasks"
            )
        roots.append(env)
    package = benchmark_dir()
    if package is not None and package not in roots:
        roots.append(package)
    return roots


def _read(path: Path, raw: bytes | None = None) -> dict:
    """A task.json as a dict, or BadInput saying where it is broken."""
    try:
        data = json.loads(path.read_bytes() if raw is None else raw)
    except json.JSONDecodeError as err:
        raise BadInput(f"{path}:{err.lineno}: not valid JSON: {err.msg}") from None
    except UnicodeDecodeError as err:
        raise BadInput(f"{path}: not UTF-8 text: {err.reason}") from None
    if not isinstance(data, dict):
        raise BadInput(
            f"{path}: a BIG-bench task.json holds a JSON object, not {type(data).__name__}"
        )
    return data


def _json_task_names(root: Path) -> list[str]:
    names = []
    for path in sorted(root.glob("*/task.json")):
        names.append(path.parent.name)
        names.extend(
            f"{path.parent.name}:{sub.parent.name}"
            for sub in sorted(path.parent.glob("*/task.json"))
        )
    return names


def _expand(name: str, task_json: Path) -> list[BigbenchTask]:
    """A task whose task.json holds no examples is a set of subtasks, one per subfolder."""
    if _read(task_json).get("examples"):
        return [BigbenchTask(name, task_json)]
    subs = sorted(task_json.parent.glob("*/task.json")) if task_json.name == "task.json" else []
    if not subs:
        raise BadInput(
            f"BIG-bench task {task_json} has no examples and no subtasks "
            "(subfolders with a task.json each)"
        )
    return [BigbenchTask(f"{name}:{sub.parent.name}", sub) for sub in subs]


def _is_path(spec: str) -> bool:
    return (
        "/" in spec
        or os.sep in spec
        or spec.endswith(".json")
        or spec in (".", "..")
        or spec.startswith("~")
    )


def _path_name(task_json: Path) -> str:
    """The name a task given by path runs under: its folder's name (a file's stem if it is
    not called task.json), and <task>:<subtask> for a subtask inside its task's folder."""
    task_json = task_json.resolve()
    if task_json.name != "task.json":
        return f"{PREFIX}{task_json.stem}"
    folder = task_json.parent
    if (folder.parent / "task.json").is_file():
        return f"{PREFIX}{folder.parent.name}:{folder.name}"
    return f"{PREFIX}{folder.name}"


def _from_path(name: str, spec: str) -> list[BigbenchTask]:
    candidate = Path(spec).expanduser()
    task_json = candidate / "task.json" if candidate.is_dir() else candidate
    if not task_json.is_file():
        if (candidate / "task.py").is_file():
            raise BadInput(
                f"{name} is a programmatic BIG-bench task (task.py); only JSON tasks run"
            )
        raise BadInput(f"{name}: no BIG-bench task.json at {task_json}")
    return _expand(_path_name(task_json), task_json)


def resolve(name: str) -> list[BigbenchTask]:
    """`bigbench:<task>`, `bigbench:<task>:<subtask>` or `bigbench:<path to task.json or
    its folder>` -> the JSON tasks it names (several for a task made of subtasks)."""
    spec = name[len(PREFIX) :]
    if not spec:
        raise BadInput(f"'{name}' names no task; use {PREFIX}<task> or {PREFIX}<path to task.json>")
    if _is_path(spec):
        return _from_path(name, spec)
    roots = task_roots()
    local = Path(spec) / "task.json"
    as_path = f"; for the folder ./{spec} write {PREFIX}./{spec}" if local.is_file() else ""
    if not roots:
        raise BadInput(install_hint(name) + as_path)
    parts = spec.split(":")
    if all(p and p not in (".", "..") for p in parts):
        for root in roots:
            folder = root.joinpath(*parts)
            if (folder / "task.json").is_file():
                return _expand(name, folder / "task.json")
            if (folder / "task.py").is_file():
                raise BadInput(
                    f"{name} is a programmatic BIG-bench task (task.py); only JSON tasks run"
                )
    known = list(dict.fromkeys(n for root in roots for n in _json_task_names(root)))
    close = difflib.get_close_matches(spec, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(PREFIX + c for c in close)}?" if close else ""
    where = " or ".join(str(root) for root in roots)
    raise BadInput(f"unknown BIG-bench task '{name}' (looked in {where}){hint}{as_path}")


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
    the first output_regex match, so stopping early must not cut before that: stop at a
    blank line or where the model starts the next example's input prefix (not at the
    stop_string, which lm-eval would drop from the answer while BIG-bench keeps it)."""
    stops = ["\n\n"]
    next_input = data.get("example_input_prefix", "\nQ: ").strip()
    if next_input:
        stops.append(next_input)
    return stops


def stop_string_pattern(stop: str) -> str:
    """A regex whose match is BIG-bench's cut at stop_string (model_utils.postprocess_output):
    the text up to and including the first stop_string, unless that is at the very start
    (or absent), then the whole text."""
    s = re.escape(stop)
    return rf"(?s)\A(?:(?:(?!{s}).)+{s}|.*)"


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
    for key, value in (("stop_string", stop), ("output_regex", regex)):
        if value is not None and not isinstance(value, str):
            raise BadInput(f"{task.name}: {key} {value!r} is not a string")
    try:
        groups = re.compile(regex or "").groups
    except re.error as err:
        raise BadInput(f"{task.name}: output_regex {regex!r} is not a regex: {err}") from None
    if groups > 1:
        raise BadInput(
            f"{task.name}: output_regex {regex!r} has {groups} capturing groups; BIG-bench "
            "needs at most one (write the others as (?:...))"
        )
    steps = []
    if stop:
        steps.append(
            {
                "function": "regex",
                "regex_pattern": stop_string_pattern(stop),
                "group_select": 0,
                "fallback": "",
            }
        )
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


def _check(task: BigbenchTask, data: dict) -> bool:
    """BadInput unless the examples are what the task's kind needs; True for multiple
    choice."""
    where = f"{task.name} ({task.json_path})"
    examples = data.get("examples")
    if not examples or not isinstance(examples, list):
        raise BadInput(f"{where}: no examples (a BIG-bench task.json lists them in 'examples')")
    for i, example in enumerate(examples):
        if not isinstance(example, dict) or not isinstance(example.get("input"), str):
            raise BadInput(f"{where}: example {i} has no 'input' text")
    multiple_choice = _is_multiple_choice(data)
    for i, example in enumerate(examples):
        if multiple_choice:
            scores = example.get("target_scores")
            if not isinstance(scores, dict) or not scores:
                raise BadInput(
                    f"{where}: example {i} lacks target_scores, which a multiple-choice "
                    "task needs (a {choice: score} object)"
                )
            if not all(isinstance(s, int | float) for s in scores.values()):
                raise BadInput(f"{where}: example {i} has target_scores that are not numbers")
        else:
            target = example.get("target")
            targets = target if isinstance(target, list) else [target]
            if not targets or not all(isinstance(t, str) for t in targets):
                raise BadInput(
                    f"{where}: example {i} lacks a target, which a generative task needs "
                    "(a string or a list of strings)"
                )
    return multiple_choice


def convert(task: BigbenchTask) -> Path:
    """Write (once) the lm-eval task YAML and data for a BIG-bench task; return the YAML."""
    raw = task.json_path.read_bytes()
    # The name is in the YAML: the same json under two names is two conversions.
    key = raw + CONVERTER.encode() + b"\0" + task.name.encode()
    folder = cache_dir() / hashlib.sha256(key).hexdigest()[:24]
    target = folder / "task.yaml"
    if target.is_file():
        return target
    data = _read(task.json_path, raw)
    multiple_choice = _check(task, data)
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
    """What `bench tasks list` says about `bigbench:` names, given where task files are."""
    path_form = f"{PREFIX}<path to a task.json or its folder>"
    try:
        roots = task_roots()
    except BadInput as err:
        return f"{path_form}; names: {err}"
    if not roots:
        return (
            f"{path_form}; {PREFIX}<task> names need BIG-bench's task files "
            f"({TASKS_ENV} or the bigbench package)"
        )
    count = len({p.parent.name for root in roots for p in root.glob("*/task.json")})
    where = " and ".join(
        TASKS_ENV if root == env_dir() else "the bigbench package" for root in roots
    )
    return f"{PREFIX}<task> ({count} JSON tasks from {where}) or {path_form}"
