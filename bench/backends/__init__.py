"""Backend registry: name -> factory that builds an lm-eval `LM` with a `timings` log."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.errors import BadInput
from bench.records import RunSettings
from bench.trace import mark


def import_backend(name: str) -> None:
    """Import what building this backend needs, ahead of knowing the model (the hf
    backend's torch and transformers: most of its load time)."""
    if name == "hf":
        import torch  # noqa: F401

        import bench.backends.hf  # noqa: F401


def _hf(model_path: Path, settings: RunSettings) -> Any:
    import torch

    args = {"device": "cuda" if torch.cuda.is_available() else "cpu", **settings.model_args}
    from bench.backends.hf import HFBackend

    return HFBackend(pretrained=str(model_path), batch_size=settings.batch_size, **args)


def _vllm(model_path: Path, settings: RunSettings) -> Any:
    from bench.backends.vllm import VLLMBackend

    return VLLMBackend(pretrained=str(model_path), **settings.model_args)


def _llamacpp(model_path: Path, settings: RunSettings) -> Any:
    from bench.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(pretrained=str(model_path), **settings.model_args)


def _openai(model_path: Path, settings: RunSettings) -> Any:
    from bench.backends.openai import OpenAIBackend

    if not settings.base_url:
        raise BadInput("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
    local = str(model_path) not in ("", ".") and (model_path / "config.json").is_file()
    tokenizer = str(model_path) if local else None
    args = {"tokenizer": tokenizer, **settings.model_args}
    return OpenAIBackend(settings.base_url, concurrency=settings.concurrency, **args)


BACKENDS: dict[str, Callable[[Path, RunSettings], Any]] = {
    "hf": _hf,
    "vllm": _vllm,
    "llamacpp": _llamacpp,
    "openai": _openai,
}
# Backends that load a GGUF file rather than a Hugging Face folder.
GGUF_BACKENDS = {"llamacpp"}
# Backends that talk to a server; the model name may exist only there.
SERVER_BACKENDS = {"openai"}


def create_backend(name: str, model_path: Path, settings: RunSettings) -> Any:
    if name not in BACKENDS:
        raise BadInput(f"unknown backend '{name}'; available: {', '.join(BACKENDS)}")
    mark("model_load_start")
    backend = BACKENDS[name](model_path, settings)
    mark("model_loaded")
    return backend


SECRET_ARG = re.compile(r"(^|_)(key|token|secret|password)$", re.IGNORECASE)


def secret_model_args(model_args: dict) -> list[str]:
    """Model-args that look like secrets: these must come from the environment instead."""
    return [k for k in model_args if SECRET_ARG.search(k)]
