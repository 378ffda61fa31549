"""Latency statistics on hand-made timelines, where every figure is known by hand."""

import numpy as np
import pytest

from bench.errors import BadInput
from bench.metrics.latency import Distribution, Slo, Timeline, parse_slo, summarize

# A: 4 tokens in 4 chunks; B: 5 tokens in 2 chunks (a server that bundles tokens);
# C: a single token; D: failed.
A = Timeline(
    e2e_s=0.5, output_tokens=4, ttft_s=0.1, chunk_times=(0.1, 0.2, 0.35, 0.5), input_tokens=7
)
B = Timeline(e2e_s=0.6, output_tokens=5, ttft_s=0.3, chunk_times=(0.3, 0.4), input_tokens=8)
C = Timeline(e2e_s=0.2, output_tokens=1, ttft_s=0.2, chunk_times=(0.2,), input_tokens=9)
D = Timeline(e2e_s=1.0, output_tokens=0, ok=False)


def test_tpot_excludes_the_first_token_and_needs_two():
    assert A.tpot_s == pytest.approx((0.5 - 0.1) / 3)
    assert B.tpot_s == pytest.approx((0.6 - 0.3) / 4)  # tokens, not chunks
    assert C.tpot_s is None


def test_itl_is_every_gap_between_chunks():
    assert A.itls_s == pytest.approx([0.1, 0.15, 0.15])
    assert B.itls_s == pytest.approx([0.1])
    assert C.itls_s == []


def test_summary_of_hand_made_timelines():
    s = summarize([A, B, C, D], duration_s=2.0)
    assert (s.completed, s.failed) == (3, 1)
    assert (s.input_tokens, s.output_tokens) == (24, 10)
    assert s.request_throughput == pytest.approx(1.5)
    assert s.output_throughput == pytest.approx(5.0)
    assert s.input_throughput == pytest.approx(12.0)
    assert s.total_throughput == pytest.approx(17.0)
    # TTFT of A, B, C = 0.1, 0.3, 0.2: linear-interpolated percentiles, as numpy's default.
    assert s.ttft.mean == pytest.approx(0.2)
    assert s.ttft.p50 == pytest.approx(0.2)
    assert s.ttft.p90 == pytest.approx(0.28)
    assert s.ttft.p99 == pytest.approx(0.298)
    # TPOT only for requests with more than one token (A and B).
    assert s.tpot.n == 2
    assert s.tpot.p50 == pytest.approx((0.4 / 3 + 0.075) / 2)
    # ITL pooled over requests: 0.1, 0.15, 0.15 (A) and 0.1 (B).
    assert s.itl.n == 4
    assert s.itl.p50 == pytest.approx(0.125)
    assert s.itl.p95 == pytest.approx(0.15)
    assert s.e2e.p50 == pytest.approx(0.5)
    assert s.goodput is None


def test_percentiles_follow_numpy_on_a_longer_list():
    values = [0.001 * (i**1.5) for i in range(1, 201)]
    d = Distribution.of(values)
    for p, got in zip((50, 90, 95, 99), (d.p50, d.p90, d.p95, d.p99), strict=True):
        assert got == pytest.approx(np.percentile(values, p))
    assert d.std == pytest.approx(np.std(values))
    assert Distribution.of([]) == Distribution(0)


def test_goodput_counts_requests_meeting_every_limit():
    slo = parse_slo("ttft=250,tpot=100")
    assert slo == Slo(ttft_s=0.25, tpot_s=0.1)
    # A: TPOT 133 ms fails; B: TTFT 300 ms fails; C: one token, TPOT counts as 0: good.
    assert summarize([A, B, C, D], 2.0, slo).goodput == pytest.approx(0.5)
    assert summarize([A, B, C], 1.0, parse_slo("e2e=550")).goodput == pytest.approx(2.0)
    assert summarize([A, B, C], 1.0, parse_slo("e2el=1000")).slo_ms == {"e2e": 1000.0}


@pytest.mark.parametrize("bad", ["ttft", "ttft=", "ttft=abc", "ttft=-5", "speed=3", "tpot=0"])
def test_bad_slo_is_refused(bad):
    with pytest.raises(BadInput, match="--slo"):
        parse_slo(bad)


def test_summary_round_trips_through_a_dict():
    s = summarize([A, B, C], 1.0, parse_slo("ttft=250"))
    assert type(s).from_dict(s.as_dict()) == s


def test_same_figures_as_vllms_own_benchmark_code():
    """vLLM's calculate_metrics on the same requests gives the same numbers."""
    serve = pytest.importorskip("vllm.benchmarks.serve")
    from vllm.benchmarks.lib.endpoint_request_func import RequestFuncOutput

    outputs = []
    for t in (A, B, C):
        out = RequestFuncOutput()
        out.success, out.latency, out.ttft = True, t.e2e_s, t.ttft_s
        out.itl, out.prompt_len, out.output_tokens = t.itls_s, t.input_tokens, t.output_tokens
        out.start_time = 0.0
        outputs.append(out)
    metrics, _ = serve.calculate_metrics(
        input_requests=[None] * 3,
        outputs=outputs,
        dur_s=2.0,
        tokenizer=None,
        selected_percentiles=[50.0, 90.0, 99.0],
        goodput_config_dict={"ttft": 250.0, "tpot": 100.0},
    )
    ours = summarize([A, B, C], 2.0, parse_slo("ttft=250,tpot=100"))
    assert metrics.request_throughput == pytest.approx(ours.request_throughput)
    assert metrics.output_throughput == pytest.approx(ours.output_throughput)
    assert metrics.request_goodput == pytest.approx(ours.goodput)
    for name in ("ttft", "tpot", "itl", "e2el"):
        dist = getattr(ours, "e2e" if name == "e2el" else name)
        assert getattr(metrics, f"mean_{name}_ms") == pytest.approx(dist.mean * 1000)
        assert getattr(metrics, f"median_{name}_ms") == pytest.approx(dist.p50 * 1000)
        p = dict(getattr(metrics, f"percentiles_{name}_ms"))
        assert p[90.0] == pytest.approx(dist.p90 * 1000)
        assert p[99.0] == pytest.approx(dist.p99 * 1000)
