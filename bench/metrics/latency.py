"""Latency and throughput of streamed requests, with vLLM's benchmark definitions.

These follow `vllm/benchmarks/serve.py` (`calculate_metrics`), so a figure here means
what the same name means in `vllm bench serve`:

- TTFT: send to the first chunk that carries text.
- TPOT: (E2E - TTFT) / (output tokens - 1), the first token excluded; requests with one
  output token or none have no TPOT (they count as TPOT 0 for goodput, as in vLLM).
- ITL: every gap between consecutive text chunks, pooled over all requests. A chunk may
  carry several tokens, so ITL and TPOT differ where servers bundle tokens.
- E2E: send to the end of the response.
- Percentiles: numpy's default (linear interpolation); mean and std as numpy gives them.
- Throughputs divide by the wall time of the whole measurement (first send to last answer).
- Goodput: completed requests per second that meet every limit the user set.

Pure functions on plain data: the probe and the report both call them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from bench.errors import BadInput

PERCENTILES = (50, 90, 95, 99)
SLO_KEYS = {"ttft": "ttft", "tpot": "tpot", "e2e": "e2e", "e2el": "e2e"}  # e2el: vLLM's name


@dataclass(frozen=True)
class Timeline:
    """One streamed request as the client saw it; times in seconds from its send."""

    e2e_s: float
    output_tokens: int
    ttft_s: float | None = None
    chunk_times: Sequence[float] = ()  # arrival of every chunk that carries text
    input_tokens: int = 0
    ok: bool = True  # False: the request failed; it counts in `failed` only

    @property
    def tpot_s(self) -> float | None:
        if self.ttft_s is None or self.output_tokens <= 1:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)

    @property
    def itls_s(self) -> list[float]:
        times = list(self.chunk_times)
        return [b - a for a, b in zip(times, times[1:], strict=False)]


@dataclass(frozen=True)
class Distribution:
    """Mean, std and percentiles of a list of seconds; None everywhere when it is empty."""

    n: int
    mean: float | None = None
    std: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None

    @classmethod
    def of(cls, values: Iterable[float]) -> Distribution:
        array = np.asarray(list(values), dtype=float)
        if array.size == 0:
            return cls(0)
        p50, p90, p95, p99 = (float(np.percentile(array, p)) for p in PERCENTILES)
        return cls(int(array.size), float(np.mean(array)), float(np.std(array)), p50, p90, p95, p99)


@dataclass(frozen=True)
class Slo:
    """Limits for goodput, in seconds (given in milliseconds on the command line)."""

    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None

    def met_by(self, t: Timeline) -> bool:
        # vLLM's rule: a request with one output token has TPOT 0 for goodput.
        checks = (
            (self.ttft_s, t.ttft_s),
            (self.tpot_s, t.tpot_s if t.tpot_s is not None else 0.0),
            (self.e2e_s, t.e2e_s),
        )
        return all(
            limit is None or (value is not None and value <= limit) for limit, value in checks
        )

    @property
    def empty(self) -> bool:
        return self.ttft_s is None and self.tpot_s is None and self.e2e_s is None

    def as_ms(self) -> dict[str, float]:
        return {k.removesuffix("_s"): v * 1000 for k, v in asdict(self).items() if v is not None}


def parse_slo(text: str | None) -> Slo:
    """'ttft=200,tpot=50,e2e=2000' (milliseconds) -> Slo. Bad input raises BadInput."""
    limits: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, _, value = part.partition("=")
        name = SLO_KEYS.get(key.strip().lower())
        try:
            ms = float(value)
        except ValueError:
            ms = math.nan
        if name is None or not math.isfinite(ms) or ms <= 0:
            raise BadInput(f"--slo {part!r}: use ttft=MS,tpot=MS,e2e=MS with positive milliseconds")
        limits[f"{name}_s"] = ms / 1000
    return Slo(**limits)


@dataclass(frozen=True)
class LatencySummary:
    completed: int
    failed: int
    duration_s: float
    input_tokens: int
    output_tokens: int
    request_throughput: float  # completed requests / s
    input_throughput: float  # input tokens / s
    output_throughput: float  # output tokens / s
    total_throughput: float  # (input + output) tokens / s
    ttft: Distribution
    tpot: Distribution
    itl: Distribution
    e2e: Distribution
    goodput: float | None = None  # requests / s meeting `slo`; None without limits
    slo_ms: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LatencySummary:
        dists = {k: Distribution(**data[k]) for k in ("ttft", "tpot", "itl", "e2e")}
        return cls(**{**data, **dists})


def summarize(
    timelines: Sequence[Timeline], duration_s: float, slo: Slo | None = None
) -> LatencySummary:
    """The figures of one measurement: requests sent over `duration_s` seconds."""
    done = [t for t in timelines if t.ok]
    inputs = sum(t.input_tokens for t in done)
    outputs = sum(t.output_tokens for t in done)

    def per_s(x: float) -> float:
        return x / duration_s if duration_s > 0 else 0.0

    goodput = None
    if slo is not None and not slo.empty:
        goodput = per_s(sum(1 for t in done if slo.met_by(t)))
    return LatencySummary(
        completed=len(done),
        failed=len(timelines) - len(done),
        duration_s=duration_s,
        input_tokens=inputs,
        output_tokens=outputs,
        request_throughput=per_s(len(done)),
        input_throughput=per_s(inputs),
        output_throughput=per_s(outputs),
        total_throughput=per_s(inputs + outputs),
        ttft=Distribution.of(t.ttft_s for t in done if t.ttft_s is not None),
        tpot=Distribution.of(x for t in done if (x := t.tpot_s) is not None),
        itl=Distribution.of(gap for t in done for gap in t.itls_s),
        e2e=Distribution.of(t.e2e_s for t in done),
        goodput=goodput,
        slo_ms=slo.as_ms() if slo is not None else {},
    )
