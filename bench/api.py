"""The Python API the CLI is a thin layer over; notebooks call the same functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from bench.backends import BACKENDS, GGUF_BACKENDS, SERVER_BACKENDS, check_model_args
from bench.backends.process import ModelProcess, start_loading
from bench.backends.spawn import Spawned, spawn_for
from bench.catalog.loader import LoadedTask, load_tasks
from bench.distributed.units import Resources, WorkUnit, doc_count, split_units, worker_resources
from bench.engine.environment import hardware
from bench.engine.evaluate import PartialRun, evaluate
from bench.errors import BadInput, RunFailed
from bench.hardware.profiles import choose_profile, load_profiles
from bench.models.packs import PACKS
from bench.models.resolve import UnknownModelError, local_model_path, resolve_model
from bench.models.size import model_size
from bench.probe.runner import check_probe_settings, run_probe
from bench.records import (
    ExecutorOptions,
    ModelRef,
    ProbeRecord,
    ProbeSettings,
    RunPlan,
    RunRecord,
    RunSettings,
)
from bench.secrets import check_settings, redact
from bench.store.cache import RequestCache
from bench.store.export import encode_json
from bench.store.probes import write_probe
from bench.store.store import open_store, store_url, write_run

if TYPE_CHECKING:  # reports import pandas and matplotlib: only `report` needs them
    from sqlalchemy.engine import Engine

    from bench.report.leaderboard import Selection

LOCAL = ExecutorOptions()  # run in this process
RequestsProgress = Callable[[str, int, int], None]


def run(
    plan: RunPlan,
    store: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
    executor: ExecutorOptions = LOCAL,
    spawned: Spawned | None = None,
    requests: RequestsProgress | None = None,
) -> list[RunRecord]:
    """Evaluate every model of the plan on its tasks; each run lands in the store whole.
    `requests(model, answered, asked)` follows each local evaluation's requests.

    The first model's process (bench/backends/process.py; `spawned` if the caller started
    it, as `bench run` does before its own imports) imports its backend beside the checks
    and the task building, and is told which model to load once they have passed."""
    first = plan.models[0] if plan.models else None
    if spawned is None:
        spawned = spawn_for(plan.settings.backend, first, executor.kind == "local")
    try:
        tasks, units = _check_input(plan, executor)
        checked = _Checked(
            tasks,
            units,
            _resolve_models(plan, progress),
            _profile_name(plan),
            open_checked_store(store),
        )
        # Only now, with the input checked: bad input never loads a model. The model
        # process's imports take longer than the checks, so this costs no time.
        loading = start_loading(plan, executor, spawned)
    except BaseException:
        if spawned is not None:
            spawned.kill()
        raise
    try:
        return _run(plan, store, checked, progress, executor, loading, requests)
    finally:
        for backend in loading.values():
            backend.close()  # not taken: the run stopped before it


@dataclass(frozen=True)
class _Checked:
    """What checking a run's input built, in this order; the store comes last, so that
    it is not created for a plan that was wrong."""

    tasks: list[LoadedTask]  # built for the checks; the first evaluation takes them
    units: list[tuple[WorkUnit, Resources | None]]
    models: list[ModelRef]  # resolved: local folders or files
    profile: str | None  # the hardware profile's name
    engine: Engine  # the store, known to take writes


def _check_input(
    plan: RunPlan, executor: ExecutorOptions
) -> tuple[list[LoadedTask], list[tuple[WorkUnit, Resources | None]]]:
    """Everything that can be wrong with the plan, found before the store is touched."""
    tasks, units = _check_plan(plan, executor)
    if plan.latency is not None:
        if executor.kind != "local":
            raise BadInput("--latency probes on this machine: use it with --executor local")
        check_probe_settings(plan.settings, plan.latency)
    return tasks, units


def _resolve_models(plan: RunPlan, progress: Callable[[str], None]) -> list[ModelRef]:
    """The plan's models made local, in its order; an unknown name is bad input."""
    gguf = plan.settings.backend in GGUF_BACKENDS
    # Folders and hub ids resolve at once; packs may take a minute to materialize, so last.
    by_name = {
        n: _resolve(n, plan.settings.backend, gguf, progress)
        for n in sorted(plan.models, key=lambda n: n in PACKS)
    }
    return [by_name[n] for n in plan.models]


def _run(
    plan: RunPlan,
    store: str | None,
    checked: _Checked,
    progress: Callable[[str], None],
    executor: ExecutorOptions,
    loading: dict[Path, ModelProcess],
    requests: RequestsProgress | None = None,
) -> list[RunRecord]:
    engine, models, profile = checked.engine, checked.models, checked.profile
    if executor.kind == "ray":
        from bench.distributed.driver import run_on_ray

        return run_on_ray(
            plan,
            models,
            [unit for unit, _ in checked.units],
            worker_store_url(store),
            executor,
            lambda record: write_run(engine, with_cost_inputs(record, profile)),
            progress,
        )
    records = []
    built = [checked.tasks]  # the first evaluation takes the tasks built for the checks
    for model in models:
        progress(f"evaluating {model.name} on {', '.join(plan.tasks)}")
        # Fresh Task objects per evaluation: lm-eval keeps per-run state on them.
        try:
            record = evaluate(
                model,
                lambda: (
                    built.pop()
                    if built
                    else load_tasks(plan.tasks, plan.include_paths, plan.trust_task_code)
                ),
                plan.settings,
                cache=partial(RequestCache, engine) if plan.settings.use_cache else None,
                backend=loading.pop(model.path.resolve(), None),
                listener=partial(requests, model.name) if requests else None,
            )
        except PartialRun as stopped:
            if stopped.record is None:
                raise
            stopped.record = with_cost_inputs(stopped.record, profile)
            write_run(engine, stopped.record)
            kept = len(stopped.record.samples)
            raise RunFailed(
                f"{stopped}; the {kept} samples answered before it are kept in the store "
                f"as partial run {stopped.record.manifest.run_id}"
            ) from stopped
        record = with_cost_inputs(record, profile)
        write_run(engine, record)
        records.append(record)
        if plan.latency is not None:
            progress(f"latency probe of {model.name}")
            write_probe(
                engine,
                run_probe(
                    model,
                    load_tasks(plan.tasks, plan.include_paths, plan.trust_task_code),
                    plan.settings,
                    plan.latency,
                    profile,
                    run_id=record.manifest.run_id,
                    progress=progress,
                ),
            )
    return records


def probe(
    plan: RunPlan,
    store: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[ProbeRecord]:
    """The latency probe alone (no scoring): each model replays the tasks' prompts at
    `plan.latency`'s concurrency levels or request rate; every request lands in the store."""
    settings = plan.latency or ProbeSettings()
    check_run_settings(plan.settings)
    check_fewshot(load_tasks(plan.tasks, plan.include_paths, plan.trust_task_code), plan.settings)
    check_probe_settings(plan.settings, settings)
    profile = _profile_name(plan)
    gguf = plan.settings.backend in GGUF_BACKENDS
    models = [_resolve(n, plan.settings.backend, gguf, progress) for n in plan.models]
    engine = open_checked_store(store)
    records = []
    for model in models:
        progress(f"latency probe of {model.name} on {', '.join(plan.tasks)}")
        record = run_probe(
            model,
            load_tasks(plan.tasks, plan.include_paths, plan.trust_task_code),
            plan.settings,
            settings,
            profile,
            progress=progress,
        )
        write_probe(engine, record)
        records.append(record)
    return records


def _profile_name(plan: RunPlan) -> str | None:
    """--hardware NAME (checked against the profiles), else the detected profile."""
    return choose_profile(plan.hardware_profile, hardware(), load_profiles(plan.hardware_file))


def with_cost_inputs(record: RunRecord, profile: str | None) -> RunRecord:
    """The run's hardware profile name and its model's size (for MFU and MBU)."""
    path = record.manifest.model.path
    size = model_size(path) if str(path) not in ("", ".") else None
    manifest = replace(
        record.manifest,
        hardware_profile=profile,
        model_params=size.params if size else None,
        weight_bytes=size.weight_bytes if size else None,
        kv_bytes_per_token=size.kv_bytes_per_token if size else None,
    )
    return replace(record, manifest=manifest)


EXECUTORS = ("local", "ray")


def plan_units(
    plan: RunPlan, executor: ExecutorOptions = LOCAL
) -> list[tuple[WorkUnit, Resources | None]]:
    """The plan's work units and what each one's worker reserves (None: this process).
    Checks the input (tasks, model-args, executor options); starts and writes nothing."""
    return _check_plan(plan, executor)[1]


def _check_plan(
    plan: RunPlan, executor: ExecutorOptions
) -> tuple[list[LoadedTask], list[tuple[WorkUnit, Resources | None]]]:
    """plan_units, also returning the tasks it built to check them."""
    if executor.kind not in EXECUTORS:
        raise BadInput(f"unknown executor '{executor.kind}'; use {' or '.join(EXECUTORS)}")
    if executor.kind == "local" and executor.address:
        raise BadInput("--ray-address needs --executor ray")
    if executor.shard_size is not None and executor.shard_size < 1:
        raise BadInput("--shard-size must be at least 1 document")
    if executor.replicas < 1:
        raise BadInput("--replicas must be at least 1")
    check_settings(plan.settings.model_args, plan.settings.base_url)
    check_run_settings(plan.settings)
    tasks = load_tasks(plan.tasks, plan.include_paths, plan.trust_task_code)
    check_fewshot(tasks, plan.settings)
    counts = {t.name: doc_count(t.task, plan.settings.limit) for t in tasks}
    if executor.kind == "local":
        # One process runs each model on all its tasks at once.
        return tasks, [(unit, None) for unit in split_units(plan.models, counts, None)]
    return tasks, [
        (
            unit,
            worker_resources(plan.settings, local_model_path(unit.model), executor.cpus_per_worker),
        )
        for unit in split_units(plan.models, counts, executor.shard_size)
    ]


def check_run_settings(settings: RunSettings) -> None:
    """The settings' own mistakes, found before anything is built or loaded."""
    if settings.backend not in BACKENDS:
        raise BadInput(f"unknown backend '{settings.backend}'; available: {', '.join(BACKENDS)}")
    limit = settings.limit
    if limit is not None and not (0 < limit < 1 or (limit >= 1 and float(limit).is_integer())):
        raise BadInput(
            f"--limit {limit:g}: give a number of documents (1 or more) or a fraction "
            "between 0 and 1"
        )
    if settings.num_fewshot is not None and settings.num_fewshot < 0:
        raise BadInput(f"--num-fewshot {settings.num_fewshot}: give 0 or more examples")
    check_model_args(settings.backend, settings.model_args)


def check_fewshot(tasks: list[LoadedTask], settings: RunSettings) -> None:
    """Each task has the few-shot examples it will be asked for (lm-eval would stop at its
    first document otherwise). The shots are --num-fewshot unless a task pins 0, as in
    bench/engine/harness.py."""
    for loaded in tasks:
        task = loaded.task
        own = task.get_config("num_fewshot")
        shots = settings.num_fewshot if settings.num_fewshot is not None and own != 0 else own
        if not shots:
            continue
        try:
            pool = len(task.fewshot_docs())
        except Exception:  # noqa: BLE001 - a task class of its own: lm-eval finds out itself
            continue
        # Drawn from the evaluated split itself, a document is never its own example.
        split = task.get_config("fewshot_split")
        available = pool - (
            1 if split is not None and split == task.get_config("test_split") else 0
        )
        if shots > available:
            given = "--num-fewshot" if settings.num_fewshot is not None else "num_fewshot"
            raise BadInput(
                f"{given} {shots}: task '{loaded.name}' has only {available} few-shot "
                f"examples ({loaded.source})"
            )


def open_checked_store(store: str | None) -> Engine:
    """The results store, created or brought up to date, and known to take writes: a URL
    that names no database, an unreachable server, a read-only store or a file that is no
    database is bad input, found before any model loads."""
    from sqlalchemy import delete, false
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    from bench.store.schema import Run

    url = store_url(store)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise BadInput(
            f"--store {redact(url)!r} is not a database URL; e.g. sqlite:///results/bench.db "
            "or postgresql://HOST/DB"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise BadInput(
            f"--store {shown} names no file: an in-memory store forgets every result when "
            "bench exits; name a file, e.g. sqlite:///results/bench.db"
        )
    try:
        engine = open_store(url)
    except NoSuchModuleError:
        raise BadInput(
            f"--store {shown}: no database driver for '{parsed.drivername}'; use "
            "sqlite:///FILE or postgresql://HOST/DB"
        ) from None
    except (SQLAlchemyError, OSError, ImportError) as err:
        raise _unusable_store(shown, err) from None
    try:
        # A write that changes nothing, rolled back: a read-only store says so now, not
        # when the first run's results arrive.
        with engine.connect() as connection, connection.begin() as transaction:
            connection.execute(delete(Run).where(false()))
            transaction.rollback()
    except SQLAlchemyError as err:
        if str(getattr(err, "orig", "")) != "database is locked":
            raise _unusable_store(shown, err) from None
        # else another bench run is writing to it: it takes writes
    return engine


def _unusable_store(shown: str, err: Exception) -> BadInput:
    reason = str(getattr(err, "orig", None) or err).strip().splitlines()
    return BadInput(f"cannot use the store {shown}: {reason[0] if reason else type(err).__name__}")


def worker_store_url(store: str | None) -> str:
    """The store URL as a worker elsewhere must see it: a SQLite path made absolute."""
    url = store_url(store)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(url.removeprefix("sqlite:///")).resolve())
    return url


def _resolve(name: str, backend: str, gguf: bool, progress) -> ModelRef:
    try:
        return resolve_model(name, progress, gguf=gguf)
    except UnknownModelError:
        if backend not in SERVER_BACKENDS:
            raise
        # A model that only the server has: no local weights to hash or tokenizer to use.
        return ModelRef(name, Path(""), "unknown (served remotely)", "server")


REPORT_FORMATS = ("md", "html", "csv", "json")


def report(
    store: str | None = None,
    out_dir: Path = Path("reports"),
    formats: tuple[str, ...] = ("md", "html"),
    selection: Selection | None = None,
    hardware_file: Path | None = None,
) -> list[Path]:
    """Write the reports in `formats` under out_dir (of the runs `selection` picks, all by
    default); return their paths. Costs are priced with the hardware profiles as they read
    now (defaults, user file, `hardware_file`)."""
    from bench.report.leaderboard import EVERYTHING, long_frame, write_markdown
    from bench.report.site import write_site

    selection = selection or EVERYTHING
    unknown = [f for f in formats if f not in REPORT_FORMATS]
    if unknown:
        raise BadInput(f"unknown report format {unknown[0]!r}; use {', '.join(REPORT_FORMATS)}")
    profiles = load_profiles(hardware_file)
    engine = open_store(store)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if "md" in formats:
        written.append(write_markdown(engine, out_dir, selection, profiles))
    if "html" in formats:
        written.append(write_site(engine, out_dir, selection, profiles))
    if "csv" in formats or "json" in formats:
        frame = long_frame(engine, selection, profiles)
        if "csv" in formats:
            frame.to_csv(out_dir / "leaderboard.csv", index=False)
            written.append(out_dir / "leaderboard.csv")
        if "json" in formats:
            (out_dir / "leaderboard.json").write_bytes(encode_json(frame))
            written.append(out_dir / "leaderboard.json")
    return written
