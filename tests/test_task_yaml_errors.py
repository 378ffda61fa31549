"""Malformed task YAML is reported as file:line and field, and stops a run before the store."""

from pathlib import Path

import pytest

from bench.catalog.validate import TaskYamlError, check_task_yaml
from tests.conftest import run_bench

GOOD = """\
task: demo_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: data.jsonl
output_type: multiple_choice
test_split: test
doc_to_text: "{{question}}"
doc_to_choice: "{{choices}}"
doc_to_target: answer
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "demo.yaml"
    path.write_text(text)
    return path


def test_good_yaml_passes(tmp_path):
    assert check_task_yaml(write(tmp_path, GOOD))["task"] == "demo_mc"


def test_syntax_error_names_file_and_line(tmp_path):
    broken = GOOD.replace('doc_to_text: "{{question}}"', 'doc_to_text: "{{question}}\n  bad: [')
    path = write(tmp_path, broken)
    with pytest.raises(TaskYamlError) as info:
        check_task_yaml(path)
    assert info.value.path == path
    assert info.value.line >= 8
    assert str(info.value).startswith(f"{path}:{info.value.line}: YAML syntax error")


def test_missing_field_names_field_and_task_line(tmp_path):
    path = write(tmp_path, GOOD.replace('doc_to_choice: "{{choices}}"\n', ""))
    with pytest.raises(TaskYamlError) as info:
        check_task_yaml(path)
    assert (info.value.line, info.value.field) == (1, "doc_to_choice")
    assert f"{path}:1:" in str(info.value) and "doc_to_choice" in str(info.value)


def test_function_tag_is_not_executed(tmp_path):
    text = GOOD.replace("doc_to_target: answer", "doc_to_target: !function os.system")
    assert check_task_yaml(write(tmp_path, text))["doc_to_target"] == "!function os.system"


def _assert_bad_input(result, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip().splitlines()
    assert len(message) == 1, result.stderr
    for needle in needles:
        assert needle in message[0], message[0]


@pytest.mark.parametrize(
    ("mutation", "needles"),
    [
        (
            lambda t: t.replace("output_type: multiple_choice\n", "output_type: [multiple\n"),
            ["demo.yaml:", "YAML syntax error"],
        ),
        (lambda t: t.replace("doc_to_target: answer\n", ""), ["demo.yaml:1:", "doc_to_target"]),
    ],
)
def test_cli_rejects_bad_yaml_and_writes_nothing(tmp_path, mutation, needles):
    tasks_dir = tmp_path / "mytasks"
    tasks_dir.mkdir()
    write(tasks_dir, mutation(GOOD))
    store = tmp_path / "store.db"
    result = run_bench(
        "run",
        "--model",
        "smollm2-135m-instruct",
        "--tasks",
        "demo_mc",
        "--include-path",
        str(tasks_dir),
        "--store",
        f"sqlite:///{store}",
    )
    _assert_bad_input(result, *needles)
    assert not store.exists()


def test_cli_unknown_task_suggests_close_names(tmp_path):
    store = tmp_path / "store.db"
    result = run_bench(
        "run",
        "--model",
        "smollm2-135m-instruct",
        "--tasks",
        "basics_fact",
        "--store",
        f"sqlite:///{store}",
    )
    _assert_bad_input(result, "unknown task 'basics_fact'", "basics_facts")
    assert not store.exists()


def test_cli_unknown_model_suggests_packs(tmp_path):
    store = tmp_path / "store.db"
    result = run_bench(
        "run", "--model", "smollm2-135m", "--tasks", "basics_facts", "--store", f"sqlite:///{store}"
    )
    _assert_bad_input(result, "unknown model 'smollm2-135m'", "smollm2-135m-instruct")
    assert not store.exists()


def test_cli_builtin_task_is_found_and_unreachable_data_is_reported(tmp_path):
    # `arc_easy` is an lm-eval built-in: it resolves by name through lm-eval's index; its
    # data lives on the hub, which this machine cannot reach, and that is what is said.
    store = tmp_path / "store.db"
    result = run_bench(
        "run",
        "--model",
        "smollm2-135m-instruct",
        "--tasks",
        "arc_easy",
        "--store",
        f"sqlite:///{store}",
    )
    _assert_bad_input(result, "task 'arc_easy' (lm-eval built-in task) could not be built")
    assert not store.exists()


def test_remembered_builtin_names_tell_a_typo_and_never_admit_a_name(tmp_path, monkeypatch):
    from bench.catalog import builtin_names
    from bench.catalog.loader import UnknownTaskError, load_tasks

    monkeypatch.setenv("BENCH_CACHE", str(tmp_path))
    builtin_names.remember(["zz_listed_task"])  # a stale or foreign list
    # Not listed: refused from the list, with its names among the suggestions.
    with pytest.raises(UnknownTaskError) as info:
        load_tasks(["zz_listed_tsk"])
    assert "zz_listed_task" in info.value.suggestions
    # Listed, but lm-eval has no such task: its own index decides, and is remembered.
    with pytest.raises(UnknownTaskError):
        load_tasks(["zz_listed_task"])
    names = builtin_names.remembered()
    assert "zz_listed_task" not in names
    assert {"arc_easy", "hellaswag", "mmlu"} <= set(names)
