"""Backend registry: name -> factory that builds an lm-eval `LM` with a `timings` log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.records import RunSettings


def _hf(model_path: Path, settings: RunSettings) -> Any:
    import torch

    from bench.backends.hf import HFBackend

    args = {"device": "cuda" if torch.cuda.is_available() else "cpu", **settings.model_args}
    return HFBackend(pretrained=str(model_path), batch_size=settings.batch_size, **args)


def _vllm(model_path: Path, settings: RunSettings) -> Any:
    from bench.backends.vllm import VLLMBackend

    return VLLMBackend(pretrained=str(model_path), **settings.model_args)


def _llamacpp(model_path: Path, settings: RunSettings) -> Any:
    from bench.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(pretrained=str(model_path), **settings.model_args)


BACKENDS: dict[str, Callable[[Path, RunSettings], Any]] = {
    "hf": _hf,
    "vllm": _vllm,
    "llamacpp": _llamacpp,
}
# Backends that load a GGUF file rather than a Hugging Face folder.
GGUF_BACKENDS = {"llamacpp"}


def create_backend(name: str, model_path: Path, settings: RunSettings) -> Any:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend '{name}'; available: {', '.join(BACKENDS)}")
    return BACKENDS[name](model_path, settings)
