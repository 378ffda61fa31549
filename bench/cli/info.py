"""`bench backends`, `bench suites` and `bench hardware`: what this install offers."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.cli.common import HardwareFileOption, console, fail


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


def suites() -> None:
    """The named suites `bench run --suite NAME` accepts: their models and tasks."""
    from bench.suites import SUITES

    table = Table("suite", "models", "tasks", "what it is")
    for suite in SUITES.values():
        table.add_row(
            suite.name, ", ".join(suite.models), ", ".join(suite.tasks), suite.description
        )
    Console(width=160).print(table)


def hardware_list(hardware_file: HardwareFileOption = None) -> None:
    """The hardware profiles (shipped defaults, your ~/.config/bench/hardware.yaml, and
    --hardware-file) and the one detected on this machine."""
    from bench.engine.environment import hardware as this_machine
    from bench.errors import BadInput
    from bench.hardware.profiles import choose_profile, load_profiles, user_file

    try:
        profiles = load_profiles(hardware_file)
    except BadInput as err:
        fail(str(err))
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
