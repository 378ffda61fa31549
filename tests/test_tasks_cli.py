"""`bench tasks validate | new | list | show`, and task code refused unless trusted."""

import json
import shutil

import pytest

from tests.conftest import BASICS, run_bench


@pytest.fixture()
def pack(tmp_path):
    """A copy of the scaffolded example pack, to break in different ways."""
    made = run_bench("tasks", "new", "demo_pack", "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    return tmp_path / "demo_pack"


def test_scaffold_validates_lists_shows_and_runs(pack, tmp_path):
    assert run_bench("tasks", "validate", str(pack)).returncode == 0
    listed = run_bench("tasks", "list", "--include-path", str(pack))
    assert "demo_pack" in listed.stdout
    shown = run_bench("tasks", "show", "demo_pack", "--include-path", str(pack))
    assert "content hash" in shown.stdout and "doc_to_choice" in shown.stdout
    ran = run_bench(
        "run",
        "--model",
        "smollm2-135m-instruct",
        "--tasks",
        "demo_pack",
        "--include-path",
        str(pack),
        "--store",
        f"sqlite:///{tmp_path / 's.db'}",
    )
    assert ran.returncode == 0, ran.stderr[-2000:]


def test_shipped_tasks_validate():
    assert run_bench("tasks", "validate", str(BASICS)).returncode == 0


def edit_yaml(pack, old, new):
    path = pack / "demo_pack.yaml"
    path.write_text(path.read_text().replace(old, new))


def edit_row(pack, row, **changes):
    path = pack / "data" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[row].update(changes)
    rows[row] = {k: v for k, v in rows[row].items() if v is not None}
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize(
    ("breakage", "needles"),
    [
        (
            lambda p: edit_yaml(p, "doc_to_target: answer\n", ""),
            ["demo_pack.yaml:1:", "doc_to_target"],
        ),
        (lambda p: edit_yaml(p, "{{question}}", "{{questoin}}"), ["test.jsonl:1:", "questoin"]),
        (lambda p: edit_row(p, 2, answer=7), ["test.jsonl:3:", "out of range", "answer"]),
        (
            lambda p: edit_yaml(p, "output_type: multiple_choice", "output_type: [multiple"),
            ["demo_pack.yaml:", "YAML syntax error"],
        ),
        (lambda p: (p / "data" / "test.jsonl").unlink(), ["test.jsonl is missing", "data_files"]),
    ],
    ids=[
        "missing-field",
        "bad-template-variable",
        "label-out-of-range",
        "yaml-syntax",
        "missing-data-file",
    ],
)
def test_validate_names_file_line_and_field(pack, breakage, needles):
    breakage(pack)
    result = run_bench("tasks", "validate", str(pack))
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    for needle in needles:
        assert needle in message, message


def test_task_code_needs_trust(pack, tmp_path):
    shutil.copy(BASICS / "make_arith.py", pack / "helpers.py")
    edit_yaml(pack, "doc_to_target: answer", "doc_to_target: !function helpers.make")
    refused = run_bench(
        "run",
        "--model",
        "smollm2-135m-instruct",
        "--tasks",
        "demo_pack",
        "--include-path",
        str(pack),
        "--store",
        f"sqlite:///{tmp_path / 'x.db'}",
    )
    assert refused.returncode == 2
    assert "demo_pack.yaml:" in refused.stderr and "--trust-task-code" in refused.stderr
    assert not (tmp_path / "x.db").exists()


def code_pack(root):
    """A task whose `!function` sits in an included file in another folder; the module
    it names lies beside that file, and a decoy of the same name beside the task."""
    (root / "common").mkdir(parents=True)
    (root / "common" / "base.yaml").write_text(
        "output_type: multiple_choice\n"
        "test_split: test\n"
        'doc_to_choice: "{{choices}}"\n'
        "doc_to_target: !function helpers.target\n"
    )
    marker = root / "helpers-ran"
    (root / "common" / "helpers.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n\ndef target(doc):\n    return doc['answer']\n"
    )
    (root / "helpers.py").write_text("def target(doc):\n    return 99\n")
    (root / "code_task.yaml").write_text(
        "include: common/base.yaml\n"
        "task: code_task\n"
        "dataset_path: json\n"
        "dataset_kwargs:\n  data_files:\n    test: data.jsonl\n"
        'doc_to_text: "{{question}}"\n'
    )
    rows = [{"question": f"q{i}", "choices": ["a", "b"], "answer": i % 2} for i in range(3)]
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return marker


def test_included_task_code_is_refused_at_its_line_and_never_imported(tmp_path):
    from bench.catalog.loader import load_tasks
    from bench.catalog.validate import TaskYamlError

    marker = code_pack(tmp_path)
    with pytest.raises(TaskYamlError) as info:
        load_tasks(["code_task"], [tmp_path])
    assert str(info.value).startswith(f"{tmp_path / 'common' / 'base.yaml'}:4: ")
    assert "--trust-task-code" in str(info.value)
    assert not marker.exists()


def test_trusted_task_code_is_the_module_beside_its_yaml(tmp_path):
    import sys

    from bench.catalog.loader import load_tasks

    marker = code_pack(tmp_path)
    (loaded,) = load_tasks(["code_task"], [tmp_path], trust_code=True)
    assert marker.exists()
    docs = list(loaded.task.test_docs())
    assert [loaded.task.doc_to_target(d) for d in docs] == [0, 1, 0]  # not the decoy's 99
    helper = str(tmp_path / "common" / "helpers.py")
    assert not [m for m in list(sys.modules.values()) if getattr(m, "__file__", "") == helper]


def test_trusted_task_code_that_cannot_load_is_one_line_at_its_tag(tmp_path):
    from bench.catalog.loader import load_tasks
    from bench.catalog.validate import TaskYamlError

    code_pack(tmp_path)
    base = tmp_path / "common" / "base.yaml"
    base.write_text(base.read_text().replace("helpers.target", "helpers.tagret"))
    with pytest.raises(TaskYamlError) as info:
        load_tasks(["code_task"], [tmp_path], trust_code=True)
    assert str(info.value).startswith(f"{base}:4: helpers.tagret cannot be loaded")
    assert "\n" not in str(info.value)
