"""Result bundles: an honest bundle imports and shows up in the report; a tampered one
is refused, naming what does not hold."""

import gzip
import json
import math
from pathlib import Path

import pytest

from tests.conftest import BASICS_TASKS, REPO, run_bench

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


def read(bundle) -> dict:
    with gzip.open(bundle, "rt") as handle:
        return json.load(handle)


def test_honest_bundle_imports_once_and_is_reported(bundle, tmp_path):
    store = f"sqlite:///{tmp_path / 'team.db'}"
    result = run_bench("results", "import", str(bundle), "--store", store)
    assert result.returncode == 0, result.stderr
    assert (
        run_bench(
            "report", "--include-limited", "--store", store, "--out", str(tmp_path)
        ).returncode
        == 0
    )
    assert "| smollm2-135m-instruct" in (tmp_path / "leaderboard.md").read_text()
    again = run_bench("results", "import", str(bundle), "--store", store)
    assert again.returncode == 2 and "already in the store" in again.stderr


def test_bundle_carries_no_local_paths(bundle):
    text = gzip.open(bundle, "rt").read()
    assert str(Path.home()) not in text and str(REPO) not in text
    run = read(bundle)["runs"][0]
    assert run["run"]["model_path"] == ""
    assert {t["source"] for t in run["tasks"]} == {f"basics/{t}.yaml" for t in BASICS_TASKS}


def _metric(run, task, name):
    return next(m for m in run["metrics"] if m["task"] == task and m["metric"] == name)


def _bump_score(run):
    metric = _metric(run, "basics_facts", "acc")
    metric["value"] = min(1.0, metric["value"] + 0.2)


def _flip_sample(run):
    sample = next(s for s in run["samples"] if s["task"] == "basics_facts")
    sample["scores"]["acc"] = 1.0 - sample["scores"]["acc"]


def _all_correct(run):
    """Consistent: every sample's score and the metric say 1.0."""
    for sample in run["samples"]:
        if sample["task"] == "basics_facts":
            sample["scores"]["acc"] = 1.0
    _metric(run, "basics_facts", "acc").update(value=1.0, stderr=0.0)


def _drop_failures(run):
    """Consistent: the wrong answers dropped, the metric and counts recomputed."""
    kept = [s for s in run["samples"] if s["task"] != "basics_facts" or s["scores"]["acc"]]
    n = sum(s["task"] == "basics_facts" for s in kept)
    run["samples"] = kept
    _metric(run, "basics_facts", "acc").update(value=1.0, stderr=0.0, n_samples=n)
    next(t for t in run["tasks"] if t["task"] == "basics_facts")["n_samples"] = n


def _bump_perplexity(run):
    _metric(run, "basics_prose", "word_perplexity")["value"] *= 0.9


def _edit_perplexity_tuples(run):
    """Consistent: each sample's (loglikelihood, words) raised, the metric recomputed."""
    total_ll, total_words = 0.0, 0
    for sample in run["samples"]:
        if sample["task"] == "basics_prose":
            ll, words = sample["scores"]["word_perplexity"]
            sample["scores"]["word_perplexity"] = [ll / 2, words]
            total_ll, total_words = total_ll + ll / 2, total_words + words
    _metric(run, "basics_prose", "word_perplexity")["value"] = math.exp(-total_ll / total_words)


def _duplicate_sample(run):
    run["samples"].append(dict(run["samples"][0]))


def _other_task_version(run):
    run["tasks"][0]["content_hash"] = "0" * 64


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (_bump_score, "basics_facts/acc (none) is stored as"),
        (_flip_sample, "acc is stored as"),
        (_all_correct, "acc is stored as 1.0 but its answers give 0"),
        (_drop_failures, "is missing (the task has it at limit 5)"),
        (_bump_perplexity, "basics_prose/word_perplexity (none) is stored as"),
        (_edit_perplexity_tuples, "word_perplexity is stored as"),
        (_duplicate_sample, "appears twice"),
        (_other_task_version, "content hash 000000000000"),
    ],
)
def test_tampered_bundle_is_refused(bundle, tmp_path, change, needle):
    store = tmp_path / "team.db"
    result = run_bench(
        "results", "import", tampered(bundle, tmp_path, change), "--store", f"sqlite:///{store}"
    )
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert run_bench("results", "list", "--store", f"sqlite:///{store}").stdout.count("hf") == 0


def _forge_answers(run):
    """Consistent all the way down, for two of the three tasks (so that any 8 of the 15
    documents include a forged one): every basics_facts question's correct choice given
    the highest loglikelihood, every basics_prose text made twice as likely; the answers,
    filtered responses, per-sample scores and metrics all agree, and only the model itself
    can tell."""
    prose_ll, prose_units = 0.0, {"word_perplexity": 0, "byte_perplexity": 0}
    for sample in run["samples"]:
        answers = json.loads(sample["raw_response"])
        if sample["task"] == "basics_facts":
            gold = int(sample["target"])
            forged = [[[-0.001 if i == gold else a[0][0], a[0][1]]] for i, a in enumerate(answers)]
            sample["scores"].update(acc=1.0, acc_norm=1.0)
        elif sample["task"] == "basics_prose":
            forged = [[answers[0][0] / 2]]
            prose_ll += forged[0][0]
            for name, (_, units) in sample["scores"].items():
                sample["scores"][name] = [forged[0][0], units]
                if name in prose_units:
                    prose_units[name] += units
        else:
            continue
        sample["raw_response"] = json.dumps(forged)
        sample["response"] = json.dumps([a[0] for a in forged])
    for name in ("acc", "acc_norm"):
        _metric(run, "basics_facts", name).update(value=1.0, stderr=0.0)
    for name, units in prose_units.items():
        _metric(run, "basics_prose", name)["value"] = math.exp(-prose_ll / units)
    bytes_ = prose_units["byte_perplexity"]
    _metric(run, "basics_prose", "bits_per_byte")["value"] = -prose_ll / bytes_ / math.log(2)


def test_consistently_forged_answers_pass_rescoring_and_fail_the_spot_check(bundle, tmp_path):
    forged = tampered(bundle, tmp_path, _forge_answers)
    store = f"sqlite:///{tmp_path / 'team.db'}"
    # Re-scoring alone cannot tell: the forgery is consistent (shown on a scratch store).
    scratch = run_bench("results", "import", forged, "--store", f"sqlite:///{tmp_path / 'x.db'}")
    assert scratch.returncode == 0, scratch.stderr
    caught = run_bench("results", "import", forged, "--spot-check", "8", "--store", store)
    assert caught.returncode == 2, caught.stderr
    assert "spot check of" in caught.stderr and "the model here gives" in caught.stderr
    honest = run_bench("results", "import", str(bundle), "--spot-check", "8", "--store", store)
    assert honest.returncode == 0, honest.stderr
    assert "8 samples re-run, same" in honest.stdout + honest.stderr
