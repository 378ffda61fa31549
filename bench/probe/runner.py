"""The latency probe: replays a task's prompts through a backend's streaming path after a
warm-up, at fixed concurrency levels (closed loop: N requests in flight) or at a Poisson
request rate (open loop, seeded), and summarizes each level with bench.metrics.latency.

Works on servers (--backend openai: vLLM, llama.cpp, any OpenAI-compatible server) and on
llama.cpp in-process (one request at a time). With --output-len N every request asks for N
tokens without stop strings, and `ignore_eos` where the server accepts it (vLLM does), so
every request produces exactly N tokens, as `vllm bench serve` does.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np

from bench.backends import create_backend
from bench.backends.base import GenerationSpec
from bench.backends.timing import RequestTiming
from bench.catalog.loader import LoadedTask
from bench.engine.environment import hardware
from bench.errors import BadInput, RunFailed
from bench.hardware.energy import EnergyMeter
from bench.metrics.latency import Timeline, parse_slo, summarize
from bench.models.size import model_size
from bench.probe.prompts import ProbePrompt, task_prompts
from bench.records import (
    ModelRef,
    ProbeLevel,
    ProbeRecord,
    ProbeRequest,
    ProbeSettings,
    RunSettings,
)

STREAMING = ("openai", "llamacpp")
Stream = Callable[[ProbePrompt], tuple[str, RequestTiming]]
MAX_OPEN_LOOP_WORKERS = 256


def check_probe_settings(settings: RunSettings, probe: ProbeSettings) -> None:
    """Refuse what cannot be measured, before anything runs."""
    if settings.backend not in STREAMING:
        raise BadInput(
            f"the latency probe needs a streaming backend ({', '.join(STREAMING)}); "
            f"{settings.backend!r} does not stream tokens"
        )
    if probe.request_rate is None and not probe.concurrency_levels:
        raise BadInput("--concurrency-levels needs at least one level, e.g. 1,8")
    if any(c < 1 for c in probe.concurrency_levels):
        raise BadInput("--concurrency-levels must be positive integers, e.g. 1,8")
    if probe.request_rate is not None and not probe.request_rate > 0:
        raise BadInput("--request-rate must be a positive number of requests per second")
    if probe.output_len is not None and probe.output_len < 1:
        raise BadInput("--output-len must be at least 1")
    if settings.backend == "llamacpp" and (
        probe.request_rate is not None or max(probe.concurrency_levels) > 1
    ):
        raise BadInput(
            "llama.cpp in-process answers one request at a time: use --concurrency-levels 1, "
            "or its server (python -m llama_cpp.server) with --backend openai"
        )
    parse_slo(probe.slo)


def _streamer(backend, name: str, extra_body: dict | None, spec_of) -> Stream:
    if name == "openai":
        return lambda p: backend.stream(p.prompt, spec_of(p), extra_body)
    return lambda p: backend.generate([p.prompt], spec_of(p))[0]


def _one(stream: Stream, prompt: ProbePrompt, seq: int, level: int, t0: float) -> ProbeRequest:
    start = time.perf_counter()
    try:
        _, timing = stream(prompt)
    except RunFailed as err:
        return ProbeRequest(
            level, seq, prompt.task, prompt.doc_id, start - t0,
            time.perf_counter() - start, None, None, 0, 0, "none", ok=False, error=str(err),
        )  # fmt: skip
    return ProbeRequest(
        level=level,
        seq=seq,
        task=prompt.task,
        doc_id=prompt.doc_id,
        start_s=start - t0,
        e2e_s=timing.wall_s,
        ttft_s=timing.ttft_s,
        chunk_times=timing.chunk_times,
        prompt_tokens=timing.prompt_tokens,
        completion_tokens=timing.completion_tokens,
        tokens_counted_by=timing.tokens_counted_by,
    )


def poisson_offsets(n: int, rate: float, seed: int) -> list[float]:
    """Send times of n requests at `rate` per second: exponential gaps, seeded, scaled so
    the last falls at n / rate (as vLLM's benchmark does, to steady the throughput)."""
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, size=n)
    times = np.cumsum(gaps)
    times = times * (n / rate) / times[-1]
    return [0.0, *times[:-1].tolist()]


def run_level(
    stream: Stream,
    prompts: list[ProbePrompt],
    level: int,
    concurrency: int | None = None,
    rate: float | None = None,
    seed: int = 0,
) -> tuple[float, list[ProbeRequest]]:
    """Send every prompt once; returns (duration, requests). Closed loop with
    `concurrency` in flight, or open loop with Poisson arrivals at `rate`."""
    results: list[ProbeRequest | None] = [None] * len(prompts)
    workers = concurrency or min(len(prompts), MAX_OPEN_LOOP_WORKERS)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        offsets = poisson_offsets(len(prompts), rate, seed) if rate else None
        futures = []
        for seq, prompt in enumerate(prompts):
            if offsets is not None:
                delay = t0 + offsets[seq] - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            futures.append(pool.submit(_one, stream, prompt, seq, level, t0))
        for seq, future in enumerate(futures):
            results[seq] = future.result()
    duration = time.perf_counter() - t0
    return duration, [r for r in results if r is not None]


def timelines(requests: list[ProbeRequest]) -> list[Timeline]:
    return [
        Timeline(
            e2e_s=r.e2e_s,
            output_tokens=r.completion_tokens,
            ttft_s=r.ttft_s,
            chunk_times=tuple(r.chunk_times or ()),
            input_tokens=r.prompt_tokens,
            ok=r.ok,
        )
        for r in requests
    ]


def run_probe(
    model: ModelRef,
    tasks: list[LoadedTask],
    settings: RunSettings,
    probe: ProbeSettings,
    hardware_profile: str | None = None,
    run_id: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> ProbeRecord:
    check_probe_settings(settings, probe)
    slo = parse_slo(probe.slo)
    levels = [None] if probe.request_rate is not None else list(probe.concurrency_levels)
    # The client must hold as many connections as requests in flight.
    in_flight = max(c or MAX_OPEN_LOOP_WORKERS for c in levels)
    started_at = datetime.now(UTC)
    backend = create_backend(
        settings.backend, model.path, dataclasses.replace(settings, concurrency=in_flight)
    )
    try:
        prompts = task_prompts(tasks, backend, settings)
        if prompts[0].gen_kwargs is None and probe.output_len is None:
            raise BadInput(
                "these tasks do not generate text; give --output-len N to replay their "
                "prompts as generation requests of N tokens"
            )
        wanted = probe.num_prompts or max(len(prompts), 2 * max(c or 1 for c in levels))
        replay = list(itertools.islice(itertools.cycle(prompts), wanted))

        def spec_of(p: ProbePrompt) -> GenerationSpec:
            if probe.output_len is not None:  # fixed length: no stop strings, greedy
                return GenerationSpec([], probe.output_len, {})
            return backend.generation_spec(p.gen_kwargs)

        extra = {"ignore_eos": True} if probe.output_len and settings.backend == "openai" else None
        stream = _streamer(backend, settings.backend, extra, spec_of)
        ignore_eos = extra is not None
        # At least one warm-up request where it also tells whether ignore_eos is accepted.
        warm = replay[: max(probe.warmup, 1 if ignore_eos else 0)]
        progress(f"warm-up: {len(warm)} requests")
        for prompt in warm:
            try:
                stream(prompt)
            except RunFailed:
                if not ignore_eos:
                    raise
                # A server that refuses vLLM's ignore_eos: fixed max_tokens only.
                ignore_eos, extra = False, None
                stream = _streamer(backend, settings.backend, None, spec_of)
                stream(prompt)
        level_records, request_records = [], []
        for index, concurrency in enumerate(levels):
            what = (
                f"{probe.request_rate:g} requests/s"
                if concurrency is None
                else f"concurrency {concurrency}"
            )
            progress(f"level {index}: {len(replay)} requests at {what}")
            with EnergyMeter() as meter:
                duration, requests = run_level(
                    stream, replay, index, concurrency, probe.request_rate, probe.seed
                )
            summary = summarize(timelines(requests), duration, slo)
            level_records.append(
                ProbeLevel(
                    index,
                    concurrency,
                    probe.request_rate if concurrency is None else None,
                    duration,
                    summary.as_dict(),
                    meter.reading.joules,
                    meter.reading.note,
                )
            )
            request_records += requests
    finally:
        if hasattr(backend, "close"):
            backend.close()
    size = model_size(model.path) if str(model.path) not in ("", ".") else None
    return ProbeRecord(
        probe_id=uuid.uuid4().hex[:12],
        model=model,
        settings=settings,
        probe=probe,
        tasks=[t.name for t in tasks],
        started_at=started_at,
        hardware=hardware(settings, model.path),  # with its peaks, the model closed
        hardware_profile=hardware_profile,
        ignore_eos=ignore_eos,
        levels=level_records,
        requests=request_records,
        run_id=run_id,
        model_params=size.params if size else None,
        weight_bytes=size.weight_bytes if size else None,
        kv_bytes_per_token=size.kv_bytes_per_token if size else None,
    )
