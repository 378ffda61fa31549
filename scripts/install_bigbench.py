"""Install BIG-bench's task files: the `bigbench` sdist, without its dependencies.

`pip install --no-deps bigbench` fails with pip >= 25 ("Distributions from PyPI cannot
declare direct URL dependencies": its setup.py names a bleurt zip), although none of its
dependencies is needed to read the task.json files. pip accepts the same sdist as a local
file, so this fetches it once (358 MB) into bench's cache, checks its sha256, builds its
wheel there once, and installs that. Usage: python scripts/install_bigbench.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from bench.models.packs import sha256_file  # installed before this script runs

VERSION = "1.0.0"
SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"


def fetch(target: Path) -> None:
    # The index's JSON form (PEP 691): reachable wherever pip's index is.
    index = urllib.request.Request(
        "https://pypi.org/simple/bigbench/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    with urllib.request.urlopen(index) as reply:
        files = json.load(reply)["files"]
    (sdist,) = [f for f in files if f["filename"] == f"bigbench-{VERSION}.tar.gz"]
    partial = target.with_suffix(".part")
    with urllib.request.urlopen(sdist["url"]) as reply, partial.open("wb") as out:
        shutil.copyfileobj(reply, out, 1 << 20)
    partial.rename(target)


def main() -> None:
    cache = Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench")) / "downloads"
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / f"bigbench-{VERSION}-py3-none-any.whl"
    if not wheel.exists():
        build_wheel(checked_sdist(cache), wheel)
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", str(wheel)]
    subprocess.run(pip, check=True)


def checked_sdist(cache: Path) -> Path:
    archive = cache / f"bigbench-{VERSION}.tar.gz"
    if not archive.exists() or sha256_file(archive) != SHA256:
        print(f"downloading bigbench {VERSION} (358 MB) to {archive}", flush=True)
        fetch(archive)
    if sha256_file(archive) != SHA256:
        archive.unlink()
        sys.exit(f"bigbench-{VERSION}.tar.gz does not have the expected sha256; removed it")
    return archive


def build_wheel(archive: Path, wheel: Path) -> None:
    """Build the wheel once and keep it beside the sdist: building it (unpacking 358 MB,
    copying 2,234 files, zipping them again) takes a minute or two, and pip rebuilds a
    local sdist on every install instead of using its wheel cache."""
    with tempfile.TemporaryDirectory(dir=wheel.parent) as build:
        pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", build, str(archive)]
        subprocess.run(pip, check=True)
        (built,) = Path(build).glob("bigbench-*.whl")
        built.rename(wheel)  # whole or absent: a wheel in the cache is never half written


if __name__ == "__main__":
    main()
