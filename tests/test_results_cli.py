"""`bench results list | show | delete | export` and bench.results.load on a real SQLite file."""

import json

import pandas as pd

from bench import results
from bench.store.store import open_store, write_run
from tests.conftest import run_bench
from tests.test_leaderboard import record


def make_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(url)
    write_run(engine, record("run-aaa", "model-a", 0.5, 40.0, minutes=0))
    write_run(engine, record("run-bbb", "model-b", 0.7, 30.0, minutes=1))
    return url


def test_load_returns_dataframes(tmp_path):
    loaded = results.load(make_store(tmp_path))
    assert sorted(loaded.runs["run_id"]) == ["run-aaa", "run-bbb"]
    assert len(loaded.metrics) == 6 and len(loaded.samples) == 2 * 5
    assert set(loaded.metrics["model"]) == {"model-a", "model-b"}


def test_list_show_delete(tmp_path):
    url = make_store(tmp_path)
    listing = run_bench("results", "list", "--store", url)
    assert listing.returncode == 0 and "run-aaa" in listing.stdout and "run-bbb" in listing.stdout

    shown = run_bench("results", "show", "run-a", "--store", url)
    manifest = json.loads(shown.stdout)
    assert manifest["run_id"] == "run-aaa" and manifest["tasks"][0]["content_hash"] == "a" * 64
    assert {m["metric"] for m in manifest["metrics"]} == {"acc", "acc_norm", "word_perplexity"}

    assert run_bench("results", "show", "run-", "--store", url).returncode == 2  # ambiguous
    assert run_bench("results", "delete", "run-aaa", "--store", url).returncode == 0
    loaded = results.load(url)
    assert list(loaded.runs["run_id"]) == ["run-bbb"]
    assert set(loaded.samples["run_id"]) == {"run-bbb"} and len(loaded.metrics) == 3
    assert run_bench("results", "delete", "run-aaa", "--store", url).returncode == 2


def test_export_formats(tmp_path):
    url = make_store(tmp_path)
    lines = run_bench(
        "results", "export", "--what", "samples", "--format", "jsonl", "--store", url
    ).stdout.splitlines()
    assert [json.loads(line)["run_id"] for line in lines] == ["run-aaa"] * 5 + ["run-bbb"] * 5
    out = tmp_path / "runs.parquet"
    assert (
        run_bench(
            "results",
            "export",
            "--what",
            "runs",
            "--format",
            "parquet",
            "--out",
            str(out),
            "--store",
            url,
        ).returncode
        == 0
    )
    runs = pd.read_parquet(out)
    assert sorted(runs["run_id"]) == ["run-aaa", "run-bbb"]
    assert json.loads(runs["settings"][0])["backend"] == "hf"
    csv = run_bench("results", "export", "--format", "csv", "--store", url).stdout
    assert csv.splitlines()[0].startswith("run_id,model,task,metric")
    assert run_bench("results", "export", "--format", "xml", "--store", url).returncode == 2
