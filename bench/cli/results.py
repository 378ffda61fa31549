"""`bench results`: read, export, import and delete what the results store holds."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.cli.common import StoreOption, console, fail

app = typer.Typer(help="Read what the results store holds.", no_args_is_help=True)


@app.command("export")
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
        fail(f"unknown format '{fmt}'; use one of {', '.join(FORMATS)}")
    if what not in TABLES:
        fail(f"unknown table '{what}'; use one of {', '.join(TABLES)}")
    if fmt == "parquet" and out is None:
        fail("parquet is binary: give --out FILE")
    data = export_table(open_store(store), what, fmt)
    if out is None:
        sys.stdout.write(data.decode())
    else:
        out.write_bytes(data)


@app.command("import")
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
    from bench.store.bundle import import_runs, read_bundle, verify
    from bench.store.store import open_store
    from bench.store.verify import BundleRefused, local_backend
    from bench.store.verify import spot_check as check_answers

    try:
        runs = read_bundle(bundle)
        tasks = verify(runs, include_path)
        checked = spot_check
        for entry in runs if spot_check else []:
            done = check_answers(entry, tasks, spot_check, local_backend)
            console.print(f"run {entry['run']['run_id']}: {done} samples re-run, same")
            checked = min(checked, done)  # a run with fewer documents had fewer checked
        imported = import_runs(open_store(store), runs, spot_checked=checked)
    except (BundleRefused, UnknownTaskError, TaskLoadError) as err:
        fail(f"bundle {bundle} refused: {err}")
    console.print(f"imported {len(imported)} runs: {', '.join(imported)}")


@app.command("list")
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


@app.command("show")
def results_show(run_id: str, store: StoreOption = None) -> None:
    """A run's manifest, tasks (with content hashes) and metrics, as JSON."""
    from bench import results

    manifest = results.find_run(store, run_id)
    if manifest is None:
        fail(f"no single run matches '{run_id}'; see bench results list")
    print(json.dumps(manifest, indent=2, default=str))


@app.command("delete")
def results_delete(run_id: str, store: StoreOption = None) -> None:
    """Delete a run and everything recorded with it (exact id)."""
    from bench import results

    if not results.delete_run(store, run_id):
        fail(f"no run '{run_id}'; see bench results list")
    console.print(f"deleted run {run_id}")
