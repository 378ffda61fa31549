"""MFU and MBU from the tokens the model computed and a peak measured on the machine (or
declared by a profile), on real runs of both packs: multiple choice and generation, on
the hf backend and on llama.cpp. No page or export may show a utilisation above 1."""

import html
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from bench.records import RequestRecord
from bench.report.performance import run_performance
from bench.store.store import open_store, write_run
from tests.conftest import BASICS, read_table, run_bench
from tests.test_cost import a_run

RUNS = {  # model, backend: the two packs, each on the backend its test covers
    "hf": ("smollm2-135m-instruct", "hf"),
    "llamacpp": ("gemma-3-270m", "llamacpp"),
}


def run_page_rows(site: Path, run_id: str) -> dict[str, str]:
    """The run page's "Cost and efficiency" table, as text."""
    page = (site / "runs" / f"{run_id}.html").read_text()
    pairs = re.findall(r'<tr><th scope="row">(.*?)</th><td>(.*?)</td></tr>', page, re.S)
    return {html.unescape(k): html.unescape(v) for k, v in pairs}


def percent(text: str) -> float:
    return float(text.rstrip("%")) / 100


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """Both packs on basics_facts (multiple choice) and basics_arith (generation), four
    documents each, in one store, and its report (site and JSON)."""
    folder = tmp_path_factory.mktemp("efficiency")
    url = f"sqlite:///{folder / 'store.db'}"
    for model, backend in RUNS.values():
        result = run_bench(
            "run", "--model", model, "--backend", backend,
            "--tasks", "basics_facts,basics_arith", "--include-path", str(BASICS),
            "--limit", "4", "--store", url,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    report = run_bench(
        "report", "--include-limited", "--store", url, "--out", str(folder / "r"),
        "--format", "html,json",
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    runs = read_table(url, "runs")
    return {
        "url": url,
        "runs": {backend: runs[runs["backend"] == backend].iloc[0] for backend in RUNS},
        "timings": read_table(url, "request_timings"),
        "site": folder / "r" / "site",
        "json": json.loads((folder / "r" / "leaderboard.json").read_text()),
    }


@pytest.mark.slow
@pytest.mark.parametrize("backend", list(RUNS))
def test_utilisation_at_most_one_on_the_run_page_and_in_the_export(store, backend):
    run = store["runs"][backend]
    peak = json.loads(run["hardware"])["peak"]
    assert peak["flop_s"] > 0 and peak["memory_bandwidth_bytes_s"] > 0, peak
    assert peak["dtype"] == "float32" and peak["device"] == "cpu"  # both packs run so here

    exported = [r for r in store["json"] if r["run_id"] == run["run_id"]]
    assert {r["task"] for r in exported} == {"basics_facts", "basics_arith"}
    row = exported[0]
    assert 0 < row["mfu"] <= 1, row
    assert row["peak_flops_source"].startswith("measured: ")
    assert row["mfu_tokens_counted"] == "tokens the model computed, recorded per request"
    # The export's MFU is 2 x params x the computed tokens stored / wall time / the peak.
    mine = store["timings"][store["timings"]["run_id"] == run["run_id"]]
    assert mine["computed_tokens"].notna().all()
    assert row["mfu_tokens"] == pytest.approx(mine["computed_tokens"].sum())
    expected = 2 * run["model_params"] * row["mfu_tokens"] / run["wall_s"] / peak["flop_s"]
    assert row["mfu"] == pytest.approx(expected)

    page = run_page_rows(store["site"], run["run_id"])
    mfu_row = page["MFU (2 x params x computed tokens / time / peak FLOP/s)"]
    assert 0 < percent(mfu_row) <= 1 and percent(mfu_row) == pytest.approx(row["mfu"], rel=1e-2)
    assert page["peak FLOP/s"].startswith("measured: ")
    assert "matmul: " in page["peak FLOP/s"] and "per core in CPU time" in page["peak FLOP/s"]
    assert "tokens the model computed" in page["tokens counted for MFU"]
    mbu_row = page["MBU (weights + KV per decode step / TPOT / bandwidth)"]
    if backend == "llamacpp":  # streamed generation: a TPOT, so an MBU
        assert 0 < row["mbu"] <= 1 and 0 < percent(mbu_row) <= 1, row
        assert page["memory bandwidth"].startswith("measured: ")
    else:  # batched generation has no TPOT
        assert row["mbu"] is None and mbu_row == "—"


@pytest.mark.slow
def test_hf_counts_a_shared_context_once(store):
    """A 4-choice question: its context went through the model once, each choice's tokens
    but the last on its KV cache: context + choices, not 4 x context."""
    run_id = store["runs"]["hf"]["run_id"]
    timings = store["timings"]
    facts = timings[(timings["run_id"] == run_id) & (timings["task"] == "basics_facts")]
    assert facts["doc_id"].nunique() == 4
    for _, question in facts.groupby("doc_id"):
        assert len(question) == 4 and question["prompt_tokens"].nunique() == 1
        context = int(question["prompt_tokens"].iloc[0])
        choices = int((question["completion_tokens"] - 1).sum())
        assert question["computed_tokens"].sum() == pytest.approx(context + choices)
        every_request = int((question["prompt_tokens"] + question["completion_tokens"]).sum())
        assert question["computed_tokens"].sum() < every_request - 2 * context
    arith = timings[(timings["run_id"] == run_id) & (timings["task"] == "basics_arith")]
    assert (arith["computed_tokens"] == arith["prompt_tokens"] + arith["completion_tokens"]).all()


@pytest.mark.slow
def test_llamacpp_counts_what_llama_cpp_evaluated(store):
    """llama.cpp keeps the common prefix of consecutive requests in its KV cache: a
    question's choices cost their own tokens, its context at most once."""
    run_id = store["runs"]["llamacpp"]["run_id"]
    timings = store["timings"]
    facts = timings[(timings["run_id"] == run_id) & (timings["task"] == "basics_facts")]
    for _, question in facts.groupby("doc_id"):
        context = int(question["prompt_tokens"].max())
        assert question["computed_tokens"].sum() <= context + question["completion_tokens"].sum()
        assert (question["computed_tokens"] >= 1).all()
    arith = timings[(timings["run_id"] == run_id) & (timings["task"] == "basics_arith")]
    # A prompt is evaluated (less any prefix kept from the request before), then each
    # generated token but the last is fed back.
    assert (arith["computed_tokens"] <= arith["prompt_tokens"] + arith["completion_tokens"]).all()
    assert (arith["computed_tokens"] > arith["completion_tokens"]).all()


def test_declared_peaks_and_uncounted_rows_are_marked(tmp_path):
    """A profile's declared peak wins over the measured one and says so; requests stored
    without a computed count are counted as prompt + completion, and the page says how
    many."""
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    record = a_run()
    measured = {
        "flop_s": 1e11,
        "memory_bandwidth_bytes_s": 1e10,
        "device": "cpu",
        "dtype": "float32",
        "threads": 2,
        "matmul_size": 1024,
        "array_bytes": 2**28,
    }
    manifest = replace(record.manifest, hardware={"cpu_count": 2, "peak": measured})
    requests = [
        RequestRecord("mc", d, 0, "loglikelihood", 1.0, 225, 25, 4, None, None, "backend", c)
        for d, c in enumerate([50.0, 50.0, 50.0, None])
    ]
    write_run(engine, replace(record, manifest=manifest, requests=requests))

    from bench.hardware.profiles import load_profiles

    profiles = load_profiles()  # no "test-box": the measured peak
    perf = run_performance(engine, ["r1"], profiles)["r1"]
    assert perf.computed_tokens == 50 * 3 + 250
    assert perf.tokens_counted.endswith("(1 of 4 requests counted as prompt + completion)")
    assert perf.flops_peak.source == "measured: 100 GFLOP/s (float32 1024x1024 matmul on cpu)"
    assert perf.mfu == pytest.approx(2 * 1e6 * 400 / 10 / 1e11)

    declared = tmp_path / "hw.yaml"
    declared.write_text(
        "profiles:\n  - name: test-box\n    price_per_hour: 1\n    peak_flops: 4.0e11\n"
    )
    perf = run_performance(engine, ["r1"], load_profiles(declared))["r1"]
    assert perf.flops_peak.source == "declared by profile test-box: 400 GFLOP/s"
    assert perf.mfu == pytest.approx(2 * 1e6 * 400 / 10 / 4e11)
    assert perf.bandwidth_peak.source.startswith("measured: 10 GB/s")  # none declared
