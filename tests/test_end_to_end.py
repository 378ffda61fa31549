"""`bench run` on both packs -> a real SQLite store -> export and leaderboard."""

import json
import sqlite3

import pytest

from bench.catalog.loader import yaml_content_hash
from bench.models.packs import PACKS, read_manifest
from tests.conftest import BASICS, BASICS_TASKS, read_table, run_bench

pytestmark = pytest.mark.slow
LIMIT = 6


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("e2e") / "bench.db"
    result = run_bench(
        "run",
        "--model",
        ",".join(PACKS),
        "--tasks",
        ",".join(BASICS_TASKS),
        "--limit",
        str(LIMIT),
        "--store",
        f"sqlite:///{path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return path, result


@pytest.fixture(scope="module")
def store(run):
    return run[0]


def rows(store, sql):
    with sqlite3.connect(store) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(sql)]


def test_manifest_records_model_tasks_settings_versions_hardware(store):
    runs = rows(store, "select * from runs")
    assert sorted(r["model"] for r in runs) == sorted(PACKS)
    for run in runs:
        assert run["weights_sha256"] == read_manifest(run["model"])["weights_sha256"]
        assert json.loads(run["settings"])["limit"] == LIMIT
        versions = json.loads(run["versions"])
        assert {"lm_eval", "torch", "transformers"} <= set(versions)
        assert json.loads(run["hardware"])["cpu_count"] >= 1
        assert run["wall_s"] > 0 and run["tokens_per_s"] > 0
    tasks = rows(store, "select * from run_tasks")
    for task in tasks:
        assert task["content_hash"] == yaml_content_hash(BASICS / f"{task['task']}.yaml")
        assert task["n_samples"] == LIMIT


def test_every_sample_stored_with_timings(store):
    samples = rows(store, "select * from samples")
    assert len(samples) == len(PACKS) * len(BASICS_TASKS) * LIMIT
    for sample in samples:
        assert sample["wall_s"] > 0 and sample["prompt_tokens"] > 0
        assert sample["completion_tokens"] > 0
        assert json.loads(sample["scores"])
    arith = [s for s in samples if s["task"] == "basics_arith"]
    assert all(s["filter"] == "first_number" and "Question:" in s["prompt"] for s in arith)


def test_export_json_and_report(store, tmp_path):
    exported = run_bench("results", "export", "--format", "json", "--store", f"sqlite:///{store}")
    assert exported.returncode == 0, exported.stderr
    records = json.loads(exported.stdout)
    for key in ("model", "task", "metric", "value", "stderr", "n_samples", "run_id"):
        assert all(key in r for r in records)
    facts = [r for r in records if r["task"] == "basics_facts" and r["metric"] == "acc"]
    assert len(facts) == len(PACKS) and all(r["n_samples"] == LIMIT for r in facts)

    report = run_bench(
        "report", "--include-limited", "--store", f"sqlite:///{store}", "--out", str(tmp_path)
    )
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "leaderboard.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(PACKS)
    for task in BASICS_TASKS:
        assert task in table[0]
    for fact in facts:
        row = next(line for line in table if f"| {fact['model']} " in line)
        assert f"| {fact['value']:.4f} (" in row  # the score with its bootstrap interval


def test_run_prints_each_metric_and_nothing_of_other_libraries(run):
    store, result = run
    output = result.stdout + result.stderr
    lines = output.splitlines()
    primary = rows(store, "select r.model, m.* from metrics m join runs r using (run_id)")
    primary = [m for m in primary if m["is_primary"]]
    assert len(primary) == len(PACKS) * len(BASICS_TASKS)
    for metric in primary:  # one table row each: model, task, metric, value ± stderr, samples
        cells = [metric["model"], metric["task"], metric["metric"], f"{metric['value']:.4f}"]
        if metric["stderr"] is not None:
            cells.append(f"{metric['stderr']:.4f}")
        assert any(all(c in line for c in cells) for line in lines), (cells, output[-3000:])
    assert "store: sqlite:///" in output
    # Other libraries' progress bars (tqdm: "| 3/40 [", "it/s]"), advice and exit noise.
    for noise in ("it/s]", "s/it]", "Generating ", "Loading weights", "leaked", "Warning"):
        assert noise not in output, (noise, output[-3000:])


def test_sample_explorer_disagree_filter_matches_the_store(store, tmp_path, browser):
    """Both packs, as `make demo` runs them (here limited): from the leaderboard, two
    clicks reach a basics_facts sample with both answers; "disagree" is the store's."""
    from tests.test_sample_explorer import choose, chosen_in_store, no_errors, wait_ready

    url = f"sqlite:///{store}"
    report = run_bench("report", "--include-limited", "--store", url, "--out", str(tmp_path))
    assert report.returncode == 0, report.stderr[-3000:]
    runs = read_table(url, "runs").set_index("model")["run_id"]
    a, b = (chosen_in_store(url, runs[m], "basics_facts") for m in runs.index)
    browser.get((tmp_path / "site" / "index.html").as_uri())
    browser.find_element("css selector", "nav a[href$='tasks/basics_facts.html']").click()
    browser.find_element("css selector", "a.samples-link").click()
    wait_ready(browser)
    first = browser.find_elements("css selector", "article.sample")[0]
    assert len(first.find_elements("css selector", "tbody tr")) == 2
    assert choose(browser, "disagree") == sorted(d for d in a if a[d] != b[d])
    no_errors(browser)
