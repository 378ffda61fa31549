"""Per-request timing records that every backend fills in the same way."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class RequestKey:
    """Identifies one lm-eval request: which task, which document, which of its requests."""

    task: str
    doc_id: int
    idx: int


@dataclass
class RequestTiming:
    request_type: str  # loglikelihood | loglikelihood_rolling | generate_until
    wall_s: float  # send to last token; for batched backends, the request's share of its batch
    prompt_tokens: int
    completion_tokens: int
    batch_size: int  # requests that ran together (1 for a streamed request)
    # Streaming backends only: seconds from send to the first chunk carrying a token, and
    # to every chunk's arrival.
    ttft_s: float | None = None
    chunk_times: list[float] | None = None
    # Where completion_tokens came from: the backend's own count, a server's usage
    # report, or our tokenizer on the returned text.
    tokens_counted_by: str = "backend"
    # Tokens that went through the model for this request in this run (the MFU count,
    # docs/metrics.md): its input positions, less what a cache held; a context computed
    # once for several requests is split evenly among them (so a share may be
    # fractional), padding is not counted, 0 for an answer reused from the store. None
    # where the backend or server does not say (counted as prompt + completion).
    computed_tokens: float | None = None


@dataclass
class RequestLog:
    """What a backend was asked and answered, and how long each took, keyed by request.

    The engine joins timings to samples; after a failure mid-run, the answers of the
    documents whose every request was answered are replayed to score those documents.
    With a `cache` (bench.store.cache.RequestCache), answers are looked up before the
    model is asked and written to the store as they arrive, in small batches.
    """

    records: dict[RequestKey, RequestTiming] = field(default_factory=dict)
    answers: dict[RequestKey, Any] = field(default_factory=dict)
    asked: set[RequestKey] = field(default_factory=set)
    cache: Any = None
    sent: int = 0  # requests the model answered in this run
    reused: int = 0  # requests answered from the cache
    flush_every: int = 32
    # Told (answered, asked) as requests are asked and answered: a progress display.
    listener: Callable[[int, int], None] | None = None
    _pending: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def key(instance) -> RequestKey:
        return RequestKey(instance.task_name, int(instance.doc_id), int(instance.idx))

    def reuse(self, instances: list, request_type: str) -> set[int]:
        """Note the requests as asked; answer those the cache knows. Returns their indices."""
        self.asked.update(self.key(i) for i in instances)
        if self.cache is None or not instances:
            self._tell()
            return set()
        keys = [self.cache.key(request_type, i.args) for i in instances]
        found = self.cache.get_many(keys)
        hits = set()
        for index, (instance, key) in enumerate(zip(instances, keys, strict=True)):
            if key in found:
                answer, timing = found[key]
                if request_type == "loglikelihood":
                    answer = (float(answer[0]), bool(answer[1]))
                # The model computed nothing for it in this run.
                timing = RequestTiming(**{**timing, "computed_tokens": 0})
                self._record(instance, timing, answer)
                hits.add(index)
        self.reused += len(hits)
        self._tell()
        return hits

    def add(self, instance, timing: RequestTiming, answer: Any) -> None:
        with self._lock:
            self._record(instance, timing, answer)
            self.sent += 1
            if self.cache is not None:
                key = self.cache.key(timing.request_type, instance.args)
                self._pending.append((key, timing.request_type, answer, asdict(timing)))
                if len(self._pending) >= self.flush_every:
                    self.flush()
        self._tell()

    def _tell(self) -> None:
        if self.listener is not None:
            self.listener(len(self.answers), len(self.asked))

    def flush(self) -> None:
        if self.cache is not None and self._pending:
            rows, self._pending = self._pending, []
            self.cache.put_many(rows)

    def answer(self, instance) -> Any:
        return self.answers[self.key(instance)]

    def _record(self, instance, timing: RequestTiming, answer: Any) -> None:
        key = self.key(instance)
        self.records[key] = timing
        self.answers[key] = answer

    def by_doc(self) -> dict[tuple[str, int], list[RequestTiming]]:
        grouped: dict[tuple[str, int], list[RequestTiming]] = {}
        for key, timing in self.records.items():
            grouped.setdefault((key.task, key.doc_id), []).append(timing)
        return grouped

    def answered_docs(self) -> dict[str, list[int]]:
        """Task -> its first documents, 0 to n-1, whose every request asked so far has an
        answer. Only a first run of documents: lm-eval numbers a chosen subset 0..n-1 and
        draws its few-shot examples document after document, so only for those does a
        replay build the very prompts that were asked (later answers stay in the cache)."""
        asked: dict[str, set[int]] = {}
        pending: set[tuple[str, int]] = set()
        for key in self.asked:
            asked.setdefault(key.task, set()).add(key.doc_id)
            if key not in self.answers:
                pending.add((key.task, key.doc_id))
        docs: dict[str, list[int]] = {}
        for task, ids in sorted(asked.items()):
            first = 0
            while first in ids and (task, first) not in pending:
                first += 1
            if first:
                docs[task] = list(range(first))
        return docs


def split_time(total_s: float, weights: list[int]) -> list[float]:
    """Share a batch's wall time among its requests in proportion to their tokens."""
    whole = sum(weights) or len(weights)
    return [total_s * (w or 1) / whole for w in weights]


def served_usage(event: dict, usage: dict | None) -> dict | None:
    """A streamed server event's token report merged into what came before: the
    OpenAI-style `usage`, and llama.cpp server's `timings` (kept under "timings")."""
    usage = event.get("usage") or usage
    if isinstance(event.get("timings"), dict):
        usage = {**(usage or {}), "timings": event["timings"]}
    return usage


def served_tokens(usage: dict | None, completion_tokens: int) -> float | None:
    """Tokens a server says it computed for a request: llama.cpp server's evaluated
    prompt tokens (`timings.prompt_n`), or the prompt less its prefix-cache hit
    (`usage.prompt_tokens_details.cached_tokens`, vLLM and OpenAI), plus the completion;
    None where it says neither."""
    if not usage:
        return None
    timings = usage.get("timings") or {}
    if timings.get("prompt_n") is not None:
        return float(timings["prompt_n"]) + float(timings.get("predicted_n", completion_tokens))
    details = usage.get("prompt_tokens_details") or {}
    if details.get("cached_tokens") is not None and usage.get("prompt_tokens") is not None:
        return float(usage["prompt_tokens"]) - float(details["cached_tokens"]) + completion_tokens
    return None
