"""Any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, Ollama ...).

Loglikelihood goes through /v1/completions with `echo` and `logprobs` (the server scores
the prompt's own tokens); generation streams from /v1/completions, or from
/v1/chat/completions with --apply-chat-template, so that time to first token and every
chunk's arrival are seen. Many requests are in flight at once (`concurrency`). Connection
errors, timeouts, 429 and 5xx are retried with exponential backoff for `retry_for_s`
seconds, then the run stops with an error naming the server and the last failure.

The API key is read from the environment variable named by `api_key_env` and lives only
in the request headers: it is never part of the settings that reach the store. Error
messages pass through `redact`, so neither a key the server echoes nor credentials in the
URL reach the terminal.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from lm_eval.api.instance import Instance
from lm_eval.models.utils import postprocess_generated_text

from bench.backends.base import Done, GenerationSpec, Scored, TimedLM, TokenPair
from bench.backends.timing import RequestTiming, served_tokens, served_usage
from bench.errors import RunFailed
from bench.secrets import redact

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
CHAT_MARKER = "\x00bench-chat:"  # prefix of a prompt that holds chat messages as JSON


class ServerUnavailableError(RunFailed):
    """The server did not answer within the retry budget."""


class ServerCapabilityError(RunFailed):
    """The server lacks something a task needs (echo + logprobs for loglikelihood)."""


class OpenAIBackend(TimedLM):
    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        tokenizer: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout_s: float = 120.0,
        retry_for_s: float = 120.0,
        max_length: int = 2048,
        seed: int = 1234,
        batch_size: int | str | None = None,
        **_: Any,
    ) -> None:
        super().__init__()
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        self.concurrency = int(concurrency)
        self._stopping = False
        self.retry_for_s = float(retry_for_s)
        self.seed = int(seed)
        self._max_length = int(max_length)
        key = os.environ.get(api_key_env, "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(float(timeout_s), connect=10.0),
            limits=httpx.Limits(max_connections=self.concurrency * 2),
        )
        self.model = model or self._served_model()
        self.tokenizer = _load_tokenizer(tokenizer) if tokenizer else None

    def close(self) -> None:
        self.client.close()

    # -- HTTP with retries -----------------------------------------------------------

    def _with_retries(self, call: Callable[[], Any], what: str) -> Any:
        """Run `call`; retry transport errors and retryable statuses with backoff."""
        first_failure, attempt, last = None, 0, ""
        while True:
            try:
                return call()
            except httpx.HTTPStatusError as err:
                if err.response.status_code not in RETRY_STATUS:
                    raise ServerCapabilityError(
                        redact(
                            f"{self.base_url} answered {what} with HTTP"
                            f" {err.response.status_code}: {err.response.text[:300]}"
                        )
                    ) from None
                last = f"HTTP {err.response.status_code}"
            except (httpx.TransportError, json.JSONDecodeError) as err:
                last = f"{type(err).__name__}: {err}"
            now = time.monotonic()
            first_failure = first_failure or now
            if now - first_failure >= self.retry_for_s or self._stopping:
                raise ServerUnavailableError(
                    redact(
                        f"server {self.base_url} did not answer {what} after {attempt + 1}"
                        f" attempts over {now - first_failure:.0f} s; last failure: {last}"
                    )
                )
            time.sleep(min(0.5 * 2**attempt, 8.0))
            attempt += 1

    def _post_json(self, path: str, body: dict) -> dict:
        def call() -> dict:
            response = self.client.post(self.base_url + path, json=body)
            response.raise_for_status()
            return response.json()

        return self._with_retries(call, path)

    def _served_model(self) -> str:
        def call() -> str:
            response = self.client.get(self.base_url + "/models")
            response.raise_for_status()
            return response.json()["data"][0]["id"]

        return self._with_retries(call, "/models")

    def _in_parallel(self, fn: Callable[[Any], Any], items: list) -> list:
        if len(items) <= 1 or self.concurrency <= 1:
            return [fn(item) for item in items]
        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        try:
            futures = [pool.submit(fn, item) for item in items]
            return [future.result() for future in futures]
        except BaseException:
            self._stopping = True  # requests still retrying give up at once
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # -- tokenization: the local tokenizer of the same model, where there is one ------

    def _need_tokenizer(self):
        if self.tokenizer is None:
            raise ServerCapabilityError(
                "this task needs a tokenizer: pass a local model as --model or "
                "--model-args tokenizer=DIR"
            )
        return self.tokenizer

    @property
    def eot_token_id(self) -> int | None:
        return self.tokenizer.eos_token_id if self.tokenizer else None

    @property
    def prefix_token_id(self) -> int:
        tok = self._need_tokenizer()
        return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id

    @property
    def max_length(self) -> int:
        return self._max_length

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **_) -> list[int]:
        kwargs = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        return self._need_tokenizer().encode(string, **kwargs)

    def tok_decode(self, tokens: list[int], skip_special_tokens: bool = True) -> str:
        if self.tokenizer is None:
            return ""
        return self.tokenizer.decode(tokens, skip_special_tokens=skip_special_tokens)

    @property
    def tokenizer_name(self) -> str:
        return self.model.replace("/", "__")

    def apply_chat_template(self, chat_history: list[dict], add_generation_prompt=True) -> str:
        # The server applies its own template; the messages travel as JSON.
        return CHAT_MARKER + json.dumps(chat_history)

    def generation_spec(self, gen_kwargs: dict) -> GenerationSpec:
        spec = super().generation_spec(gen_kwargs)
        return GenerationSpec([s for s in spec.until if s], spec.max_gen_toks, spec.kwargs)

    # -- loglikelihood: the server scores the echoed prompt ---------------------------

    def _answer_each(
        self,
        requests: list[Instance],
        request_type: str,
        answer: Callable[[Instance], tuple[Any, RequestTiming]],
    ) -> list[Any]:
        """Answer requests concurrently, logging each one the moment it completes, so a
        server failure later in the run loses nothing already answered."""
        todo = self._todo(requests, request_type)

        def one(req: Instance) -> None:
            result, timing = answer(req)
            self.timings.add(req, timing, result)

        try:
            self._in_parallel(one, [requests[i] for i in todo])
        finally:
            self.timings.flush()
        return [self.timings.answer(req) for req in requests]

    def loglikelihood(
        self, requests: list[Instance], disable_tqdm: bool = False
    ) -> list[tuple[float, bool]]:
        def score(req: Instance) -> tuple[tuple[float, bool], RequestTiming]:
            context, continuation = req.args
            # lm-eval's rule: trailing spaces of the context belong to the continuation.
            spaces = len(context) - len(context.rstrip())
            if spaces:
                context, continuation = context[:-spaces], context[-spaces:] + continuation
            if not context:
                context = self._prefix_text()
            logprob, greedy, timing = self._score_text(context, continuation, "loglikelihood")
            return (logprob, greedy), timing

        return self._answer_each(requests, "loglikelihood", score)

    def loglikelihood_rolling(
        self, requests: list[Instance], disable_tqdm: bool = False
    ) -> list[float]:
        def score(req: Instance) -> tuple[float, RequestTiming]:
            # The first token is conditioned on the prefix token, as lm-eval does.
            logprob, _, timing = self._score_text(
                self._prefix_text(), req.args[0], "loglikelihood_rolling"
            )
            return logprob, timing

        return self._answer_each(requests, "loglikelihood_rolling", score)

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        return self._answer_each(
            requests,
            "generate_until",
            lambda req: self._stream(req.args[0], self.generation_spec(req.args[1])),
        )

    def _prefix_text(self) -> str:
        return self.tok_decode([self.prefix_token_id], skip_special_tokens=False)

    def _check_echo_logprobs(self) -> None:
        """Refuse servers whose echoed prompt logprobs disagree with their own sampling.

        The greedy next token of a probe prompt has a logprob as generated; echoed back
        as part of a prompt, its logprob must be the same. Some servers (llama-cpp-python)
        report each echoed token's logprob from the wrong position.
        """
        if getattr(self, "_echo_checked", False):
            return
        probe = "The capital of France is"
        base = {"model": self.model, "max_tokens": 1, "logprobs": 1, "temperature": 0.0}
        generated = self._post_json("/completions", {**base, "prompt": probe})
        choice = (generated.get("choices") or [{}])[0]
        next_text = choice.get("text") or ""
        next_lp = ((choice.get("logprobs") or {}).get("token_logprobs") or [None])[0]
        echoed = self._post_json(
            "/completions", {**base, "prompt": probe + next_text, "echo": True}
        )
        lps = (echoed.get("choices") or [{}])[0].get("logprobs") or {}
        offsets, values = lps.get("text_offset") or [], lps.get("token_logprobs") or []
        at_boundary = [v for o, v in zip(offsets, values, strict=False) if o == len(probe)]
        if next_lp is None or not at_boundary or abs(at_boundary[0] - next_lp) > 0.05:
            raise ServerCapabilityError(
                f"{redact(self.base_url)} does not return usable prompt logprobs (echo + "
                f"logprobs on /v1/completions: generated {next_text!r} at logprob {next_lp}, "
                f"echoed at {at_boundary[0] if at_boundary else 'nothing'}); loglikelihood and "
                "multiple-choice tasks cannot run against this server, generation tasks can"
            )
        self._echo_checked = True

    def _score_text(self, context: str, continuation: str, request_type: str) -> Scored:
        self._check_echo_logprobs()
        body = {
            "model": self.model,
            "prompt": context + continuation,
            "echo": True,
            "logprobs": 1,
            "max_tokens": 1,
            "temperature": 0.0,
        }
        start = time.perf_counter()
        answer = self._post_json("/completions", body)
        wall = time.perf_counter() - start
        logprobs = (answer.get("choices") or [{}])[0].get("logprobs") or {}
        offsets = logprobs.get("text_offset")
        token_lps = logprobs.get("token_logprobs")
        if not offsets or not token_lps or len(offsets) < 2:
            raise ServerCapabilityError(
                f"{redact(self.base_url)} does not return prompt logprobs (echo + logprobs on "
                "/v1/completions); loglikelihood tasks cannot run against it"
            )
        tokens = logprobs.get("tokens") or []
        top = logprobs.get("top_logprobs") or [None] * len(tokens)
        boundary = len(context)
        # Echoed prompt tokens come first (some servers add the generated token, some do
        # not); a token that straddles the context/continuation boundary is continuation.
        n_prompt = sum(1 for offset in offsets if offset < len(body["prompt"]))
        cont = [
            i
            for i in range(n_prompt)
            if offsets[i] + len(tokens[i]) > boundary and token_lps[i] is not None
        ]
        logprob = float(sum(token_lps[i] for i in cont))
        greedy = all(top[i] and max(top[i], key=top[i].get) == tokens[i] for i in cont)
        timing = RequestTiming(
            request_type,
            wall,
            n_prompt - len(cont),
            len(cont),
            1,
            computed_tokens=served_tokens(answer.get("usage"), 0),
        )
        return logprob, greedy, timing

    def score_pairs(
        self, pairs: list[TokenPair], request_type: str, done: Done = None
    ) -> list[Scored]:
        tok = self._need_tokenizer()
        return self._in_parallel(
            lambda pair: self._score_text(tok.decode(pair[0]), tok.decode(pair[1]), request_type),
            pairs,
        )

    # -- generation: streamed -----------------------------------------------------------

    def generate(
        self, prompts: list[str], spec: GenerationSpec, done: Done = None
    ) -> list[tuple[str, RequestTiming]]:
        return self._in_parallel(lambda prompt: self._stream(prompt, spec), prompts)

    def stream(
        self, prompt: str, spec: GenerationSpec, extra_body: dict | None = None
    ) -> tuple[str, RequestTiming]:
        """One streamed generation, timed (the latency probe's path; `extra_body` adds
        server-specific fields such as vLLM's ignore_eos)."""
        return self._stream(prompt, spec, extra_body)

    def _stream(
        self, prompt: str, spec: GenerationSpec, extra_body: dict | None = None
    ) -> tuple[str, RequestTiming]:
        chat = prompt.startswith(CHAT_MARKER)
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": spec.max_gen_toks,
            "temperature": spec.temperature,
            "seed": self.seed,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if spec.until:
            body["stop"] = spec.until
        for key in ("top_p", "top_k"):
            if key in spec.kwargs:
                body[key] = spec.kwargs[key]
        if chat:
            body["messages"] = json.loads(prompt[len(CHAT_MARKER) :])
            path = "/chat/completions"
        else:
            body["prompt"] = prompt
            path = "/completions"
        body.update(extra_body or {})

        def call() -> tuple[str, RequestTiming]:
            start = time.perf_counter()
            pieces, chunk_times, ttft, usage = [], [], None, None
            with self.client.stream("POST", self.base_url + path, json=body) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    event = json.loads(data)
                    usage = served_usage(event, usage)
                    for choice in event.get("choices") or []:
                        now = time.perf_counter() - start
                        text, carries = _chunk_text(choice, chat)
                        if carries:
                            chunk_times.append(now)
                            ttft = ttft if ttft is not None else now
                        if text:
                            pieces.append(text)
            wall = time.perf_counter() - start
            text = "".join(pieces)
            prompt_tokens, completion_tokens, counted_by = self._count(prompt, text, usage)
            timing = RequestTiming(
                "generate_until",
                wall,
                prompt_tokens,
                completion_tokens,
                1,
                ttft_s=ttft,
                chunk_times=chunk_times,
                tokens_counted_by=counted_by,
                computed_tokens=served_tokens(usage, completion_tokens),
            )
            return postprocess_generated_text(text, spec.until, None), timing

        return self._with_retries(call, path)

    def _count(self, prompt: str, text: str, usage: dict | None) -> tuple[int, int, str]:
        if usage and usage.get("completion_tokens") is not None:
            return int(usage.get("prompt_tokens") or 0), int(usage["completion_tokens"]), "usage"
        if self.tokenizer is not None:
            return (
                len(self.tokenizer.encode(prompt)),
                len(self.tokenizer.encode(text, add_special_tokens=False)),
                "tokenizer",
            )
        return 0, 0, "none"


def _chunk_text(choice: dict, chat: bool) -> tuple[str | None, bool]:
    """A streamed choice's text, and whether the chunk carries a token. A token may decode
    to no text (a special token, half a character), so an empty completion text counts,
    as in vLLM's benchmark client; a chat chunk that only announces the role does not."""
    if not chat:
        text = choice.get("text")
        return text, text is not None
    delta = choice.get("delta") or {}
    text = delta.get("content")
    return text, text is not None and not ("role" in delta and not text)


def _load_tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)
