"""Overhead: bench against the raw backend on the very same requests.

hf: runs `bench.api.run` in this process (SmolLM2 pack, default suite tasks, fresh store,
no request cache) while recording every batch the backend hands to transformers, then
replays those batches with plain transformers calls on the same model object: a forward
pass (logits of the same positions) plus log_softmax per scoring batch, `model.generate`
per generation batch (greedy, stopped at the length bench's call reached). Rounds
alternate bench and raw.

vllm (with --backend vllm, when `vllm` imports): the same with the vllm backend; the raw
replay sends the recorded `LLM.generate` calls again to the same engine, after clearing
its prefix cache, before the engine is shut down.

Prints three figures per backend:
- request path: time inside bench's backend (lm-eval's loglikelihood / generate_until
  calls: cache look-ups, tokenizing, batching, padding, scoring, timing) over the raw
  replay of its model calls;
- whole run: bench.api.run minus the model load (tasks, prompts, metrics, store) over
  the same replay;
- achieved FLOP/s of the raw replay over the machine's float32 matmul peak.

    python benchmarks/overhead.py [--rounds 2] [--backend hf|vllm] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from common import DEFAULT_TASKS, PACK, load_average, matmul_peak, median, pack_dir, parameter_count

# The recorder wraps the backend's methods in this process: the model must load here too,
# not in its own process (bench/backends/process.py, which adds a pipe and nothing else).
os.environ["BENCH_MODEL_PROCESS"] = "0"


class Recorder:
    """Wraps methods on a class: times each call and keeps what it was called with."""

    def __init__(self):
        self.calls: list[tuple[str, tuple, dict, object]] = []
        self.seconds: dict[str, float] = {}
        self.instance = None
        self.wrapped: list[tuple[type, str, object]] = []

    def wrap(self, cls, name: str, keep: bool) -> None:
        original = getattr(cls, name)
        recorder = self
        self.wrapped.append((cls, name, cls.__dict__.get(name)))

        def wrapper(self, *args, **kwargs):
            recorder.instance = self
            start = time.perf_counter()
            out = original(self, *args, **kwargs)
            recorder.seconds[name] = recorder.seconds.get(name, 0.0) + time.perf_counter() - start
            if keep:
                recorder.calls.append((name, args, kwargs, out))
            return out

        setattr(cls, name, wrapper)

    def unwrap(self) -> None:
        for cls, name, own in self.wrapped:
            if own is None:
                delattr(cls, name)  # the inherited method shows through again
            else:
                setattr(cls, name, own)
        self.wrapped = []


def bench_run(backend: str, limit: int | None, work: Path, round_: int):
    from bench import api
    from bench.records import RunPlan, RunSettings

    args = {"dtype": "float32"} if backend == "hf" else {}
    plan = RunPlan(
        models=[PACK],
        tasks=list(DEFAULT_TASKS),
        settings=RunSettings(backend=backend, model_args=args, limit=limit, use_cache=False),
    )
    start = time.perf_counter()
    (record,) = api.run(plan, f"sqlite:///{work / f'overhead-{backend}-{round_}.db'}")
    return time.perf_counter() - start - record.manifest.load_s, record


def replay_hf(model, tokenizer, calls) -> tuple[float, int]:
    """Seconds and tokens of plain transformers calls on the recorded batches."""
    import torch
    import torch.nn.functional as F

    seconds, tokens = 0.0, 0
    with torch.no_grad():
        for name, args, kwargs, out in calls:
            if name == "_logits_from":
                inps, first = args
                # The same positions bench asks for (it skips the output layer elsewhere).
                keep = torch.arange(first, inps.shape[1]) if first else 0
                start = time.perf_counter()
                F.log_softmax(model(inps, logits_to_keep=keep).logits, dim=-1)
                seconds += time.perf_counter() - start
                tokens += inps.numel()
            else:  # _model_generate(context, max_length, stop, **kwargs)
                context = kwargs["context"]
                start = time.perf_counter()
                generated = model.generate(
                    input_ids=context,
                    attention_mask=kwargs.get("attention_mask"),
                    max_length=out.shape[1],
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    use_cache=True,
                )
                seconds += time.perf_counter() - start
                tokens += generated.numel()
    return seconds, tokens


def measure_hf(args, work: Path, round_: int) -> dict[str, float]:
    from bench.backends.hf import HFBackend

    recorder = Recorder()
    for name in ("_logits_from", "_model_generate"):
        recorder.wrap(HFBackend, name, keep=True)
    for name in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
        recorder.wrap(HFBackend, name, keep=False)
    try:
        whole, _ = bench_run("hf", args.limit, work, round_)
    finally:
        recorder.unwrap()
    backend = recorder.instance
    for module in backend.model.modules():  # plain transformers: no sliced products
        module.__dict__.pop("forward", None)
    raw, tokens = replay_hf(backend.model, backend.tokenizer, recorder.calls)
    path = sum(
        recorder.seconds.get(n, 0.0)
        for n in ("loglikelihood", "loglikelihood_rolling", "generate_until")
    )
    return {"whole": whole, "path": path, "raw": raw, "tokens": tokens}


def measure_vllm(args, work: Path, round_: int) -> dict[str, float]:
    from bench.backends.vllm import VLLMBackend

    recorder = Recorder()
    for name in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
        recorder.wrap(VLLMBackend, name, keep=False)
    sent: list[tuple[list, object]] = []
    raw = {"seconds": 0.0, "tokens": 0}
    original_close = VLLMBackend.close

    def record_llm(self):
        generate = self.llm.generate

        def recording(prompts, params, **kwargs):
            sent.append((prompts, params))
            return generate(prompts, params, **kwargs)

        self.llm.generate = recording
        return generate

    def replay_then_close(self):
        # Raw vllm.LLM calls on the same engine, prefix cache emptied first.
        self.llm.reset_prefix_cache()
        generate = self._raw_generate
        for prompts, params in sent:
            start = time.perf_counter()
            outputs = generate(prompts, params, use_tqdm=False)
            raw["seconds"] += time.perf_counter() - start
            raw["tokens"] += sum(
                len(o.prompt_token_ids) + len(o.outputs[0].token_ids) for o in outputs
            )
        original_close(self)

    original_init = VLLMBackend.__init__

    def init(self, *a, **kw):
        original_init(self, *a, **kw)
        self._raw_generate = record_llm(self)

    VLLMBackend.__init__, VLLMBackend.close = init, replay_then_close
    try:
        whole, _ = bench_run("vllm", args.limit, work, round_)
    finally:
        VLLMBackend.__init__, VLLMBackend.close = original_init, original_close
        recorder.unwrap()
    path = sum(recorder.seconds.values())
    return {"whole": whole, "path": path, "raw": raw["seconds"], "tokens": raw["tokens"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backend", choices=["hf", "vllm"], default="hf")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()

    model_dir = pack_dir(PACK)
    work = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    measure = measure_hf if args.backend == "hf" else measure_vllm
    print(f"{args.backend}, {PACK}, tasks {','.join(DEFAULT_TASKS)}; before: {load_average()}")
    rounds = []
    for round_ in range(args.rounds):
        figures = measure(args, work, round_)
        rounds.append(figures)
        print(
            f"round {round_ + 1}: raw model calls {figures['raw']:.2f} s, bench request path "
            f"{figures['path']:.2f} s ({figures['path'] / figures['raw']:.3f}x), bench whole "
            f"run (no load) {figures['whole']:.2f} s ({figures['whole'] / figures['raw']:.3f}x)"
        )
    print(f"after: {load_average()}")
    # The first round warms caches and allocators; later rounds are the figures. Each
    # round's ratio compares runs seconds apart, so a load change hits both alike.
    kept = rounds[1:] or rounds
    path = median([r["path"] / r["raw"] for r in kept])
    whole = median([r["whole"] / r["raw"] for r in kept])
    raw = median([r["raw"] for r in kept])
    print(f"\nmedian of {len(kept)} rounds' ratios (round 1 is warm-up):")
    print(f"request path over raw backend: {path:.3f}x ({(path - 1) * 100:+.1f}%)")
    print(f"whole run over raw backend:   {whole:.3f}x ({(whole - 1) * 100:+.1f}%)")
    peak = matmul_peak()
    params = parameter_count(model_dir)
    achieved = 2 * params * median([r["tokens"] for r in kept]) / raw
    print(
        f"raw backend: {achieved / 1e9:.1f} GFLOP/s of a measured {peak / 1e9:.1f} GFLOP/s "
        f"float32 matmul peak = {achieved / peak:.2f} (2 x {params / 1e6:.0f} M non-embedding "
        "parameters per token: a lower bound)"
    )


if __name__ == "__main__":
    main()
