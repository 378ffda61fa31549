"""`bench run`: evaluate models on tasks, with a progress bar and a results table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

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

VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose",
        help="Also show other libraries' progress bars, warnings and logs (or BENCH_VERBOSE=1).",
    ),
]


def run(
    model: Annotated[
        str | None,
        typer.Option("--model", help="Pack names, HF ids or model folders, comma-separated."),
    ] = None,
    tasks: Annotated[
        str | None,
        typer.Option("--tasks", help="Task names, comma-separated (lm-eval names or YAML tasks)."),
    ] = None,
    suite: Annotated[
        str | None,
        typer.Option(
            "--suite", help="A named suite: its tasks, and its models unless --model is given."
        ),
    ] = None,
    include_path: Annotated[
        list[Path] | None,
        typer.Option("--include-path", help="Extra folder of task YAML (repeatable)."),
    ] = None,
    backend: Annotated[str, typer.Option("--backend", help="Model backend.")] = "hf",
    model_args: Annotated[
        str,
        typer.Option("--model-args", help="k=v,... passed to the backend (e.g. dtype=bfloat16)."),
    ] = "",
    num_fewshot: Annotated[
        int | None,
        typer.Option("--num-fewshot", help="Few-shot examples (default: each task's own)."),
    ] = None,
    limit: Annotated[
        float | None,
        typer.Option("--limit", help="Samples per task (a count, or a fraction below 1)."),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    apply_chat_template: Annotated[
        bool,
        typer.Option(
            "--apply-chat-template",
            help="Format prompts with the model's chat template, as lm-eval does.",
        ),
    ] = False,
    bootstrap_iters: Annotated[
        int,
        typer.Option(
            "--bootstrap-iters",
            help="Bootstrap resamples for stderrs lm-eval cannot compute in closed form.",
        ),
    ] = 100_000,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="Server URL for --backend openai (http://HOST:PORT/v1)."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Requests in flight at once (servers).")
    ] = 8,
    trust_task_code: Annotated[
        bool,
        typer.Option("--trust-task-code", help="Let local task YAML run its !function Python."),
    ] = False,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Ask the model again even where the store has answers."),
    ] = False,
    hardware: HardwareOption = None,
    hardware_file: HardwareFileOption = None,
    latency: Annotated[
        bool,
        typer.Option("--latency", help="After each run, probe latency (see bench probe)."),
    ] = False,
    concurrency_levels: LevelsOption = "1,8",
    request_rate: RateOption = None,
    output_len: OutputLenOption = None,
    num_prompts: NumPromptsOption = None,
    slo: SloOption = "",
    warmup: WarmupOption = 2,
    seed: SeedOption = 0,
    executor: Annotated[
        str,
        typer.Option("--executor", help="local: this process; ray: a Ray cluster's workers."),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Ray cluster to join (HOST:PORT of `ray start --head`) [default: Ray here].",
        ),
    ] = None,
    shard_size: Annotated[
        int,
        typer.Option("--shard-size", help="Documents per work unit (ray); 0: a task per unit."),
    ] = 100,
    replicas: Annotated[
        int, typer.Option("--replicas", min=1, help="Workers (loaded copies) per model (ray).")
    ] = 1,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the work units and their resources; run nothing."),
    ] = False,
    store: StoreOption = None,
    verbose: VerboseOption = False,  # read at start-up (bench/quiet.py, bench/launch.py)
) -> None:
    """Evaluate models on tasks and record every metric and sample in the store.

    Answers are written to the store as they arrive and reused by later runs of the same
    model and settings, so an interrupted run resumes where it stopped when run again.

    Exit codes: 0 done; 1 a server failed (what was finished stays in the store); 2 bad input.
    """
    from bench.trace import mark

    mark("cli_run")
    from bench.backends import BACKENDS
    from bench.backends.spawn import spawn_for
    from bench.records import ExecutorOptions, RunPlan, RunSettings
    from bench.suites import SUITES

    if suite is not None and tasks:
        fail(f"--suite {suite} names its own tasks: give --suite or --tasks, not both")
    if suite is None and not (model and tasks):
        suite = "default"
    if suite is not None and suite not in SUITES:
        fail(f"unknown suite '{suite}'; suites: {', '.join(SUITES)}")
    chosen = SUITES.get(suite) if suite else None
    if backend not in BACKENDS:
        fail(f"unknown backend '{backend}'; available: {', '.join(BACKENDS)}")
    models = split(model) or list(chosen.models)
    # The model's process starts now and imports torch and transformers while this one
    # imports lm-eval and builds the tasks (bench/backends/process.py).
    spawned = spawn_for(backend, models[0] if models else None, executor == "local" and not dry_run)
    try:  # a bad option below stops the model process at once
        from lm_eval.utils import simple_parse_args_string

        plan = RunPlan(
            models=models,
            tasks=split(tasks) or list(chosen.tasks),
            include_paths=list(include_path or []),
            trust_task_code=trust_task_code,
            settings=RunSettings(
                backend=backend,
                model_args=simple_parse_args_string(model_args) if model_args else {},
                num_fewshot=num_fewshot,
                limit=limit,
                batch_size=batch_size,
                apply_chat_template=apply_chat_template,
                bootstrap_iters=bootstrap_iters,
                base_url=base_url,
                concurrency=concurrency,
                use_cache=not no_cache,
            ),
            hardware_profile=hardware,
            hardware_file=hardware_file,
            latency=probe_settings(
                concurrency_levels, request_rate, output_len, num_prompts, slo, warmup, seed
            )
            if latency
            else None,
        )
        options = ExecutorOptions(
            kind=executor, address=ray_address, shard_size=shard_size or None, replicas=replicas
        )
    except BaseException:
        if spawned is not None:
            spawned.kill()
        raise
    from bench import api

    with reported_errors():
        if dry_run:
            _print_units(api.plan_units(plan, options), options)
            return
        with _RequestsBar() as bar:
            records = api.run(plan, store, bar.message, options, spawned, bar.update)
    _print_results(records, store)


class _RequestsBar:
    """bench's one progress display for a run: a bar per model of its requests answered
    (from the model or the store) out of those asked so far, with the run's messages."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            "requests",
            TimeElapsedColumn(),
            console=console,
        )
        self.bars: dict[str, int] = {}

    def __enter__(self) -> _RequestsBar:
        return self  # the display starts with the first bar: bad input prints one line only

    def __exit__(self, *exc) -> None:
        if self.bars:
            self.progress.stop()

    def message(self, text: str) -> None:
        self.progress.console.print(f"[dim]{escape(text)}[/dim]", soft_wrap=True)

    def update(self, model: str, answered: int, asked: int) -> None:
        if model not in self.bars:
            if not self.bars:
                self.progress.start()
            self.bars[model] = self.progress.add_task(escape(model), total=None)
        self.progress.update(self.bars[model], completed=answered, total=asked)


def _print_results(records, store: str | None) -> None:
    """Each task's primary metrics for each model, then one line per run."""
    from sqlalchemy.engine import make_url

    from bench.store.store import store_url

    table = Table("model", "task", "metric", "value", "± stderr", "samples", title="results")
    for record in records:
        for metric in record.metrics:
            if metric.primary:
                stderr = "" if metric.stderr is None else f"{metric.stderr:.4f}"
                table.add_row(
                    escape(record.manifest.model.name),
                    escape(metric.task),
                    escape(
                        metric.metric
                        if metric.filter == "none"
                        else f"{metric.metric} ({metric.filter})"
                    ),
                    f"{metric.value:.4f}",
                    stderr,
                    str(metric.n_samples),
                )
    # Where stderr is no terminal (a log), as wide as its contents rather than 80 columns.
    (console if console.is_terminal else Console(stderr=True, width=200)).print(table)
    for record in records:
        m = record.manifest
        console.print(
            f"run {m.run_id}: {m.model.name}, {len(record.samples)} samples, "
            f"{m.wall_s:.1f} s, {m.tokens_per_s:.0f} tokens/s, requests: {m.requests_sent} "
            f"sent to the model, {m.requests_reused} reused from the store",
            soft_wrap=True,  # one line per run, also in logs
        )
    shown = make_url(store_url(store)).render_as_string(hide_password=True)
    console.print(f"store: {escape(shown)}", soft_wrap=True)


def _print_units(units, options) -> None:
    where = "this process" if options.kind == "local" else "a Ray worker of its model"
    table = Table(
        "unit",
        "model",
        "task",
        "documents",
        "num_cpus",
        "num_gpus",
        "memory",
        title=f"{len(units)} work units, executor {options.kind}: each runs on {where}",
    )
    for number, (unit, resources) in enumerate(units, 1):
        fixed = ("-", "-", "-") if resources is None else resources.describe_columns()
        table.add_row(str(number), unit.model, unit.task, f"{unit.start}-{unit.stop - 1}", *fixed)
    Console(width=160).print(table)
