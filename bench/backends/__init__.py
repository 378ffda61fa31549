"""Backend registry: name -> factory that builds an lm-eval `LM` with a `timings` log."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BadInput
from bench.records import RunSettings
from bench.secrets import check_settings
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


def _vllm_engine_args() -> frozenset[str]:
    """What vLLM's LLM takes beyond VLLMBackend's own parameters: its keyword parameters
    and, through its **kwargs, the fields of EngineArgs."""
    import dataclasses

    from vllm import LLM
    from vllm.engine.arg_utils import EngineArgs

    return keyword_names(LLM) | {f.name for f in dataclasses.fields(EngineArgs)}


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


def keyword_names(target: Callable) -> frozenset[str]:
    """The parameters a class or function takes by name (not *args, **kwargs or self)."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(
        p.name for p in inspect.signature(target).parameters.values() if p.kind in named
    ) - {"self"}


@dataclass(frozen=True)
class ModelArgs:
    """The --model-args a backend takes: the keyword parameters of its constructor and of
    the library call it hands the rest to. Plain names, so that `bench run` checks them
    before it imports torch; tests/test_bad_input.py holds them against the installed
    signatures."""

    takes: frozenset[str]
    set_by_bench: Mapping[str, str]  # parameters bench fills itself -> what to use instead
    dtypes: tuple[str, ...] = ()  # the values its dtype parameters take
    # Names beyond `takes`, read from the library only as the backend loads (vLLM's 250
    # engine args: importing vLLM takes seconds).
    more: Callable[[], frozenset[str]] | None = None


DTYPE_ARGS = frozenset({"dtype", "torch_dtype", "softmax_dtype", "mixed_precision_dtype"})
# torch.dtype attributes a model runs in (tests check them against torch): "auto" is the
# checkpoint's own.
HF_DTYPES = ("auto", "float32", "float", "bfloat16", "float16", "half", "float64", "double")
VLLM_DTYPES = ("auto", "float32", "float", "bfloat16", "float16", "half")  # vLLM's ModelDType

# lm_eval.models.huggingface.HFLM's keyword parameters (HFBackend is an HFLM).
HFLM_ARGS = frozenset(
    """add_bos_token autogptq backend batch_size chat_template_args delta device dtype
    enable_thinking gguf_file gptqmodel logits_cache max_batch_size max_cpu_memory max_length
    max_memory_per_gpu mixed_precision_dtype offload_folder parallelize peft prefix_token_id
    pretrained revision softmax_dtype subfolder think_end_token tokenizer tp_plan truncation
    trust_remote_code use_fast_tokenizer""".split()
)
# HFLM passes the rest to transformers' PreTrainedModel.from_pretrained: its keyword
# parameters, and the names it reads from its own **kwargs.
FROM_PRETRAINED_ARGS = frozenset(
    """cache_dir config disable_mmap force_download fusion_config ignore_mismatched_sizes
    local_files_only pretrained_model_name_or_path revision token use_safetensors
    weights_only""".split()
)
FROM_PRETRAINED_KWARGS = frozenset(
    """adapter_kwargs adapter_name allow_all_kernels attn_implementation device_map
    device_mesh distributed_config dtype experts_implementation from_tf generation_config
    gguf_file kernel_config key_mapping low_cpu_mem_usage max_memory offload_buffers
    offload_folder output_loading_info proxies quantization_config state_dict subfolder
    tp_plan tp_size tqdm_class torch_dtype trust_remote_code use_kernels variant""".split()
)
# llama_cpp.Llama's keyword parameters (LlamaCppBackend passes it the rest).
LLAMA_ARGS = frozenset(
    """attention_type chat_format chat_handler draft_model embedding flash_attn kv_overrides
    last_n_tokens_size logits_all lora_base lora_path lora_scale main_gpu model_path n_batch
    n_ctx n_gpu_layers n_threads n_threads_batch n_ubatch no_perf numa offload_kqv op_offload
    pooling_type rope_freq_base rope_freq_scale rope_scaling_type seed split_mode spm_infill
    swa_full tensor_split tokenizer type_k type_v use_mlock use_mmap verbose vocab_only
    yarn_attn_factor yarn_beta_fast yarn_beta_slow yarn_ext_factor yarn_orig_ctx""".split()
)
LLAMACPP_BACKEND_ARGS = frozenset({"batch_size", "n_ctx", "n_threads", "pretrained", "seed"})
VLLM_BACKEND_ARGS = frozenset({"batch_size", "max_length", "pretrained", "seed"})
OPENAI_BACKEND_ARGS = frozenset(
    """api_key_env base_url batch_size concurrency max_length model retry_for_s seed timeout_s
    tokenizer""".split()
)
_MODEL = "the model comes from --model"

MODEL_ARGS: dict[str, ModelArgs] = {
    "hf": ModelArgs(
        HFLM_ARGS | FROM_PRETRAINED_ARGS | FROM_PRETRAINED_KWARGS,
        {
            "pretrained": _MODEL,
            "pretrained_model_name_or_path": _MODEL,
            "batch_size": "use --batch-size",
        },
        HF_DTYPES,
    ),
    "vllm": ModelArgs(
        VLLM_BACKEND_ARGS, {"pretrained": _MODEL, "model": _MODEL}, VLLM_DTYPES, _vllm_engine_args
    ),
    "llamacpp": ModelArgs(
        LLAMACPP_BACKEND_ARGS | LLAMA_ARGS,
        {
            "pretrained": _MODEL,
            "model_path": _MODEL,
            "logits_all": "bench turns it on (prompt scores need every position's logits)",
            "verbose": "bench keeps llama.cpp's own logs off",
        },
    ),
    "openai": ModelArgs(
        OPENAI_BACKEND_ARGS,
        {"base_url": "use --base-url", "concurrency": "use --concurrency"},
    ),
}


def check_model_args(backend: str, model_args: Mapping[str, Any], loading: bool = False) -> None:
    """Refuse a --model-args name the backend does not take, one bench sets from its own
    options, or a dtype it does not know, before any model loads. `loading`: the backend
    is about to load, so also ask its library about names only it knows (vLLM's)."""
    spec = MODEL_ARGS[backend]
    for name, value in model_args.items():
        if name in spec.set_by_bench:
            raise BadInput(f"--model-args {name} is set by bench: {spec.set_by_bench[name]}")
        # A notebook may pass torch.bfloat16 itself: its name is what counts.
        if (
            name in DTYPE_ARGS
            and spec.dtypes
            and str(value).removeprefix("torch.") not in spec.dtypes
        ):
            raise BadInput(
                f"--model-args {name}={value}: the {backend} backend knows no such dtype; "
                f"use one of {', '.join(spec.dtypes)}"
            )
    known = spec.takes
    if spec.more is not None:
        if not loading:
            return  # the rest is for the library, asked as the backend loads
        known = known | spec.more()
    unknown = [name for name in model_args if name not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise BadInput(
            f"--model-args {unknown[0]}: the {backend} backend takes no such argument{hint}"
        )


def create_backend(name: str, model_path: Path, settings: RunSettings) -> Any:
    if name not in BACKENDS:
        raise BadInput(f"unknown backend '{name}'; available: {', '.join(BACKENDS)}")
    # Every path to a model passes here (run, probe, a model process, a Ray worker): a
    # secret in its settings never reaches a backend, its logs or its error messages.
    check_settings(settings.model_args, settings.base_url)
    check_model_args(name, settings.model_args, loading=True)
    mark("model_load_start")
    backend = BACKENDS[name](model_path, settings)
    mark("model_loaded")
    return backend
