"""`bench report` and `bench compare`: the store turned into leaderboards and deltas."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.cli.common import HardwareFileOption, IncludeLimitedOption, StoreOption, fail, split


def compare(
    first: Annotated[str, typer.Argument(help="A model, or model@backend.")],
    second: Annotated[str, typer.Argument(help="The model to compare with.")],
    include_limited: IncludeLimitedOption = False,
    store: StoreOption = None,
) -> None:
    """Per-task differences between two models: paired-bootstrap 95% CI and p-value,
    win/tie/loss counts per sample, minimum detectable difference (MDE), and the design
    effect where a task's documents come in clusters (docs/statistics.md)."""
    from bench.report.leaderboard import COMPARE_HEADERS, Selection, delta_cells
    from bench.report.leaderboard import compare as compare_models
    from bench.store.store import open_store

    selection = Selection(include_limited=include_limited)
    try:
        deltas = compare_models(open_store(store), first, second, selection)
    except LookupError as err:
        fail(str(err))
    table = Table("task", "metric", escape(first), escape(second), *COMPARE_HEADERS)
    for d in deltas:
        table.add_row(escape(d.task), escape(d.metric), *delta_cells(d).values())
    Console(width=200).print(table)


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
        fail(f"unknown suite '{suite}'; suites: {', '.join(SUITES)}")
    selection = Selection(
        models=tuple(split(models)),
        tasks=tuple(split(tasks)) or (SUITES[suite].tasks if suite else ()),
        backends=tuple(split(backends)),
        hardware=hardware,
        since=since,
        until=until,
        include_limited=include_limited,
    )
    try:
        paths = api.report(store, out, tuple(split(fmt)), selection, hardware_file)
    except BadInput as err:
        fail(str(err))
    for path in paths:
        print(path)
