"""Per-run and per-probe-level speed, cost and efficiency, computed when a report is
written: stored measurements (wall time, tokens, per-request timings, energy, model size,
the peaks measured with the run) priced with the *current* hardware profiles
(bench/metrics/cost.py has the formulas, docs/metrics.md says how tokens are counted)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.engine import Engine

from bench.hardware.peak import Peak, measured_bandwidth, measured_flops
from bench.hardware.profiles import HardwareProfile
from bench.metrics.cost import Cost, bandwidth_peak, cost, flops_peak, mbu, mfu
from bench.metrics.latency import LatencySummary, Timeline, summarize
from bench.report.stats import is_accuracy_like
from bench.store.schema import Metric, RequestTiming, Run, RunTask


@dataclass(frozen=True)
class RunPerformance:
    run_id: str
    hardware_profile: str | None
    priced: bool  # False: no profile, or the profile is not in the current profiles
    wall_s: float
    samples: int
    correct: float | None  # primary accuracy x samples, over accuracy-like tasks
    output_tokens_per_s: float | None
    input_tokens_per_s: float | None
    cost: Cost
    latency: LatencySummary | None  # streamed generation requests only
    mfu: float | None
    mbu: float | None
    energy_j: float | None
    energy_note: str | None
    joules_per_output_token: float | None
    computed_tokens: float = 0.0  # the MFU numerator's tokens (see `tokens_counted`)
    tokens_counted: str = ""  # how they were counted
    flops_peak: Peak | None = None  # the MFU denominator and its source
    bandwidth_peak: Peak | None = None  # the MBU denominator and its source


@dataclass(frozen=True)
class ComputedTokens:
    """A run's tokens for MFU: what its requests recorded as computed, with the rows
    recorded before that column existed counted as prompt + completion."""

    tokens: float
    requests: int
    uncounted: int  # requests without a recorded count


def _per_s(tokens: int, wall_s: float) -> float | None:
    return tokens / wall_s if wall_s > 0 else None


def _streamed(engine: Engine, run_ids: list[str]) -> dict[str, list]:
    query = select(
        RequestTiming.run_id,
        RequestTiming.wall_s,
        RequestTiming.ttft_s,
        RequestTiming.chunk_times,
        RequestTiming.prompt_tokens,
        RequestTiming.completion_tokens,
    ).where(
        RequestTiming.run_id.in_(run_ids),
        RequestTiming.request_type == "generate_until",
        RequestTiming.ttft_s.is_not(None),
    )
    found: dict[str, list] = {}
    with engine.connect() as connection:
        for row in connection.execute(query):
            found.setdefault(row.run_id, []).append(row)
    return found


def _computed_tokens(engine: Engine, run_ids: list[str]) -> dict[str, ComputedTokens]:
    missing = RequestTiming.computed_tokens.is_(None)
    fallback = RequestTiming.prompt_tokens + RequestTiming.completion_tokens
    query = (
        select(
            RequestTiming.run_id,
            func.sum(func.coalesce(RequestTiming.computed_tokens, fallback)),
            func.count(),
            func.sum(case((missing, 1), else_=0)),
        )
        .where(RequestTiming.run_id.in_(run_ids))
        .group_by(RequestTiming.run_id)
    )
    with engine.connect() as connection:
        return {
            run_id: ComputedTokens(float(tokens or 0), int(n), int(uncounted or 0))
            for run_id, tokens, n, uncounted in connection.execute(query)
        }


def tokens_counted(found: ComputedTokens | None, run_tokens: int) -> tuple[float, str]:
    """The tokens MFU counts for a run, and how they were counted (for the report)."""
    if found is None or not found.requests:
        return float(run_tokens), "prompt + completion tokens (no per-request counts stored)"
    if found.uncounted == found.requests:
        return found.tokens, (
            "prompt + completion tokens (recorded before computed tokens were, or not "
            "reported by the backend)"
        )
    text = "tokens the model computed, recorded per request"
    if found.uncounted:
        text += f" ({found.uncounted} of {found.requests} requests counted as prompt + completion)"
    return found.tokens, text


def _correct_and_samples(engine: Engine, run_ids: list[str]) -> dict[str, tuple[int, float | None]]:
    with engine.connect() as connection:
        tasks = pd.read_sql(select(RunTask).where(RunTask.run_id.in_(run_ids)), connection)
        metrics = pd.read_sql(
            select(Metric).where(Metric.run_id.in_(run_ids), Metric.is_primary), connection
        )
    result = {}
    for run_id in run_ids:
        samples = int(tasks.loc[tasks["run_id"] == run_id, "n_samples"].sum())
        mine = metrics[metrics["run_id"] == run_id]
        accurate = [
            m.value * m.n_samples
            for m in mine.itertuples()
            if is_accuracy_like(m.higher_is_better, m.value)
        ]
        result[run_id] = (samples, float(sum(accurate)) if accurate else None)
    return result


def run_performance(
    engine: Engine, run_ids: list[str], profiles: dict[str, HardwareProfile]
) -> dict[str, RunPerformance]:
    run_ids = sorted(set(run_ids))
    if not run_ids:
        return {}
    with engine.connect() as connection:
        runs = pd.read_sql(select(Run).where(Run.run_id.in_(run_ids)), connection)
    streamed = _streamed(engine, run_ids)
    counts = _correct_and_samples(engine, run_ids)
    computed = _computed_tokens(engine, run_ids)
    result = {}
    for run in runs.itertuples():
        name = run.hardware_profile if isinstance(run.hardware_profile, str) else None
        profile = profiles.get(name) if name else None
        samples, correct = counts[run.run_id]
        rows = streamed.get(run.run_id, [])
        latency = None
        if rows:
            latency = summarize(
                [
                    Timeline(r.wall_s, r.completion_tokens, r.ttft_s, tuple(r.chunk_times or ()))
                    for r in rows
                ],
                run.wall_s,
            )
        tpot = latency.tpot.p50 if latency else None
        context = (
            sum(r.prompt_tokens + r.completion_tokens / 2 for r in rows) / len(rows)
            if rows
            else 0.0
        )
        energy = None if pd.isna(run.energy_j) else float(run.energy_j)
        params = None if pd.isna(run.model_params) else int(run.model_params)
        weights = None if pd.isna(run.weight_bytes) else int(run.weight_bytes)
        kv = None if pd.isna(run.kv_bytes_per_token) else int(run.kv_bytes_per_token)
        hardware = run.hardware if isinstance(run.hardware, dict) else {}
        flops, bandwidth = measured_flops(hardware), measured_bandwidth(hardware)
        tokens, counted = tokens_counted(
            computed.get(run.run_id), run.prompt_tokens + run.completion_tokens
        )
        result[run.run_id] = RunPerformance(
            run_id=run.run_id,
            hardware_profile=name,
            priced=profile is not None,
            wall_s=float(run.wall_s),
            samples=samples,
            correct=correct,
            output_tokens_per_s=_per_s(run.completion_tokens, run.wall_s),
            input_tokens_per_s=_per_s(run.prompt_tokens, run.wall_s),
            cost=cost(
                profile, run.wall_s, run.prompt_tokens, run.completion_tokens, samples, correct
            ),
            latency=latency,
            mfu=mfu(profile, params, tokens, run.wall_s, flops),
            mbu=mbu(profile, weights, kv, context, tpot, measured=bandwidth),
            energy_j=energy,
            energy_note=run.energy_note if isinstance(run.energy_note, str) else None,
            joules_per_output_token=(
                energy / run.completion_tokens
                if energy is not None and run.completion_tokens
                else None
            ),
            computed_tokens=tokens,
            tokens_counted=counted,
            flops_peak=flops_peak(profile, flops),
            bandwidth_peak=bandwidth_peak(profile, bandwidth),
        )
    return result


@dataclass(frozen=True)
class LevelPerformance:
    cost: Cost
    mbu: float | None
    mfu: float | None
    joules_per_output_token: float | None


def level_performance(level, profiles: dict[str, HardwareProfile]) -> LevelPerformance:
    """A probe level (a row of bench.store.probes.probe_levels_frame) priced and rated."""
    summary = LatencySummary.from_dict(level.summary)
    name = level.hardware_profile if isinstance(level.hardware_profile, str) else None
    profile = profiles.get(name) if name else None
    requests = summary.completed or 1
    context = (summary.input_tokens + summary.output_tokens / 2) / requests
    in_flight = level.concurrency if level.concurrency and not pd.isna(level.concurrency) else 1

    def whole(x) -> int | None:
        return None if x is None or pd.isna(x) else int(x)

    energy = None if level.energy_j is None or pd.isna(level.energy_j) else float(level.energy_j)
    hardware = getattr(level, "hardware", None)
    hardware = hardware if isinstance(hardware, dict) else {}
    return LevelPerformance(
        cost=cost(profile, summary.duration_s, summary.input_tokens, summary.output_tokens),
        mbu=mbu(
            profile,
            whole(level.weight_bytes),
            whole(level.kv_bytes_per_token),
            context,
            summary.tpot.p50,
            in_flight,
            measured_bandwidth(hardware),
        ),
        mfu=mfu(
            profile,
            whole(level.model_params),
            summary.input_tokens + summary.output_tokens,
            summary.duration_s,
            measured_flops(hardware),
        ),
        joules_per_output_token=(
            energy / summary.output_tokens if energy is not None and summary.output_tokens else None
        ),
    )
