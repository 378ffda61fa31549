"""`bench` command line: a thin layer over bench.api and friends, one module per command
group; this module only wires them together."""

from __future__ import annotations

import typer

from bench.cli import info, models, probe, report, results, run, store, tasks

app = typer.Typer(
    help="Benchmark open LLMs: accuracy, speed and cost in one store.", no_args_is_help=True
)
# Registration order is the order `bench --help` lists them in.
app.command()(run.run)
app.command()(info.backends)
app.command()(info.suites)
app.command()(report.compare)
app.command()(report.report)
app.command()(probe.probe)
app.command("hardware")(info.hardware_list)
app.add_typer(models.app, name="models")
app.add_typer(results.app, name="results")
app.add_typer(tasks.app, name="tasks")
app.add_typer(store.app, name="store")


def main() -> None:
    app()
