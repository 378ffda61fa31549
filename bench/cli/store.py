"""`bench store`: looking after the results store file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench.cli.common import StoreOption, console, reported_errors

app = typer.Typer(help="Look after the results store file: backup.", no_args_is_help=True)


@app.command("backup")
def store_backup(
    dest: Path,
    force: Annotated[bool, typer.Option("--force", help="Replace DEST if it exists.")] = False,
    store: StoreOption = None,
) -> None:
    """Copy a SQLite store into one file that holds every run.

    Consistent even while runs write to the store; a copy of bench.db alone can miss what
    bench.db-wal holds. For a PostgreSQL store use pg_dump."""
    from bench.store.backup import backup_store

    with reported_errors():
        copied = backup_store(store, dest, force=force)
    console.print(f"backed up {copied.runs} runs to {copied.path}")
