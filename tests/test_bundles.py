"""Result bundles: an honest bundle imports and shows up in the report; a tampered one
is refused, naming what does not hold."""

import gzip
import json

import pytest

from tests.conftest import BASICS_TASKS, run_bench

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundle")
    store = f"sqlite:///{folder / 'source.db'}"
    made = run_bench(
        "run",
        "--model",
        "smollm2-135m-instruct",
        "--tasks",
        ",".join(BASICS_TASKS),
        "--limit",
        "5",
        "--store",
        store,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    path = folder / "runs.bundle"
    assert run_bench("results", "export", "--bundle", str(path), "--store", store).returncode == 0
    return path


def tampered(bundle, tmp_path, change) -> str:
    with gzip.open(bundle, "rt") as handle:
        data = json.load(handle)
    change(data["runs"][0])
    path = tmp_path / "tampered.bundle"
    with gzip.open(path, "wt") as handle:
        json.dump(data, handle)
    return str(path)


def test_honest_bundle_imports_and_is_reported(bundle, tmp_path):
    store = f"sqlite:///{tmp_path / 'team.db'}"
    result = run_bench("results", "import", str(bundle), "--store", store)
    assert result.returncode == 0, result.stderr
    assert run_bench("report", "--store", store, "--out", str(tmp_path)).returncode == 0
    assert "| smollm2-135m-instruct |" in (tmp_path / "leaderboard.md").read_text()


def _bump_score(run):
    metric = next(m for m in run["metrics"] if m["metric"] == "acc")
    metric["value"] = min(1.0, metric["value"] + 0.2)


def _flip_sample(run):
    sample = next(s for s in run["samples"] if s["task"] == "basics_facts")
    sample["scores"]["acc"] = 1.0 - sample["scores"]["acc"]


def _bump_perplexity(run):
    next(m for m in run["metrics"] if m["metric"] == "word_perplexity")["value"] *= 0.9


def _other_task_version(run):
    run["tasks"][0]["content_hash"] = "0" * 64


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (_bump_score, "basics_facts/acc (none) is stored as"),
        (_flip_sample, "basics_facts/acc (none) is stored as"),
        (_bump_perplexity, "basics_prose/word_perplexity (none) is stored as"),
        (_other_task_version, "content hash 000000000000"),
    ],
)
def test_tampered_bundle_is_refused(bundle, tmp_path, change, needle):
    store = tmp_path / "team.db"
    result = run_bench(
        "results", "import", tampered(bundle, tmp_path, change), "--store", f"sqlite:///{store}"
    )
    assert result.returncode == 2
    assert needle in result.stderr, result.stderr
    assert run_bench("results", "list", "--store", f"sqlite:///{store}").stdout.count("hf") == 0
