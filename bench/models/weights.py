"""Content hash of a model's weights, so a result names exactly what produced it."""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


def weights_hash(model_dir: Path) -> str:
    """sha256 over the weight files of a directory, in name order (names included)."""
    digest = hashlib.sha256()
    files = sorted(p for p in Path(model_dir).rglob("*") if p.name.endswith(WEIGHT_SUFFIXES))
    if not files:
        raise FileNotFoundError(f"no weight files ({', '.join(WEIGHT_SUFFIXES)}) in {model_dir}")
    for path in files:
        digest.update(path.relative_to(model_dir).as_posix().encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
