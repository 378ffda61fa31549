"""hf, vLLM (in-process and behind its OpenAI server) and llama.cpp, for real, on loopback.

Agreement tolerance: hf, vllm and the vLLM server all run the SmolLM2 pack in float32, so
the log-probabilities differ only by the order of floating-point sums in different
kernels (about 1e-6 relative); a choice can flip only where two answers are that close.
We allow 2 of the 40 questions (0.05) to flip, and require 90% identical generations.
"""

import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from bench.metrics.latency import LatencySummary, Timeline, summarize
from bench.models.packs import PACKS
from tests.conftest import BASICS, REPO, read_table, run_bench
from tests.servers import llamacpp_server, vllm_server

pytestmark = pytest.mark.slow
SMOL = "smollm2-135m-instruct"
SECRET = "sk-test-7f3a9c-never-store-me"
ACC_TOLERANCE = 0.05


def query(store, sql, *args):
    with sqlite3.connect(store) as db:
        return db.execute(sql, args).fetchall()


def bench_ok(*args):
    result = run_bench(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def booting_vllm_srv(tmp_path_factory, smollm2_dir):
    """The vLLM server, launched: it boots (a minute here) while other work goes on."""
    server = vllm_server(smollm2_dir, tmp_path_factory.mktemp("vllm") / "server.log").launch()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vllm_srv(booting_vllm_srv):
    return booting_vllm_srv.ready()


@pytest.fixture(scope="module")
def agreement_store(tmp_path_factory, booting_vllm_srv):
    store = tmp_path_factory.mktemp("agree") / "bench.db"
    url = f"sqlite:///{store}"
    tasks = "basics_facts,basics_arith"
    # The in-process runs also score perplexity (one vLLM engine start for both checks).
    with_prose = f"{tasks},basics_prose"
    bench_ok("run", "--backend", "hf", "--model", SMOL, "--tasks", with_prose, "--store", url)
    bench_ok(
        "run",
        "--backend",
        "vllm",
        "--model",
        SMOL,
        "--tasks",
        with_prose,
        "--model-args",
        "dtype=float32,max_model_len=2048",
        "--store",
        url,
    )
    vllm_srv = booting_vllm_srv.ready()
    os.environ["OPENAI_API_KEY"] = SECRET  # a key the server ignores; it must never be stored
    try:
        bench_ok(
            "run",
            "--backend",
            "openai",
            "--base-url",
            vllm_srv.url,
            "--model",
            SMOL,
            "--tasks",
            tasks,
            "--store",
            url,
        )
    finally:
        del os.environ["OPENAI_API_KEY"]
    return store


def test_accuracies_agree_across_hf_vllm_and_vllm_server(agreement_store):
    acc = dict(
        query(
            agreement_store,
            "select r.backend, m.value from metrics m join runs r "
            "using (run_id) where m.task='basics_facts' and m.metric='acc'",
        )
    )
    assert set(acc) == {"hf", "vllm", "openai"}
    assert 0 < acc["hf"] < 1
    for backend in ("vllm", "openai"):
        assert abs(acc[backend] - acc["hf"]) <= ACC_TOLERANCE, acc


def test_greedy_generations_match(agreement_store):
    rows = query(
        agreement_store,
        "select r.backend, s.doc_id, s.raw_response from samples s "
        "join runs r using (run_id) where s.task='basics_arith'",
    )
    by_backend: dict[str, dict[int, str]] = {}
    for backend, doc_id, raw in rows:
        by_backend.setdefault(backend, {})[doc_id] = raw
    reference = by_backend["hf"]
    assert len(reference) == 40
    for backend in ("vllm", "openai"):
        same = sum(by_backend[backend][d] == text for d, text in reference.items())
        assert same >= 0.9 * len(reference), (backend, same)


def test_every_backend_records_the_same_timing_fields(agreement_store):
    for backend in ("hf", "vllm", "openai"):
        rows = query(
            agreement_store,
            "select t.wall_s, t.prompt_tokens, t.completion_tokens "
            "from request_timings t join runs r using (run_id) where r.backend=? "
            "and t.task != 'basics_prose'",
            backend,
        )
        assert len(rows) == 40 * 4 + 40  # four choices per question, one generation each
        assert all(w > 0 and p > 0 and c > 0 for w, p, c in rows)
    streamed = query(
        agreement_store,
        "select t.ttft_s, t.chunk_times, t.tokens_counted_by "
        "from request_timings t join runs r using (run_id) "
        "where r.backend='openai' and t.request_type='generate_until'",
    )
    assert all(
        ttft > 0 and json.loads(chunks) and counted == "usage" for ttft, chunks, counted in streamed
    )


def test_api_key_never_reaches_store_or_report(agreement_store, tmp_path):
    assert SECRET.encode() not in agreement_store.read_bytes()
    for wal in agreement_store.parent.glob("*.db-wal"):
        assert SECRET.encode() not in wal.read_bytes()
    bench_ok(
        "report",
        "--include-limited",
        "--store",
        f"sqlite:///{agreement_store}",
        "--out",
        str(tmp_path),
    )
    assert SECRET not in (tmp_path / "leaderboard.md").read_text()
    refused = run_bench(
        "run",
        "--backend",
        "openai",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--model",
        SMOL,
        "--tasks",
        "basics_arith",
        "--model-args",
        f"api_key={SECRET}",
        "--store",
        f"sqlite:///{tmp_path / 'x.db'}",
    )
    assert refused.returncode == 2 and "api_key" in refused.stderr
    assert SECRET not in refused.stderr and not (tmp_path / "x.db").exists()


def test_vllm_in_process_scores_perplexity_close_to_hf(agreement_store):
    ppl = dict(
        query(
            agreement_store,
            "select r.backend, m.value from metrics m join runs r"
            " using (run_id) where m.metric='word_perplexity'",
        )
    )
    assert set(ppl) == {"hf", "vllm"}
    assert abs(ppl["vllm"] - ppl["hf"]) / ppl["hf"] < 1e-4, ppl


def test_probe_through_vllm_server_scales_with_concurrency(vllm_srv, tmp_path):
    store = f"sqlite:///{tmp_path / 'store.db'}"
    result = run_bench(
        "probe", "--model", "smollm2-135m-instruct", "--tasks", "basics_facts",
        "--include-path", str(BASICS), "--backend", "openai", "--base-url", vllm_srv.url,
        "--limit", "8", "--num-prompts", "16", "--output-len", "16",
        "--concurrency-levels", "1,8", "--slo", "ttft=5000", "--hardware", "cpu-2core",
        "--store", store,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    levels = read_table(store, "probe_levels").sort_values("level")
    assert list(levels["concurrency"]) == [1, 8]
    summaries = [LatencySummary.from_dict(json.loads(s)) for s in levels["summary"]]
    assert all(s.completed == 16 and s.failed == 0 for s in summaries)
    # The point of batching: eight in flight serve more tokens per second than one.
    assert summaries[1].output_throughput > summaries[0].output_throughput
    assert summaries[1].request_throughput > summaries[0].request_throughput

    requests = read_table(store, "probe_requests")
    probe = read_table(store, "latency_probes").iloc[0]
    assert bool(probe["ignore_eos"]) and probe["hardware_profile"] == "cpu-2core"
    # Fixed output length: vLLM's ignore_eos gives exactly 16 tokens, counted by usage.
    assert set(requests["completion_tokens"]) == {16}
    assert set(requests["tokens_counted_by"]) == {"usage"}
    for level, summary in zip(levels.itertuples(), summaries, strict=True):
        mine = requests[requests["level"] == level.level]
        timelines = [
            Timeline(r.e2e_s, r.completion_tokens, r.ttft_s, tuple(json.loads(r.chunk_times)),
                     r.prompt_tokens)
            for r in mine.itertuples()
        ]  # fmt: skip
        # The stored summary follows from the stored requests.
        again = summarize(timelines, level.duration_s, None)
        assert again.ttft == summary.ttft and again.itl == summary.itl
        assert summary.goodput is not None
        assert all(0 < r.ttft_s <= r.e2e_s for r in mine.itertuples())

    report = run_bench(
        "report", "--include-limited", "--store", store, "--out", str(tmp_path / "r")
    )
    assert report.returncode == 0, report.stderr
    board = (tmp_path / "r" / "leaderboard.md").read_text()
    assert "## Latency probes" in board and "concurrency 8" in board
    assert "Latency probes" in (tmp_path / "r" / "site" / "index.html").read_text()


@pytest.mark.parametrize("pack", list(PACKS))
def test_llamacpp_in_process_on_both_gguf_packs(pack, tmp_path):
    store = tmp_path / "llama.db"
    bench_ok(
        "run",
        "--backend",
        "llamacpp",
        "--model",
        pack,
        "--tasks",
        "basics_facts,basics_arith",
        "--limit",
        "8",
        "--store",
        f"sqlite:///{store}",
    )
    ((weights,),) = query(store, "select weights_sha256 from runs")
    assert weights == PACKS[pack].gguf_sha256  # the GGUF that ran, not the HF conversion
    assert query(store, "select count(*) from samples") == [(16,)]
    gens = query(
        store, "select ttft_s, chunk_times from request_timings where request_type='generate_until'"
    )
    assert len(gens) == 8 and all(ttft > 0 and json.loads(chunks) for ttft, chunks in gens)


@pytest.fixture()
def llama_srv(tmp_path):
    gguf = PACKS[SMOL].locate_gguf()
    server = llamacpp_server(gguf, tmp_path / "llama-server.log").start()
    yield server
    server.stop()


def test_llamacpp_server_generation_matches_in_process(llama_srv, tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    bench_ok(
        "run",
        "--backend",
        "openai",
        "--base-url",
        llama_srv.url,
        "--model",
        SMOL,
        "--tasks",
        "basics_arith",
        "--limit",
        "12",
        "--store",
        url,
    )
    bench_ok(
        "run",
        "--backend",
        "llamacpp",
        "--model",
        SMOL,
        "--tasks",
        "basics_arith",
        "--limit",
        "12",
        "--store",
        url,
    )
    responses = query(
        tmp_path / "s.db",
        "select r.backend, s.doc_id, s.raw_response from samples s join runs r using (run_id)",
    )
    served = {d: t for b, d, t in responses if b == "openai"}
    local = {d: t for b, d, t in responses if b == "llamacpp"}
    assert len(served) == 12 and sum(served[d] == local[d] for d in local) >= 11


def test_llamacpp_server_refuses_loglikelihood_clearly(llama_srv, tmp_path):
    # llama-cpp-python's server reports echoed prompt logprobs one position off; the
    # probe notices and the run stops instead of producing wrong scores.
    result = run_bench(
        "run",
        "--backend",
        "openai",
        "--base-url",
        llama_srv.url,
        "--model",
        SMOL,
        "--tasks",
        "basics_facts",
        "--limit",
        "4",
        "--store",
        f"sqlite:///{tmp_path / 'r.db'}",
    )
    assert result.returncode == 1
    assert llama_srv.url in result.stderr and "prompt logprobs" in result.stderr


def start_run(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.launch", "run", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def start_arith_run(server, store, *extra: str) -> subprocess.Popen:
    """`bench run` of basics_arith against the server, two requests in flight."""
    return start_run(
        "--backend",
        "openai",
        "--base-url",
        server.url,
        "--model",
        SMOL,
        "--tasks",
        "basics_arith",
        "--concurrency",
        "2",
        "--store",
        f"sqlite:///{store}",
        *extra,
    )


def wait_for_requests(server_log, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server_log.read_text().count("POST /v1/completions") >= count:
            return
        time.sleep(0.2)
    raise AssertionError("the run never reached the server")


def test_server_killed_and_restarted_run_completes(llama_srv, tmp_path):
    store = tmp_path / "restart.db"
    run = start_arith_run(llama_srv, store)
    wait_for_requests(llama_srv.log, 5)
    llama_srv.stop()
    time.sleep(3)
    assert run.poll() is None  # still retrying
    llama_srv.start()
    _, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr[-3000:]
    assert query(store, "select status from runs") == [("complete",)]
    assert query(store, "select count(distinct doc_id), count(*) from samples") == [(40, 40)]


def test_server_gone_for_good_keeps_answered_samples(llama_srv, tmp_path):
    store = tmp_path / "dead.db"
    run = start_arith_run(llama_srv, store, "--model-args", "retry_for_s=3")
    wait_for_requests(llama_srv.log, 6)
    llama_srv.stop()
    _, stderr = run.communicate(timeout=600)
    assert run.returncode == 1
    assert llama_srv.url in stderr and "kept in the store" in stderr
    ((status, n),) = query(store, "select status, (select count(*) from samples) from runs")
    assert status == "partial" and 1 <= n < 40


def test_server_that_never_answers_exits_1_naming_it(tmp_path):
    import socket

    with socket.socket() as silent:  # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        result = run_bench(
            "run",
            "--backend",
            "openai",
            "--base-url",
            url,
            "--model",
            SMOL,
            "--tasks",
            "basics_arith",
            "--limit",
            "2",
            "--model-args",
            "timeout_s=1,retry_for_s=3",
            "--store",
            f"sqlite:///{tmp_path / 'n.db'}",
        )
    assert result.returncode == 1
    assert url in result.stderr and "did not answer" in result.stderr


def test_bench_backends_lists_all_four_usable():
    result = run_bench("backends")
    assert result.returncode == 0
    lines = {
        line.split("│")[1].strip(): line
        for line in result.stdout.splitlines()
        if line.startswith("│") and line.split("│")[1].strip()
    }
    for name in ("hf", "vllm", "openai", "llamacpp"):
        assert "│ yes" in lines[name], result.stdout
    assert "GPU" in lines["vllm (CUDA)"]
