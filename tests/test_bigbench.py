"""BIG-bench JSON tasks from the installed `bigbench` package, as `bigbench:<task>`.

Real tasks: code_line_description (multiple choice), auto_debugging (generative) and
cause_and_effect (three multiple-choice subtasks).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.catalog import bigbench
from bench.catalog.loader import load_tasks
from tests.conftest import run_bench

MC, GEN, SUBTASKS = "code_line_description", "auto_debugging", "cause_and_effect"


def task_json(name: str) -> dict:
    return json.loads((bigbench.benchmark_dir() / name / "task.json").read_text())


def converted(name: str) -> tuple[dict, list[dict]]:
    (task,) = bigbench.resolve(f"bigbench:{name}")
    path = bigbench.convert(task)
    import yaml

    rows = [json.loads(line) for line in (path.parent / "test.jsonl").read_text().splitlines()]
    return yaml.safe_load(path.read_text()), rows


def test_multiple_choice_rows_match_the_task_json():
    data = task_json(MC)
    config, rows = converted(MC)
    assert config["output_type"] == "multiple_choice"
    assert len(rows) == len({json.dumps(e, sort_keys=True) for e in data["examples"]})
    for example, row in zip(data["examples"][:5], rows[:5], strict=True):
        scores = example["target_scores"]
        assert row["choices"] == list(scores)
        assert scores[row["choices"][row["label"]]] == max(scores.values())
        assert row["input"].startswith(data["example_input_prefix"] + example["input"])
        assert row["input"].endswith(data["example_output_prefix"])
        for choice in scores:  # append_choices_to_input: every choice is shown
            assert f"\n  choice: {choice}" in row["input"]


def test_generative_rows_and_few_shot_prompt_follow_bigbench():
    data = task_json(GEN)
    config, rows = converted(GEN)
    assert config["output_type"] == "generate_until"
    assert [r["targets"] for r in rows] == [[e["target"]] for e in data["examples"]]
    (loaded,) = load_tasks([f"bigbench:{GEN}"])
    task = loaded.task
    doc = task.test_docs()[0]
    prompt = task.fewshot_context(doc, num_fewshot=2)
    shots = prompt[: -len(doc["input"])]
    assert prompt.endswith(doc["input"]) and shots.endswith("\n")
    # Two other examples, each its input followed directly by its target.
    used = [r for r in rows if r["input"] + r["targets"][0] + "\n" in shots and r != dict(doc)]
    assert len(used) == 2


def test_subtasks_expand_and_hash_covers_the_json():
    tasks = bigbench.resolve(f"bigbench:{SUBTASKS}")
    assert [t.name for t in tasks] == [
        f"bigbench:{SUBTASKS}:one_sentence",
        f"bigbench:{SUBTASKS}:one_sentence_no_prompt",
        f"bigbench:{SUBTASKS}:two_sentences",
    ]
    loaded = load_tasks([f"bigbench:{SUBTASKS}:two_sentences"])
    assert loaded[0].source.endswith("cause_and_effect/two_sentences/task.json")


def test_task_from_a_path_and_its_hash_follows_the_data(tmp_path):
    data = task_json(GEN)
    path = tmp_path / "mine" / "task.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    first = load_tasks([f"bigbench:{path}"])[0]
    assert first.name == "bigbench:mine"
    data["examples"][0]["target"] = "something else"
    path.write_text(json.dumps(data))
    second = load_tasks([f"bigbench:{path}"])[0]
    assert first.content_hash != second.content_hash


def test_show_and_unknown_names():
    shown = run_bench("tasks", "show", f"bigbench:{MC}")
    assert shown.returncode == 0, shown.stderr
    assert "content hash" in shown.stdout and "multiple_choice" in shown.stdout
    unknown = run_bench("tasks", "show", "bigbench:code_line_descripton")
    assert unknown.returncode == 2
    assert "bigbench:code_line_description" in unknown.stderr
    ran = run_bench("run", "--model", "smollm2-135m-instruct", "--tasks", "bigbench:nope_nope")
    assert ran.returncode == 2 and "unknown BIG-bench task" in ran.stderr
    listed = run_bench("tasks", "list")
    assert "bigbench:<task>" in listed.stdout and "humaneval" in listed.stdout


def lm_eval_direct(model_dir: Path, task: str, limit: int, out: Path) -> dict:
    """The lm_eval CLI on the converted YAML, from its folder (relative data_files)."""
    (loaded,) = bigbench.resolve(task)
    folder = bigbench.convert(loaded).parent
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={model_dir}",
            "--tasks",
            task,
            "--include_path",
            ".",
            "--limit",
            str(limit),
            "--batch_size",
            "8",
            "--output_path",
            str(out),
        ],
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    (result,) = out.rglob("results_*.json")
    return json.loads(result.read_text())["results"][task]


@pytest.mark.slow
def test_three_real_tasks_score_and_match_lm_eval(smollm2_dir, tmp_path):
    from bench.results import load

    store = f"sqlite:///{tmp_path / 's.db'}"
    limit = 2
    ran = run_bench(
        "run",
        "--model",
        str(smollm2_dir),
        "--tasks",
        f"bigbench:{MC},bigbench:{GEN},bigbench:{SUBTASKS}",
        "--limit",
        str(limit),
        "--batch-size",
        "8",
        "--store",
        store,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    frames = load(store)
    samples, metrics = frames.samples, frames.metrics
    expected = {
        f"bigbench:{MC}",
        f"bigbench:{GEN}",
        *(t.name for t in bigbench.resolve(f"bigbench:{SUBTASKS}")),
    }
    assert set(samples["task"]) == expected
    assert samples.groupby("task").size().to_dict() == dict.fromkeys(expected, limit)
    assert metrics["value"].between(0, 1).all()
    primary = metrics[metrics["is_primary"]].set_index("task")["metric"].to_dict()
    assert primary[f"bigbench:{MC}"] == "acc" and primary[f"bigbench:{GEN}"] == "exact_match"

    direct = lm_eval_direct(smollm2_dir, f"bigbench:{MC}", limit, tmp_path / "lm_eval")
    ours = metrics[metrics["task"] == f"bigbench:{MC}"].set_index("metric")["value"]
    for metric in ("acc", "acc_norm"):
        assert ours[metric] == pytest.approx(direct[f"{metric},none"], abs=1e-6)
