"""Hardware profiles: prices and peaks from a YAML the user can edit.

The shipped defaults (profiles.yaml beside this file) are overlaid by the user's
~/.config/bench/hardware.yaml ($BENCH_HARDWARE_FILE moves it) or by --hardware-file:
a profile of the same name replaces the default. A run stores the profile's *name*;
prices are read when a report is written, so a corrected price corrects every report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from bench.errors import BadInput

DEFAULTS = Path(__file__).with_name("profiles.yaml")
KINDS = ("machine", "endpoint")


def user_file() -> Path:
    override = os.environ.get("BENCH_HARDWARE_FILE")
    if override:
        return Path(override)
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "bench" / "hardware.yaml"


@dataclass(frozen=True)
class HardwareProfile:
    name: str
    kind: str = "machine"
    description: str = ""
    price_per_hour: float | None = None
    input_per_1m: float | None = None  # endpoint: USD per 1M input tokens
    output_per_1m: float | None = None  # endpoint: USD per 1M output tokens
    power_w: float | None = None
    peak_flops: float | None = None
    memory_bandwidth_bytes_s: float | None = None
    match: str | None = None

    @property
    def price_per_second(self) -> float | None:
        return None if self.price_per_hour is None else self.price_per_hour / 3600


_FIELDS = {f.name for f in fields(HardwareProfile)}
_NUMBERS = (
    "price_per_hour",
    "input_per_1m",
    "output_per_1m",
    "power_w",
    "peak_flops",
    "memory_bandwidth_bytes_s",
)


def _read(path: Path) -> list[HardwareProfile]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise BadInput(f"{path}: not valid YAML ({err})") from None
    entries = data.get("profiles") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise BadInput(f"{path}: expected a top-level 'profiles:' list")
    return [_profile(path, i, entry) for i, entry in enumerate(entries)]


def _profile(path: Path, index: int, entry) -> HardwareProfile:
    where = f"{path}: profile {index + 1}"
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise BadInput(f"{where}: each profile needs a 'name'")
    where = f"{path}: profile {entry['name']!r}"
    unknown = set(entry) - _FIELDS
    if unknown:
        raise BadInput(f"{where}: unknown field {sorted(unknown)[0]!r}; fields: {sorted(_FIELDS)}")
    values = dict(entry)
    for key in _NUMBERS:
        if values.get(key) is not None:
            try:
                values[key] = float(values[key])
            except (TypeError, ValueError):
                raise BadInput(f"{where}: {key} must be a number") from None
            if values[key] < 0:
                raise BadInput(f"{where}: {key} must not be negative")
    if "match" in values and values["match"] is not None:
        values["match"] = str(values["match"])
    profile = HardwareProfile(**values)
    if profile.kind not in KINDS:
        raise BadInput(f"{where}: kind must be one of {', '.join(KINDS)}")
    if profile.kind == "machine" and profile.price_per_hour is None:
        raise BadInput(f"{where}: a machine profile needs price_per_hour")
    if profile.kind == "endpoint" and (
        profile.input_per_1m is None or profile.output_per_1m is None
    ):
        raise BadInput(f"{where}: an endpoint profile needs input_per_1m and output_per_1m")
    return profile


def load_profiles(extra: Path | None = None) -> dict[str, HardwareProfile]:
    """Shipped defaults, then the user's file, then `extra`; later files win by name."""
    profiles = {p.name: p for p in _read(DEFAULTS)}
    if extra is not None and not extra.is_file():
        raise BadInput(f"--hardware-file {extra} does not exist")
    for path in (user_file(), extra):
        if path is not None and path.is_file():
            profiles.update((p.name, p) for p in _read(path))
    return profiles


def choose_profile(
    name: str | None, hardware: dict, profiles: dict[str, HardwareProfile]
) -> str | None:
    """The profile a run is priced with: --hardware NAME, else the one detected (a GPU
    whose name contains a profile's `match`, or the `cpu` profile where there is no GPU);
    None where nothing matches safely (one profile, no guess between several)."""
    if name:
        if name not in profiles:
            raise BadInput(f"unknown hardware profile {name!r}; known: {', '.join(profiles)}")
        return name
    gpu = str(hardware.get("gpu") or "")
    if gpu:
        found = [p.name for p in profiles.values() if p.match and p.match.lower() in gpu.lower()]
    else:
        found = [p.name for p in profiles.values() if (p.match or "").lower() == "cpu"]
    return found[0] if len(found) == 1 else None
