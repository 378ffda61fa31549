"""Cost and hardware utilization of measured work, from a hardware profile.

Pure arithmetic on stored measurements; the report calls it with the current profile, so
a changed price changes the report and never the measurements.

- machine profiles: cost = price per second x wall time (model load and warm-up are not
  in the wall time); $ per 1M tokens of a kind = price per second / (those tokens per
  second) x 1e6, which charges the whole time to that kind, so input and output figures
  do not add up (the same convention as "$ per 1M output tokens" in serving benchmarks).
- endpoint profiles: cost = input tokens x its price + output tokens x its price.
- $ per 1k samples = cost / samples x 1000; $ per correct answer = cost / (primary
  accuracy x samples), over the tasks with an accuracy-like primary metric.
- MFU = achieved FLOP/s / peak FLOP/s, with achieved FLOP/s = 2 x parameters x the
  tokens the model computed / time (the forward pass only; attention FLOPs ignored):
  meaningful for prefill-heavy work. Computed tokens are recorded per request by the
  backend (bench/backends/timing.py: a shared context once, cached prefixes not at all).
- MBU = achieved bytes/s / memory bandwidth, with bytes per decode step = weights +
  KV cache read (per sequence: 2 x layers x KV heads x head size x bytes x context) and
  one step per TPOT: meaningful for decode.
- Peaks: the profile's declared `peak_flops` / `memory_bandwidth_bytes_s` where it has
  them, else those measured on the machine as the run ended (bench/hardware/peak.py).
  Neither figure is clamped: above 1 would mean a wrong count or a wrong peak.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.hardware.peak import Peak, bytes_text, flops_text
from bench.hardware.profiles import HardwareProfile


@dataclass(frozen=True)
class Cost:
    total_usd: float | None
    per_1m_input: float | None
    per_1m_output: float | None
    per_1k_samples: float | None
    per_correct: float | None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def cost(
    profile: HardwareProfile | None,
    wall_s: float,
    input_tokens: int,
    output_tokens: int,
    samples: int = 0,
    correct: float | None = None,
) -> Cost:
    if profile is None:
        return Cost(None, None, None, None, None)
    if profile.kind == "endpoint":
        total = (input_tokens * profile.input_per_1m + output_tokens * profile.output_per_1m) / 1e6
        per_in, per_out = profile.input_per_1m, profile.output_per_1m
    else:
        price_s = profile.price_per_second
        total = price_s * wall_s
        per_in = _ratio(price_s * 1e6, _ratio(input_tokens, wall_s))
        per_out = _ratio(price_s * 1e6, _ratio(output_tokens, wall_s))
    per_1k = _ratio(total * 1000, samples)
    return Cost(total, per_in, per_out, per_1k, _ratio(total, correct))


def flops_peak(profile: HardwareProfile | None, measured: Peak | None = None) -> Peak | None:
    """The MFU denominator: the profile's declared peak, else the measured one."""
    if profile is not None and profile.peak_flops:
        return Peak(
            profile.peak_flops,
            f"declared by profile {profile.name}: {flops_text(profile.peak_flops)}",
        )
    return measured


def bandwidth_peak(profile: HardwareProfile | None, measured: Peak | None = None) -> Peak | None:
    """The MBU denominator: the profile's declared bandwidth, else the measured one."""
    if profile is not None and profile.memory_bandwidth_bytes_s:
        return Peak(
            profile.memory_bandwidth_bytes_s,
            f"declared by profile {profile.name}: {bytes_text(profile.memory_bandwidth_bytes_s)}",
        )
    return measured


def mfu(
    profile: HardwareProfile | None,
    params: int | None,
    tokens: float,
    wall_s: float,
    measured: Peak | None = None,
) -> float | None:
    """Model FLOPs utilization: 2 x parameters x computed tokens / time / peak FLOP/s."""
    peak = flops_peak(profile, measured)
    if peak is None or not params or wall_s <= 0:
        return None
    return 2 * params * tokens / wall_s / peak.value


def mbu(
    profile: HardwareProfile | None,
    weight_bytes: int | None,
    kv_bytes_per_token: int | None,
    context_tokens: float,
    tpot_s: float | None,
    sequences: float = 1,
    measured: Peak | None = None,
) -> float | None:
    """Memory bandwidth utilization of decode: (weights + the KV cache of `sequences`
    sequences of `context_tokens`) read once per step of `tpot_s` seconds / bandwidth."""
    peak = bandwidth_peak(profile, measured)
    if peak is None or not weight_bytes or not tpot_s or tpot_s <= 0:
        return None
    step_bytes = weight_bytes + (kv_bytes_per_token or 0) * context_tokens * sequences
    return step_bytes / tpot_s / peak.value
