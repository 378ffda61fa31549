"""HumanEval end to end: a real model pack writes code, the sandbox runs it, the store keeps
a pass/fail per sample that re-running the stored completion in the sandbox reproduces."""

import json

import pytest

from bench.catalog import humaneval
from bench.catalog.loader import load_tasks
from tests.conftest import run_bench


def test_task_config_and_hash():
    (greedy,) = load_tasks(["humaneval"])
    assert greedy.task.config.repeats == 1
    assert greedy.task.config.generation_kwargs["until"] == humaneval.STOP
    assert len(greedy.task.test_docs()) == 164
    (sampled,) = load_tasks(["humaneval_n5"])
    assert sampled.task.config.repeats == 5
    assert sampled.task.config.generation_kwargs["do_sample"] is True
    assert [m["metric"] for m in sampled.task.config.metric_list] == ["pass@1", "pass@5"]
    assert greedy.content_hash != sampled.content_hash
    assert greedy.content_hash == load_tasks(["humaneval"])[0].content_hash


@pytest.mark.slow
def test_smollm2_humaneval_samples_have_a_reproducible_pass_fail(smollm2_dir, tmp_path):
    from bench.results import load

    store = f"sqlite:///{tmp_path / 's.db'}"
    ran = run_bench(
        "run", "--model", str(smollm2_dir), "--tasks", "humaneval", "--limit", "3",
        "--batch-size", "3", "--store", store,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    results = load(store)
    samples = results.samples.sort_values("doc_id")
    assert list(samples["doc_id"]) == [0, 1, 2]
    problems = humaneval.problems()
    for _, sample in samples.iterrows():
        assert set(sample["scores"]) == {"pass@1"}
        assert sample["scores"]["pass@1"] in (0.0, 1.0)
        (completion,) = json.loads(sample["response"])
        again = humaneval.run_completion(problems[sample["doc_id"]], completion)
        assert float(again.passed) == sample["scores"]["pass@1"]
    (value,) = results.metrics.loc[results.metrics["metric"] == "pass@1", "value"]
    assert value == pytest.approx(sum(s["pass@1"] for s in samples["scores"]) / 3)
