"""`bench probe`: latency and throughput of a streaming backend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from bench.cli.common import (
    HardwareFileOption,
    HardwareOption,
    LevelsOption,
    NumPromptsOption,
    OutputLenOption,
    RateOption,
    SeedOption,
    SloOption,
    StoreOption,
    WarmupOption,
    console,
    fail,
    probe_settings,
    reported_errors,
    split,
)


def probe(
    model: Annotated[str, typer.Option("--model", help="Models, comma-separated.")],
    tasks: Annotated[str, typer.Option("--tasks", help="Tasks whose prompts are replayed.")],
    include_path: Annotated[
        list[Path] | None,
        typer.Option("--include-path", help="Extra folder of task YAML (repeatable)."),
    ] = None,
    backend: Annotated[
        str, typer.Option("--backend", help="A streaming backend: openai or llamacpp.")
    ] = "openai",
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="Server URL for --backend openai (http://HOST:PORT/v1)."),
    ] = None,
    model_args: Annotated[str, typer.Option("--model-args", help="k=v,... for the backend.")] = "",
    num_fewshot: Annotated[int | None, typer.Option("--num-fewshot")] = None,
    limit: Annotated[
        float | None, typer.Option("--limit", help="Documents per task whose prompts are used.")
    ] = None,
    apply_chat_template: Annotated[bool, typer.Option("--apply-chat-template")] = False,
    trust_task_code: Annotated[bool, typer.Option("--trust-task-code")] = False,
    concurrency_levels: LevelsOption = "1,8",
    request_rate: RateOption = None,
    output_len: OutputLenOption = None,
    num_prompts: NumPromptsOption = None,
    slo: SloOption = "",
    warmup: WarmupOption = 2,
    seed: SeedOption = 0,
    hardware: HardwareOption = None,
    hardware_file: HardwareFileOption = None,
    store: StoreOption = None,
) -> None:
    """Measure latency and throughput: replay the tasks' own prompts through the streaming
    path, after a warm-up, at each concurrency level (or a Poisson request rate).

    Every request's timings and each level's summary (TTFT, TPOT, ITL, E2E percentiles,
    throughput, goodput) go to the store; `bench report` shows them with their cost.
    """
    from lm_eval.utils import simple_parse_args_string

    from bench import api
    from bench.backends import BACKENDS
    from bench.metrics.latency import LatencySummary
    from bench.records import RunPlan, RunSettings

    if backend not in BACKENDS:
        fail(f"unknown backend '{backend}'; available: {', '.join(BACKENDS)}")
    plan = RunPlan(
        models=split(model),
        tasks=split(tasks),
        include_paths=list(include_path or []),
        trust_task_code=trust_task_code,
        settings=RunSettings(
            backend=backend,
            model_args=simple_parse_args_string(model_args) if model_args else {},
            num_fewshot=num_fewshot,
            limit=limit,
            apply_chat_template=apply_chat_template,
            base_url=base_url,
        ),
        hardware_profile=hardware,
        hardware_file=hardware_file,
        latency=probe_settings(
            concurrency_levels, request_rate, output_len, num_prompts, slo, warmup, seed
        ),
    )
    with reported_errors():
        records = api.probe(plan, store, lambda msg: console.print(f"[dim]{msg}[/dim]"))
    for record in records:
        for level in record.levels:
            summary = LatencySummary.from_dict(level.summary)
            load = (
                f"concurrency {level.concurrency}"
                if level.concurrency is not None
                else f"{level.request_rate:g} req/s"
            )
            ttft = summary.ttft.p50
            console.print(
                f"probe {record.probe_id}: {escape(record.model.name)}, {load}: "
                f"{summary.completed} requests, {summary.request_throughput:.2f} req/s, "
                f"{summary.output_throughput:.1f} output tok/s, TTFT p50 "
                f"{'—' if ttft is None else f'{ttft * 1000:.1f} ms'}"
            )
