"""What every `bench` command module shares: the console, the one-line error and the
options that several commands take alike."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="SQLAlchemy URL of the results store [default: $BENCH_STORE or sqlite:///results/bench.db]",
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


# Options shared by `bench run` (with --latency) and `bench probe`: latency and cost.
HardwareOption = Annotated[
    str | None,
    typer.Option(
        "--hardware",
        help="Hardware profile that prices the run (bench hardware) [default: detected].",
    ),
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


def probe_settings(levels, rate, output_len, num_prompts, slo, warmup, seed):
    from bench.records import ProbeSettings

    try:
        parsed = tuple(int(x) for x in split(levels))
    except ValueError:
        fail(f"--concurrency-levels {levels!r}: use positive integers, e.g. 1,8")
    return ProbeSettings(parsed, rate, output_len, num_prompts, warmup, seed, slo)


def fail(message: str, code: int = 2) -> None:
    """One line on stderr; exit code 2 for bad input, 1 for a failure mid-run. Whatever
    the message quotes (a URL, an argument), no secret in it is printed."""
    from bench.secrets import redact

    one_line = " ".join(redact(message).split())
    console.print(f"[red]error:[/red] {escape(one_line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def reported_errors():
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
        fail(str(err))
    except RunFailed as err:
        fail(str(err), code=1)


def split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]
