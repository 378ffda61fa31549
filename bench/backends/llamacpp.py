"""llama.cpp backend (llama-cpp-python) for GGUF files, e.g. the packs' own. It runs in
the model process (bench/backends/process.py): a crash in llama.cpp's native code ends
that process only, and bench reports it.

llama.cpp runs one sequence at a time here, so requests are ordered to share prefixes:
the KV cache keeps the longest common prefix with the previous request and only the rest
is evaluated (multiple-choice answers share their question). Generation streams, so
time to first token and every token's arrival are recorded.
"""

from __future__ import annotations

import time

import numpy as np
from lm_eval.models.utils import postprocess_generated_text

from bench.backends.base import Done, GenerationSpec, Scored, TimedLM, TokenPair
from bench.backends.timing import RequestTiming


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class LlamaCppBackend(TimedLM):
    def __init__(
        self,
        pretrained: str,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        seed: int = 1234,
        batch_size: int | str | None = None,
        **llama_args,
    ) -> None:
        super().__init__()
        from llama_cpp import Llama

        self.llm = Llama(
            model_path=pretrained,
            n_ctx=int(n_ctx),
            n_threads=n_threads,
            seed=seed,
            logits_all=True,  # prompt logprobs need every position's logits
            verbose=False,
            **llama_args,
        )
        self.seed = seed
        self.add_bos = self.llm.metadata.get("tokenizer.ggml.add_bos_token", "true") == "true"

    def close(self) -> None:
        self.llm.close()

    # -- tokenization, with the GGUF's own tokenizer --------------------------------

    @property
    def eot_token_id(self) -> int:
        return self.llm.token_eos()

    @property
    def prefix_token_id(self) -> int:
        bos = self.llm.token_bos()
        return bos if bos >= 0 else self.llm.token_eos()

    @property
    def max_length(self) -> int:
        return self.llm.n_ctx()

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **_) -> list[int]:
        add_bos = self.add_bos if add_special_tokens is None else add_special_tokens
        return self.llm.tokenize(string.encode("utf-8"), add_bos=add_bos, special=True)

    def tok_decode(self, tokens: list[int], skip_special_tokens: bool = True) -> str:
        return self.llm.detokenize(tokens, special=not skip_special_tokens).decode(
            "utf-8", errors="replace"
        )

    @property
    def tokenizer_name(self) -> str:
        return self.llm.model_path.replace("/", "__")

    def apply_chat_template(self, chat_history: list[dict], add_generation_prompt=True) -> str:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{self.llm.model_path} has no chat template in its GGUF metadata")
        formatter = Jinja2ChatFormatter(
            template,
            eos_token=self.tok_decode([self.eot_token_id], False),
            bos_token=self.tok_decode([self.prefix_token_id], False),
            add_generation_prompt=add_generation_prompt,
        )
        return formatter(messages=chat_history).prompt

    # -- primitives --------------------------------------------------------------------

    def evaluated_tokens(self, since: int | None = None) -> int:
        """Tokens llama.cpp has run through the model in this context (its performance
        counters: tokens in prompt batches + single decode steps), or those since
        `since`: a prefix kept in the KV cache is not among them. llama.cpp reports no
        fewer than one decode step, so a context's first goes uncounted; every request
        evaluates at least one token."""
        from llama_cpp import llama_perf_context

        perf = llama_perf_context(self.llm.ctx)
        total = int(perf.n_p_eval) + int(perf.n_eval)
        return total if since is None else max(total - since, 1)

    def _evaluate(self, tokens: list[int]) -> np.ndarray:
        """Logits for every position of `tokens`, reusing the cached common prefix."""
        cached = self.llm.input_ids[: self.llm.n_tokens].tolist()  # now in the KV cache
        keep = min(common_prefix_length(cached, tokens), len(tokens) - 1)
        self.llm.n_tokens = keep  # llama.eval drops the KV cache beyond n_tokens
        self.llm.eval(tokens[keep:])
        return self.llm.scores[: len(tokens)]

    def score_pairs(
        self, pairs: list[TokenPair], request_type: str, done: Done = None
    ) -> list[Scored]:
        results: list[Scored | None] = [None] * len(pairs)
        # Sorted by tokens, so neighbours share the longest prefixes.
        order = sorted(range(len(pairs)), key=lambda i: pairs[i][0] + pairs[i][1])
        for i in order:
            context, continuation = pairs[i]
            tokens = (context + continuation)[-self.max_length :]
            evaluated = self.evaluated_tokens()
            start = time.perf_counter()
            logits = self._evaluate(tokens)
            n_cont = len(continuation)
            rows = _log_softmax(logits[len(tokens) - n_cont - 1 : len(tokens) - 1])
            targets = np.array(tokens[len(tokens) - n_cont :])
            logprob = float(rows[np.arange(n_cont), targets].sum())
            greedy = bool((rows.argmax(axis=-1) == targets).all())
            elapsed = time.perf_counter() - start
            timing = RequestTiming(
                request_type,
                elapsed,
                len(tokens) - n_cont,
                n_cont,
                1,
                computed_tokens=self.evaluated_tokens(since=evaluated),
            )
            results[i] = (logprob, greedy, timing)
            if done:
                done(i, results[i])
        return results  # type: ignore[return-value]

    def generate(
        self, prompts: list[str], spec: GenerationSpec, done: Done = None
    ) -> list[tuple[str, RequestTiming]]:
        results = []
        for index, prompt in enumerate(prompts):
            tokens = self.tok_encode(prompt)[-(self.max_length - spec.max_gen_toks) :]
            evaluated = self.evaluated_tokens()
            start = time.perf_counter()
            pieces, chunk_times, ttft = [], [], None
            for chunk in self.llm.create_completion(
                prompt=tokens,
                max_tokens=spec.max_gen_toks,
                temperature=spec.temperature,
                stop=spec.until,
                seed=self.seed,
                stream=True,
            ):
                now = time.perf_counter() - start
                text = chunk["choices"][0]["text"]
                chunk_times.append(now)
                if text and ttft is None:
                    ttft = now
                pieces.append(text)
            wall = time.perf_counter() - start
            text = "".join(pieces)
            timing = RequestTiming(
                "generate_until",
                wall,
                len(tokens),
                len(self.tok_encode(text, add_special_tokens=False)),
                1,
                ttft_s=ttft,
                chunk_times=chunk_times,
                tokens_counted_by="tokenizer",
                computed_tokens=self.evaluated_tokens(since=evaluated),
            )
            results.append((postprocess_generated_text(text, spec.until, None), timing))
            if done:
                done(index, results[-1])
        return results


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
