"""How big a model is, read from its files without loading it: parameters, weight bytes,
and KV-cache bytes per token (the inputs of MFU and MBU)."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelSize:
    params: int
    weight_bytes: int
    kv_bytes_per_token: int | None  # K and V of every layer for one token


def model_size(path: Path) -> ModelSize | None:
    """From a Hugging Face folder (safetensors headers + config.json) or a GGUF file;
    None where neither is there (a model only a server has)."""
    try:
        if path.is_file() and path.suffix == ".gguf":
            return _gguf(path)
        if path.is_dir() and any(path.glob("*.safetensors")):
            return _safetensors(path)
    except (OSError, ValueError, KeyError):
        return None
    return None


def _safetensors(folder: Path) -> ModelSize:
    params = weight_bytes = 0
    for file in sorted(folder.glob("*.safetensors")):
        with file.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        for name, tensor in header.items():
            if name == "__metadata__":
                continue
            params += math.prod(tensor["shape"])
            start, end = tensor["data_offsets"]
            weight_bytes += end - start
    config = json.loads((folder / "config.json").read_text())
    config = config.get("text_config", config)
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    element = weight_bytes / params if params else 2  # KV cache kept in the weights' dtype
    kv = 2 * config["num_hidden_layers"] * kv_heads * head_dim * element
    return ModelSize(params, weight_bytes, int(kv))


def _gguf(file: Path) -> ModelSize:
    from gguf import GGUFReader

    reader = GGUFReader(str(file))
    params = sum(int(t.n_elements) for t in reader.tensors)
    weight_bytes = sum(int(t.n_bytes) for t in reader.tensors)

    def value(key: str):
        field = reader.fields.get(key)
        return None if field is None else field.parts[field.data[0]].tolist()[0]

    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    layers = value(f"{arch}.block_count")
    heads = value(f"{arch}.attention.head_count")
    kv_heads = value(f"{arch}.attention.head_count_kv") or heads
    head_dim = value(f"{arch}.attention.key_length") or (
        value(f"{arch}.embedding_length") // heads if heads else None
    )
    kv = 2 * layers * kv_heads * head_dim * 2 if layers and kv_heads and head_dim else None
    return ModelSize(params, weight_bytes, kv)  # llama.cpp keeps its KV cache in f16
