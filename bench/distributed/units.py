"""A run plan cut into work units, and the resources a model's worker asks the cluster for."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BadInput
from bench.records import RunSettings

GIB = 2**30


@dataclass(frozen=True)
class Resources:
    """What one worker (one loaded model) reserves on a Ray node."""

    num_cpus: float
    num_gpus: float
    memory: int | None  # bytes of host RAM; None when the weights are not here to measure

    def as_options(self) -> dict:
        options = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory:
            options["memory"] = self.memory
        return options

    def describe_columns(self) -> tuple[str, str, str]:
        memory = f"{self.memory / GIB:.1f} GiB" if self.memory else "?"
        return f"{self.num_cpus:g}", f"{self.num_gpus:g}", memory

    def describe(self) -> str:
        cpus, gpus, memory = self.describe_columns()
        return f"num_cpus={cpus} num_gpus={gpus} memory={memory}"


@dataclass(frozen=True)
class WorkUnit:
    """One model's answers to the documents [start, stop) of one task."""

    model: str
    task: str
    start: int
    stop: int

    @property
    def label(self) -> str:
        return f"{self.model} / {self.task} [{self.start}:{self.stop}]"


def _int_arg(settings: RunSettings, name: str, default: int = 1) -> int:
    value = settings.model_args.get(name, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadInput(f"--model-args {name}={value!r} is not a whole number") from None


def gpus_needed(settings: RunSettings) -> int:
    """GPUs one copy of the model occupies, from the backend and its parallel settings."""
    args = settings.model_args
    on_cpu = str(args.get("device", "")).startswith("cpu")
    if settings.backend == "vllm" and not on_cpu:
        # vLLM shards the model over tensor x pipeline parallel ranks, one GPU each.
        return _int_arg(settings, "tensor_parallel_size") * _int_arg(
            settings, "pipeline_parallel_size"
        )
    if settings.backend == "hf" and str(args.get("device", "")).startswith("cuda"):
        return 1
    if settings.backend == "llamacpp" and _int_arg(settings, "n_gpu_layers", 0) != 0:
        return 1
    return 0


def weights_bytes(model_path: Path | None) -> int | None:
    if model_path is None or not model_path.is_dir():
        return None
    files = [
        *model_path.glob("*.safetensors"),
        *model_path.glob("*.bin"),
        *model_path.glob("*.gguf"),
    ]
    return sum(f.stat().st_size for f in files) or None


def worker_resources(
    settings: RunSettings, model_path: Path | None, cpus_per_worker: float = 1
) -> Resources:
    if settings.backend == "openai":
        # A client of a server: a CPU for request building and tokenizing, little memory.
        return Resources(num_cpus=cpus_per_worker, num_gpus=0, memory=GIB // 2)
    gpus = gpus_needed(settings)
    size = weights_bytes(model_path)
    # Host RAM: the weights pass through it while loading (and stay there on CPU), plus
    # the interpreter, torch and lm-eval themselves.
    memory = (2 * size + GIB) if size else None
    return Resources(num_cpus=cpus_per_worker, num_gpus=gpus, memory=memory)


def doc_count(task, limit: float | None) -> int:
    """Documents lm-eval evaluates for `limit`, counted as lm-eval counts them."""
    total = len(task.eval_docs)
    if limit is None:
        return total
    return min(total, int(math.ceil(total * limit)) if limit < 1.0 else int(limit))


def split_units(
    models: list[str], counts: dict[str, int], shard_size: int | None
) -> list[WorkUnit]:
    """Every (model, task), cut into shards of at most shard_size documents."""
    units = []
    for model in models:
        for task, n in counts.items():
            size = shard_size or n or 1
            units.extend(
                WorkUnit(model, task, start, min(start + size, n)) for start in range(0, n, size)
            )
    return units
