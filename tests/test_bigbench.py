"""BIG-bench JSON tasks, `bigbench:<task>` and `bigbench:<path>`, with no bigbench package.

BIG-bench's task.json format is the contract: every test writes its own task.json files
(multiple choice, generative with and without output_regex, a task made of subtasks,
custom prefixes) and checks what bench makes of them. Names resolve from the folder that
BENCH_BIGBENCH_TASKS names; without it (and without the package) they exit 2 with a hint.
"""

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from bench.catalog import bigbench
from bench.catalog.loader import load_tasks
from bench.errors import BadInput
from tests.conftest import run_bench

# A multiple-choice task with BIG-bench's default prefixes and one duplicate example.
MC = {
    "name": "capitals",
    "description": "Pick the capital city of a country.",
    "keywords": ["multiple choice", "zero-shot"],
    "metrics": ["multiple_choice_grade"],
    "preferred_score": "multiple_choice_grade",
    "examples": [
        {
            "input": "What is the capital of France?",
            "target_scores": {"Paris": 1, "London": 0, "Rome": 0, "Berlin": 0},
        },
        {"input": "What is the capital of Italy?", "target_scores": {"Rome": 1, "Madrid": 0}},
        {
            "input": "What is the capital of Spain?",
            "target_scores": {"Lisbon": 0, "Madrid": 1, "Paris": 0},
        },
        {"input": "What is the capital of Italy?", "target_scores": {"Rome": 1, "Madrid": 0}},
    ],
}
# BIG-bench shows choices in np.random.RandomState(42).permutation(sorted(choices)):
# for four choices that is sorted positions 1, 3, 0, 2.
MC_FIRST_PROMPT = (
    "\nQ: What is the capital of France?"
    "\n  choice: London\n  choice: Rome\n  choice: Berlin\n  choice: Paris"
    "\nA: "
)

# A generative task with its own prefixes, separator and task prefix; BIG-bench's default
# output_regex applies (no output_regex, no stop_string).
GEN = {
    "name": "arithmetic_words",
    "description": "Answer a sum with a number.",
    "keywords": ["arithmetic", "free response"],
    "metrics": ["exact_str_match"],
    "preferred_score": "exact_str_match",
    "task_prefix": "Answer each sum.\n",
    "example_input_prefix": "Question: ",
    "example_output_prefix": "\nAnswer: ",
    "few_shot_example_separator": "\n\n",
    "examples": [
        {"input": "What is 2 plus 3?", "target": "5"},
        {"input": "What is 4 plus 4?", "target": ["8", "eight"]},
        {"input": "What is 1 plus 6?", "target": "7"},
        {"input": "What is 9 plus 0?", "target": "9"},
    ],
}

# A generative task with an output_regex: the answer is the first match in the output.
REGEX = {
    "name": "count_letters",
    "description": "Count letters in a word.",
    "keywords": ["free response"],
    "metrics": ["exact_str_match"],
    "preferred_score": "exact_str_match",
    "output_regex": "[0-9]+",
    "examples": [
        {"input": "How many letters are in the word 'cat'?", "target": "3"},
        {"input": "How many letters are in the word 'house'?", "target": "5"},
    ],
}

# A task made of subtasks: the top task.json has no examples, each subfolder one task.
SUITE = {
    "name": "suite",
    "description": "Two subtasks.",
    "keywords": ["multiple choice"],
    "metrics": ["multiple_choice_grade"],
    "preferred_score": "multiple_choice_grade",
}
SUITE_SUBTASKS = {
    "with_choices": {
        "name": "suite:with_choices",
        "description": "Choices appended with a custom prefix.",
        "keywords": ["multiple choice"],
        "metrics": ["multiple_choice_grade"],
        "preferred_score": "multiple_choice_grade",
        "example_input_prefix": "\nSentence: ",
        "example_output_prefix": "\nWhich one? ",
        "choice_prefix": "\n - ",
        "examples": [
            {"input": "It rained, so the grass got wet.", "target_scores": {"yes": 1, "no": 0}},
            {"input": "The grass got wet, so it rained.", "target_scores": {"yes": 0, "no": 1}},
        ],
    },
    "without_choices": {
        "name": "suite:without_choices",
        "description": "Choices not shown.",
        "keywords": ["multiple choice"],
        "metrics": ["multiple_choice_grade"],
        "preferred_score": "multiple_choice_grade",
        "append_choices_to_input": False,
        "examples": [
            {"input": "The sky is", "target_scores": {" blue": 1, " green": 0}},
            {"input": "Snow is", "target_scores": {" black": 0, " white": 1}},
        ],
    },
}


def write_task(folder: Path, data: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "task.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def tasks_dir(tmp_path) -> Path:
    """A folder laid out as BIG-bench's benchmark_tasks, with every fixture task."""
    root = tmp_path / "benchmark_tasks"
    write_task(root / "capitals", MC)
    write_task(root / "arithmetic_words", GEN)
    write_task(root / "count_letters", REGEX)
    write_task(root / "suite", SUITE)
    for sub, data in SUITE_SUBTASKS.items():
        write_task(root / "suite" / sub, data)
    (root / "programmatic").mkdir()
    (root / "programmatic" / "task.py").write_text("# a programmatic task\n")
    return root


@pytest.fixture
def no_task_files(tmp_path, monkeypatch):
    """Neither BENCH_BIGBENCH_TASKS nor a bigbench package with task files: a package like
    the index's bigbench 0.0.1 (no benchmark_tasks) comes first on the path, here and in
    the CLI's subprocesses."""
    fake = tmp_path / "site"
    (fake / "bigbench").mkdir(parents=True)
    (fake / "bigbench" / "__init__.py").write_text("")
    monkeypatch.delenv(bigbench.TASKS_ENV, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(fake))
    monkeypatch.syspath_prepend(str(fake))
    sys.modules.pop("bigbench", None)
    yield
    sys.modules.pop("bigbench", None)


def converted(name: str) -> list[tuple[str, dict, list[dict]]]:
    """(task name, lm-eval config, data rows) for each task a bigbench: name expands to."""
    out = []
    for task in bigbench.resolve(name):
        path = bigbench.convert(task)
        rows = [json.loads(line) for line in (path.parent / "test.jsonl").read_text().splitlines()]
        out.append((task.name, yaml.safe_load(path.read_text()), rows))
    return out


def apply_filters(task, response: str) -> str:
    """What lm-eval's filters of the task make of one model output."""
    (ensemble,) = task._filters
    resps = [[response]]
    for step in ensemble.filters:
        resps = list(step().apply(resps, [{}]))
    (answer,) = resps
    return answer


# --- conversion: rows, prompts, configs ------------------------------------------------


def test_multiple_choice_rows_follow_bigbench(tmp_path):
    path = write_task(tmp_path / "capitals", MC)
    ((name, config, rows),) = converted(f"bigbench:{path}")
    assert name == "bigbench:capitals"
    assert config["output_type"] == "multiple_choice"
    assert [m["metric"] for m in config["metric_list"]] == ["acc", "acc_norm"]
    # BIG-bench drops the duplicate example.
    assert len(rows) == 3
    assert rows[0]["input"] == MC_FIRST_PROMPT
    for example, row in zip(MC["examples"], rows, strict=False):
        scores = example["target_scores"]
        assert row["choices"] == list(scores)
        assert scores[row["choices"][row["label"]]] == max(scores.values())
        assert row["input"].startswith("\nQ: " + example["input"] + "\n  choice: ")
        assert row["input"].endswith("\nA: ")
        for choice in scores:  # append_choices_to_input: every choice is shown
            assert f"\n  choice: {choice}" in row["input"]
    # The model is asked for the choice right after the output prefix, with no delimiter.
    (loaded,) = load_tasks([f"bigbench:{path}"])
    doc = loaded.task.test_docs()[0]
    requests = loaded.task.construct_requests(doc, loaded.task.fewshot_context(doc, 0))
    assert [r.arguments for r in requests] == [
        (MC_FIRST_PROMPT, choice) for choice in MC["examples"][0]["target_scores"]
    ]


def test_generative_rows_and_few_shot_prompt_follow_bigbench(tmp_path):
    path = write_task(tmp_path / "arithmetic_words", GEN)
    ((_, config, rows),) = converted(f"bigbench:{path}")
    assert config["output_type"] == "generate_until"
    assert [r["targets"] for r in rows] == [["5"], ["8", "eight"], ["7"], ["9"]]
    assert rows[0]["input"] == "Question: What is 2 plus 3?\nAnswer: "
    # Generation may stop at a blank line or at the next example's input prefix.
    assert config["generation_kwargs"]["until"] == ["\n\n", "Question:"]

    (loaded,) = load_tasks([f"bigbench:{path}"])
    task = loaded.task
    doc = task.test_docs()[0]
    # Zero-shot: BIG-bench's task_prefix, then the formatted input.
    assert task.fewshot_context(doc, 0) == "Answer each sum.\nQuestion: What is 2 plus 3?\nAnswer: "
    prompt = task.fewshot_context(doc, num_fewshot=2)
    assert prompt.startswith("Answer each sum.\n") and prompt.endswith(doc["input"])
    shots = prompt[len("Answer each sum.\n") : -len(doc["input"])]
    # Two other examples, each its input followed directly by its target, each followed
    # by the task's few_shot_example_separator.
    blocks = shots.split("\n\n")
    assert blocks[-1] == "" and len(blocks) == 3
    others = {r["input"] + r["targets"][0] for r in rows if r["input"] != doc["input"]}
    assert set(blocks[:2]) <= others and len(set(blocks[:2])) == 2


def test_output_regex_and_stop_string_pick_the_answer(tmp_path):
    """BIG-bench scores the first match of output_regex (default: text up to a sentence
    end) in the output, or the output up to stop_string."""
    regex_path = write_task(tmp_path / "count_letters", REGEX)
    gen_path = write_task(tmp_path / "arithmetic_words", GEN)
    stop_path = write_task(
        tmp_path / "stops", {**REGEX, "output_regex": None, "stop_string": "###"}
    )
    for _, config, _ in converted(f"bigbench:{regex_path}"):
        (step, _) = config["filter_list"][0]["filter"]
        assert step["regex_pattern"] == "[0-9]+"
    (regex_task, gen_task, stop_task) = load_tasks(
        [f"bigbench:{regex_path}", f"bigbench:{gen_path}", f"bigbench:{stop_path}"]
    )
    assert apply_filters(regex_task.task, "There are 5 letters, not 6.") == "5"
    assert apply_filters(regex_task.task, "I do not know.") == ""
    assert apply_filters(gen_task.task, "8. Then 9.") == "8"
    assert apply_filters(gen_task.task, "eight; or nine") == "eight"
    # With a stop_string and no output_regex, BIG-bench keeps the output up to and
    # including the first stop_string (unless it comes first), and applies no regex.
    assert stop_task.task.config.generation_kwargs["until"] == ["\n\n", "Q:"]
    assert apply_filters(stop_task.task, "3 letters. Yes###more###") == "3 letters. Yes###"
    assert apply_filters(stop_task.task, "3 letters. Yes") == "3 letters. Yes"
    assert apply_filters(stop_task.task, "###3") == "###3"
    # Both: the regex looks only at the output up to the stop_string.
    both_path = write_task(tmp_path / "both", {**REGEX, "stop_string": "."})
    (both,) = load_tasks([f"bigbench:{both_path}"])
    assert apply_filters(both.task, "No digits here. 7 later") == ""
    assert apply_filters(both.task, "It has 4 letters. 7 later") == "4"


def test_subtasks_and_custom_prefixes(tasks_dir, monkeypatch):
    monkeypatch.setenv(bigbench.TASKS_ENV, str(tasks_dir))
    expected = ["bigbench:suite:with_choices", "bigbench:suite:without_choices"]
    by_name = [name for name, _, _ in converted("bigbench:suite")]
    by_path = [name for name, _, _ in converted(f"bigbench:{tasks_dir / 'suite'}")]
    assert by_name == by_path == expected
    # A subtask's folder or file on its own keeps its task's name.
    assert [t.name for t in bigbench.resolve(f"bigbench:{tasks_dir}/suite/without_choices")] == [
        "bigbench:suite:without_choices"
    ]
    ((_, _, with_rows),) = converted("bigbench:suite:with_choices")
    ((_, _, without_rows),) = converted("bigbench:suite:without_choices")
    assert with_rows[0]["input"] == (
        "\nSentence: It rained, so the grass got wet.\n - yes\n - no\nWhich one? "
    )
    assert with_rows[0]["choices"] == ["yes", "no"] and with_rows[0]["label"] == 0
    assert with_rows[1]["label"] == 1
    # append_choices_to_input: false shows no choices; the default prefixes stay.
    assert [r["input"] for r in without_rows] == ["\nQ: The sky is\nA: ", "\nQ: Snow is\nA: "]
    assert [r["label"] for r in without_rows] == [0, 1]
    loaded = load_tasks(["bigbench:suite"])
    assert [t.name for t in loaded] == expected
    assert loaded[1].source.endswith("suite/without_choices/task.json")


def test_relative_paths_and_names(tmp_path, monkeypatch):
    write_task(tmp_path / "mytask", MC)
    (tmp_path / "other.json").write_text(json.dumps(GEN))
    monkeypatch.chdir(tmp_path)
    assert [t.name for t in bigbench.resolve("bigbench:./mytask")] == ["bigbench:mytask"]
    assert [t.name for t in bigbench.resolve("bigbench:mytask/task.json")] == ["bigbench:mytask"]
    assert [t.name for t in bigbench.resolve("bigbench:other.json")] == ["bigbench:other"]
    monkeypatch.chdir(tmp_path / "mytask")
    (task,) = bigbench.resolve("bigbench:.")
    assert task.name == "bigbench:mytask" and task.json_path.is_file()
    (loaded,) = load_tasks(["bigbench:."])
    assert loaded.name == "bigbench:mytask" and loaded.output_type == "multiple_choice"


def test_hash_follows_the_data_and_the_name(tmp_path):
    path = write_task(tmp_path / "mine", json.loads(json.dumps(GEN)))
    first = load_tasks([f"bigbench:{path}"])[0]
    assert first.name == "bigbench:mine"
    data = json.loads(path.read_text())
    data["examples"][0]["target"] = "something else"
    path.write_text(json.dumps(data))
    second = load_tasks([f"bigbench:{path}"])[0]
    assert first.content_hash != second.content_hash
    # The same task.json under another name is its own task (not the cached first one).
    copy = tmp_path / "copy" / "task.json"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    both = load_tasks([f"bigbench:{path}", f"bigbench:{copy}"])
    assert [t.name for t in both] == ["bigbench:mine", "bigbench:copy"]
    assert [t.task.config.task for t in both] == ["bigbench:mine", "bigbench:copy"]


# --- names: BENCH_BIGBENCH_TASKS, no task files, errors --------------------------------


def test_names_resolve_from_bench_bigbench_tasks(tasks_dir, monkeypatch, no_task_files):
    monkeypatch.setenv(bigbench.TASKS_ENV, str(tasks_dir))
    assert bigbench.task_roots() == [tasks_dir]
    assert [t.json_path for t in bigbench.resolve("bigbench:capitals")] == [
        tasks_dir / "capitals" / "task.json"
    ]
    # A checkout's root is taken to mean its bigbench/benchmark_tasks.
    checkout = tasks_dir.parent / "BIG-bench"
    (checkout / "bigbench").mkdir(parents=True)
    shutil.copytree(tasks_dir, checkout / "bigbench" / "benchmark_tasks")
    monkeypatch.setenv(bigbench.TASKS_ENV, str(checkout))
    assert [t.name for t in bigbench.resolve("bigbench:count_letters")] == [
        "bigbench:count_letters"
    ]
    assert "4 JSON tasks from BENCH_BIGBENCH_TASKS" in bigbench.task_names_hint()
    with pytest.raises(BadInput, match="programmatic BIG-bench task"):
        bigbench.resolve("bigbench:programmatic")
    with pytest.raises(BadInput, match="did you mean bigbench:capitals"):
        bigbench.resolve("bigbench:capitols")
    monkeypatch.setenv(bigbench.TASKS_ENV, str(tasks_dir / "missing"))
    with pytest.raises(BadInput, match="BENCH_BIGBENCH_TASKS=.*missing is not a folder"):
        bigbench.resolve("bigbench:capitals")


def test_cli_names_with_bench_bigbench_tasks(tasks_dir, monkeypatch):
    monkeypatch.setenv(bigbench.TASKS_ENV, str(tasks_dir))
    shown = run_bench("tasks", "show", "bigbench:capitals")
    assert shown.returncode == 0, shown.stderr
    assert "content hash" in shown.stdout and "multiple_choice" in shown.stdout
    assert f"source {tasks_dir / 'capitals' / 'task.json'}" in shown.stdout
    unknown = run_bench("tasks", "show", "bigbench:capitols")
    assert unknown.returncode == 2
    assert "bigbench:capitals" in unknown.stderr
    listed = run_bench("tasks", "list")
    assert "bigbench:<task>" in listed.stdout and "humaneval" in listed.stdout


def test_names_without_task_files_exit_2_with_the_hint(tmp_path, no_task_files):
    assert bigbench.benchmark_dir() is None  # the 0.0.1-like package counts as absent
    assert bigbench.task_roots() == []
    with pytest.raises(BadInput, match="BENCH_BIGBENCH_TASKS"):
        bigbench.resolve("bigbench:capitals")
    assert "BENCH_BIGBENCH_TASKS" in bigbench.task_names_hint()
    ran = run_bench("run", "--model", "smollm2-135m-instruct", "--tasks", "bigbench:capitals")
    assert ran.returncode == 2
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, ran.stderr
    (line,) = lines
    assert "bigbench:capitals needs BIG-bench's task files" in line
    assert "BENCH_BIGBENCH_TASKS" in line and "pip install --no-deps bigbench" in line
    assert "bigbench:<path to a task.json" in line
    # A path needs no task files from anywhere.
    path = write_task(tmp_path / "capitals", MC)
    shown = run_bench("tasks", "show", f"bigbench:{path}")
    assert shown.returncode == 0, shown.stderr
    assert "# bigbench:capitals" in shown.stdout


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({**MC, "examples": []}, "no examples and no subtasks"),
        ({**GEN, "examples": "none"}, "no examples"),
        (
            {**MC, "examples": [*MC["examples"], {"input": "Which?", "target": "this"}]},
            "example 4 lacks target_scores, which a multiple-choice task needs",
        ),
        (
            {**GEN, "examples": [{"input": "x", "target": "y"}, {"input": "z"}]},
            "example 1 lacks a target, which a generative task needs",
        ),
        ({**REGEX, "output_regex": "[0-9+"}, r"output_regex '\[0-9\+' is not a regex"),
        ({**GEN, "examples": [{"target": "y"}]}, "example 0 has no 'input' text"),
    ],
    ids=["no-examples", "examples-not-a-list", "mc-no-scores", "gen-no-target", "regex", "input"],
)
def test_bad_task_json_is_bad_input(tmp_path, data, message):
    path = write_task(tmp_path / "bad", data)
    with pytest.raises(BadInput, match=message):
        load_tasks([f"bigbench:{path}"])


def test_broken_files_and_paths_are_bad_input(tmp_path):
    broken = tmp_path / "broken" / "task.json"
    broken.parent.mkdir()
    broken.write_text('{"name": "broken",\n "examples": [}\n')
    with pytest.raises(BadInput, match=r"broken/task\.json:2: not valid JSON"):
        bigbench.resolve(f"bigbench:{broken}")
    with pytest.raises(BadInput, match="no BIG-bench task.json at"):
        bigbench.resolve(f"bigbench:{tmp_path / 'nowhere'}")
    with pytest.raises(BadInput, match="names no task"):
        bigbench.resolve("bigbench:")
    ran = run_bench("tasks", "show", f"bigbench:{broken}")
    assert ran.returncode == 2
    assert len([line for line in ran.stderr.splitlines() if line.strip()]) == 1, ran.stderr


# --- scoring end to end, on a real model -----------------------------------------------


def lm_eval_direct(model_dir: Path, task: str, limit: int, out: Path) -> dict:
    """The lm_eval CLI on the converted YAML, from its folder (relative data_files)."""
    import os
    import subprocess

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
            loaded.name,
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
    return json.loads(result.read_text())["results"][loaded.name]


@pytest.mark.slow
def test_fixture_tasks_score_end_to_end_and_match_lm_eval(
    smollm2_dir, tasks_dir, tmp_path, monkeypatch
):
    from bench.results import load

    monkeypatch.setenv(bigbench.TASKS_ENV, str(tasks_dir))
    store = f"sqlite:///{tmp_path / 's.db'}"
    limit = 2
    ran = run_bench(
        "run",
        "--model",
        str(smollm2_dir),
        "--tasks",
        f"bigbench:capitals,bigbench:{tasks_dir / 'arithmetic_words'},"
        "bigbench:count_letters,bigbench:suite",
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
    mc = {"bigbench:capitals", "bigbench:suite:with_choices", "bigbench:suite:without_choices"}
    gen = {"bigbench:arithmetic_words", "bigbench:count_letters"}
    assert set(samples["task"]) == mc | gen
    assert samples.groupby("task").size().to_dict() == dict.fromkeys(mc | gen, limit)
    primary = metrics[metrics["is_primary"]].set_index("task")["metric"].to_dict()
    assert primary == {**dict.fromkeys(mc, "acc"), **dict.fromkeys(gen, "exact_match")}

    # Each metric is the mean of its per-sample scores, each a 0/1 grade.
    for row in metrics.itertuples():
        mine = samples[samples["task"] == row.task]
        per_sample = [s[row.metric] for s in mine["scores"]]
        assert set(per_sample) <= {0.0, 1.0}, (row.task, row.metric)
        assert 0 <= row.value <= 1
        assert row.value == pytest.approx(sum(per_sample) / len(per_sample), abs=1e-12)
        assert row.n_samples == limit

    rows = {
        name: rows
        for task in ("capitals", "suite", "arithmetic_words", "count_letters")
        for name, _, rows in converted(f"bigbench:{task}")
    }
    # Multiple choice, recomputed from the stored loglikelihoods: acc picks the likeliest
    # choice, acc_norm the likeliest per character; right when it is the best-scored one.
    for sample in samples[samples["task"].isin(mc)].itertuples():
        row = rows[sample.task][sample.doc_id]
        logliks = [ll for ll, _ in json.loads(sample.response)]
        assert len(logliks) == len(row["choices"]) and int(sample.target) == row["label"]
        per_char = [ll / len(c) for ll, c in zip(logliks, row["choices"], strict=True)]
        assert sample.scores["acc"] == float(logliks.index(max(logliks)) == row["label"])
        assert sample.scores["acc_norm"] == float(per_char.index(max(per_char)) == row["label"])

    # Generative answers are scored as BIG-bench does: the first match of the task's
    # output_regex in the model's output, compared exactly with the targets.
    regexes = {
        "bigbench:arithmetic_words": bigbench.DEFAULT_REGEX,
        "bigbench:count_letters": "[0-9]+",
    }
    for sample in samples[samples["task"].isin(gen)].itertuples():
        ((output,),) = json.loads(sample.raw_response)
        (answer,) = json.loads(sample.response)
        assert answer == next(iter(re.findall(regexes[sample.task], output)), ""), sample
        targets = rows[sample.task][sample.doc_id]["targets"]
        assert sample.scores["exact_match"] == float(answer in targets)

    direct = lm_eval_direct(smollm2_dir, "bigbench:capitals", limit, tmp_path / "lm_eval")
    ours = metrics[metrics["task"] == "bigbench:capitals"].set_index("metric")["value"]
    for metric in ("acc", "acc_norm"):
        assert ours[metric] == pytest.approx(direct[f"{metric},none"], abs=1e-6)
