"""Turns what the user typed (pack name, local folder, HF id) into a local model directory."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from bench.models.packs import (
    PACKS,
    PackError,
    cache_root,
    is_materialized,
    materialize,
    pack_dir,
    read_manifest,
    sha256_file,
)
from bench.models.weights import weights_hash
from bench.records import ModelRef


class UnknownModelError(LookupError):
    def __init__(self, name: str, reason: str):
        close = difflib.get_close_matches(name, list(PACKS), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; packs: {', '.join(PACKS)}"
        super().__init__(f"unknown model '{name}': {reason}{hint}")


def _cached_hash(path: Path) -> str:
    """Hash a folder's weights once per (path, size, mtime)."""
    index_file = cache_root() / "weights-hashes.json"
    index = json.loads(index_file.read_text()) if index_file.exists() else {}
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    stamp = [
        [p.name, p.stat().st_size, p.stat().st_mtime_ns]
        for p in files
        if p.is_file() and p.suffix in (".safetensors", ".bin", ".gguf", ".pt")
    ]
    entry = index.get(str(path.resolve()))
    if entry and entry["stamp"] == stamp:
        return entry["sha256"]
    digest = weights_hash(path) if path.is_dir() else sha256_file(path)
    index[str(path.resolve())] = {"stamp": stamp, "sha256": digest}
    index_file.parent.mkdir(parents=True, exist_ok=True)
    index_file.write_text(json.dumps(index))
    return digest


def resolve_model(name: str, progress=lambda _: None, gguf: bool = False) -> ModelRef:
    """A local model for `name`: a Hugging Face folder, or with gguf=True a GGUF file."""
    if name in PACKS:
        if gguf:
            return _pack_gguf(name, progress)
        path = materialize(name, progress)
        return ModelRef(name, path, read_manifest(name)["weights_sha256"], "pack")
    local = Path(name).expanduser()
    if local.is_file():
        if local.suffix != ".gguf":
            raise UnknownModelError(name, "a model file must be a .gguf file")
        if not gguf:
            raise UnknownModelError(name, "a GGUF file runs with --backend llamacpp")
        return ModelRef(name, local.resolve(), _cached_hash(local), "gguf")
    if local.is_dir():
        if gguf:
            if (file := gguf_file(local)) is None:
                raise UnknownModelError(name, "the folder must hold exactly one .gguf file")
            return ModelRef(name, file.resolve(), _cached_hash(file), "gguf")
        if not (local / "config.json").is_file():
            raise UnknownModelError(name, "the folder has no config.json")
        return ModelRef(name, local.resolve(), _cached_hash(local), "local")
    if name.count("/") == 1 and not name.startswith((".", "/")) and not gguf:
        from huggingface_hub import snapshot_download

        try:
            path = Path(snapshot_download(name))
        except Exception as err:  # offline, missing or private: all mean "not usable here"
            raise UnknownModelError(
                name, f"not a pack or folder, and the hub said: {err}"
            ) from None
        return ModelRef(name, path, _cached_hash(path), "hub-cache")
    raise UnknownModelError(name, "not a pack name, a model folder or a Hugging Face id")


def _pack_gguf(name: str, progress) -> ModelRef:
    pack = PACKS[name]
    progress(f"locating {pack.gguf_name}")
    try:
        path = pack.locate_gguf()
    except PackError as err:
        raise PackError(f"{err}; install it with: {pack.install}") from err
    if _cached_hash(path) != pack.gguf_sha256:
        raise PackError(f"{path} does not match its published sha256 {pack.gguf_sha256}")
    return ModelRef(name, path, pack.gguf_sha256, "pack-gguf")


def gguf_file(local: Path) -> Path | None:
    """A .gguf file itself, or a folder's only .gguf file; None otherwise."""
    if local.is_file():
        return local if local.suffix == ".gguf" else None
    files = sorted(local.glob("*.gguf")) if local.is_dir() else []
    return files[0] if len(files) == 1 else None


def local_model_path(name: str) -> Path | None:
    """The model's folder if it is already here (to size its memory); nothing is fetched."""
    if name in PACKS:
        return pack_dir(name) if is_materialized(name) else None
    local = Path(name).expanduser()
    return local if local.is_dir() else None
