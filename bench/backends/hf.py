"""Hugging Face transformers backend.

Model loading, tokenization and chat templates come from lm-eval's HFLM, so a prompt is
tokenized exactly as `lm_eval --model hf` tokenizes it. The request loops are ours (see
TimedLM), and they do only the work that is read:

- the choices of a multiple-choice question share one context: it goes through the
  model once, and the choices' continuations go on top of its KV cache, several
  questions per batch (shared_context.py; lm-eval forwards context+choice once per
  choice);
- the output layer and log-softmax are computed only at the positions that are read;
- other rows (long ones, rolling windows) are batched by length as lm-eval batches them,
  identical rows once; every batch is timed.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import postprocess_generated_text

from bench.backends.base import Done, GenerationSpec, Scored, TimedLM, TokenPair, batches
from bench.backends.shared_context import (
    Question,
    group_questions,
    question_batches,
    score_questions,
)
from bench.backends.timing import RequestTiming, split_time
from bench.errors import BadInput
from bench.records import Determinism

# What the batches are, in the words the manifest keeps (RowBatch, _plan, generate).
BATCHING = (
    "choices sharing a context: the context once, the choices on its KV cache, "
    "batch-size questions per batch, longest context first, ties in token order; other "
    "scored rows longest first, ties in token order, batch-size rows per batch "
    "(identical rows once); rolling windows in request order; generation "
    "prompts longest first, ties by text"
)


@dataclass(frozen=True)
class GenerationBatch:
    """Prompts tokenized for one `generate` call, and its settings."""

    context: torch.Tensor
    attention: torch.Tensor
    max_length: int
    until: list[str]
    kwargs: dict


@dataclass(frozen=True)
class RowBatch:
    """Input rows that go through the model together, longest first, and for each row
    the (index, continuation tokens) of the requests it answers."""

    rows: list[tuple[int, ...]]
    owners: list[list[tuple[int, list[int]]]]


class HFBackend(TimedLM, HFLM):
    """lm-eval `LM` over transformers, with per-request timing in `self.timings`."""

    def __init__(self, *args, **kwargs):
        threads = fix_arithmetic()  # before the model loads (and cuBLAS starts)
        super().__init__(*args, **kwargs)
        self.determinism = Determinism(
            threads=threads,
            deterministic_algorithms=torch.are_deterministic_algorithms_enabled(),
            batching=f"{BATCHING}; {self._batch} per batch",
        )

    @property
    def _batch(self) -> int:
        size = self.batch_size
        return int(size) if str(size).isdigit() else 1

    @property
    def rolling_group_size(self) -> int:  # type: ignore[override]
        # Rolling windows go batch by batch in request order, as in HFLM: float32 sums
        # over long texts change in their last bits with the batch's shape.
        return self._batch

    def score_pairs(
        self, pairs: list[TokenPair], request_type: str, done: Done = None
    ) -> list[Scored]:
        questions, rest = group_questions(pairs, self.max_length)
        results: list[Scored | None] = [None] * len(pairs)

        def finish(i: int, scored: Scored) -> None:
            results[i] = scored
            if done:
                done(i, scored)

        for batch in question_batches(questions, self._batch):
            scores, elapsed = timed(self._score_questions, batch)
            shares = iter(split_time(elapsed, [n for q in batch for n in q.tokens]))
            for question, question_scores in zip(batch, scores, strict=True):
                for (i, cont), (logprob, greedy) in zip(
                    question.owners, question_scores, strict=True
                ):
                    timing = RequestTiming(
                        request_type=request_type,
                        wall_s=next(shares),
                        prompt_tokens=len(question.context),
                        completion_tokens=len(cont),
                        batch_size=sum(len(q.owners) for q in batch),
                        # The context went through once for all the choices; each choice's
                        # tokens but its last went on its cache (padding not counted).
                        computed_tokens=(
                            len(question.context) / len(question.owners) + len(cont) - 1
                        ),
                    )
                    finish(i, (logprob, greedy, timing))
        if rest:
            scored = self.score_groups(
                [[pairs[i] for i in rest]], request_type, lambda j, x: finish(rest[j], x)
            )
            for i, x in zip(rest, scored, strict=True):
                results[i] = x
        return results  # type: ignore[return-value]

    def _score_questions(self, batch: list[Question]) -> list[list[tuple[float, bool]]]:
        with self._inference():
            scores = score_questions(
                self.model, batch, self.device, self._keeps_positions, self.softmax_dtype
            )
        self._wait_for_device()
        return scores

    @contextmanager
    def _inference(self) -> Iterator[None]:
        """No autograd, and the autocast lm-eval's HFLM uses for its model calls."""
        with (
            torch.no_grad(),
            torch.autocast(
                device_type=self.device.type,
                dtype=self.mixed_precision_dtype,
                enabled=self.mixed_precision_dtype is not None,
            ),
        ):
            yield

    def _forward(self, inputs: torch.Tensor, logits_to_keep: int | None = None, **kwargs):
        if logits_to_keep is not None and self._keeps_positions:
            kwargs["logits_to_keep"] = logits_to_keep
        return self.model(inputs, **kwargs)

    def score_groups(
        self, groups: list[list[TokenPair]], request_type: str, done: Done = None
    ) -> list[Scored]:
        """Log-probability and greedy flag of every continuation. Each group forms its own
        batches, longest inputs first."""
        plan: list[RowBatch] = []
        offset = 0
        for pairs in groups:
            plan += self._plan(pairs, offset)
            offset += len(pairs)
        results: list[Scored | None] = [None] * offset
        for batch in plan:
            scores, elapsed = timed(self._score_batch, batch)
            shares = split_time(elapsed, [len(inp) for inp in batch.rows])
            for inp, owners, share, row_scores in zip(
                batch.rows, batch.owners, shares, scores, strict=True
            ):
                for (i, cont), (logprob, greedy) in zip(owners, row_scores, strict=True):
                    timing = RequestTiming(
                        request_type=request_type,
                        wall_s=share / len(owners),
                        prompt_tokens=len(inp) + 1 - len(cont),
                        completion_tokens=len(cont),
                        batch_size=len(batch.rows),
                        computed_tokens=len(inp) / len(owners),  # identical rows: once
                    )
                    results[i] = (logprob, greedy, timing)
                    if done:
                        done(i, results[i])
        return results  # type: ignore[return-value]

    def _plan(self, pairs: list[TokenPair], offset: int) -> list[RowBatch]:
        """The batches lm-eval's HFLM forms for these pairs; pairs whose input rows are
        identical share one row (the model sees context+continuation minus its last token)."""
        rows: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
        for i, (context, continuation) in enumerate(pairs):
            if not continuation:
                raise ValueError("loglikelihood request with an empty continuation")
            inp = tuple((context + continuation)[-(self.max_length + 1) :][:-1])
            rows.setdefault(inp, []).append((offset + i, continuation))
        # Longest first, ties in token order: the same batches lm-eval's HFLM forms.
        order = sorted(rows, key=lambda inp: (-len(inp), inp))
        return [RowBatch(b, [rows[inp] for inp in b]) for b in batches(order, self._batch)]

    def _first(self, batch: RowBatch) -> int:
        """First position whose logits some row of the batch reads."""
        return min(
            len(inp) - max(len(cont) for _, cont in owners)
            for inp, owners in zip(batch.rows, batch.owners, strict=True)
        )

    def _score_batch(self, batch: RowBatch) -> list[list[tuple[float, bool]]]:
        """(log-probability, greedy?) of each row's owners, from one forward pass."""
        width = len(batch.rows[0])
        padded = torch.zeros((len(batch.rows), width), dtype=torch.long)
        for r, inp in enumerate(batch.rows):
            padded[r, : len(inp)] = torch.tensor(inp, dtype=torch.long)
        first = self._first(batch)
        logprobs = F.log_softmax(
            self._logits_from(padded.to(self.device), first), dim=-1, dtype=self.softmax_dtype
        )
        self._wait_for_device()
        scores: list[list[tuple[float, bool]]] = []
        for r, (inp, owners) in enumerate(zip(batch.rows, batch.owners, strict=True)):
            scores.append([])
            for _, cont in owners:
                span = logprobs[r, len(inp) - len(cont) - first : len(inp) - first]
                target = torch.tensor(cont, dtype=torch.long, device=span.device)
                token_lp = span.gather(1, target.unsqueeze(1)).squeeze(1)
                greedy = bool((span.argmax(dim=-1) == target).all())
                scores[-1].append((float(token_lp.sum()), greedy))
        return scores

    @cached_property
    def _keeps_positions(self) -> bool:
        return "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def _logits_from(self, inputs: torch.Tensor, first: int) -> torch.Tensor:
        """Logits of positions `first`.. only: the output layer is a fifth of a small
        model's arithmetic and most positions of a scored row are context. Equal to the
        full matrix's rows within float tolerance (tests/test_speedups.py)."""
        if not self._keeps_positions or first == 0:
            return self._model_call(inputs)[:, first:]
        keep = torch.arange(first, inputs.shape[1], device=inputs.device)
        with self._inference():
            return self.model(inputs, logits_to_keep=keep).logits

    def _wait_for_device(self) -> None:
        """A GPU runs kernels after the call that queued them returns: wait for them, so
        that a batch's recorded time is its arithmetic, not its launch."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def generate(
        self, prompts: list[str], spec: GenerationSpec, done: Done = None
    ) -> list[tuple[str, RequestTiming]]:
        # Prompts are cut on the left to what the model reads; only their tails are
        # tokenized (TimedLM.text_tail).
        limit = self.max_length - spec.max_gen_toks
        if limit > 0:
            prompts = [self.text_tail(p, limit) for p in prompts]
        # Longest prompt first, ties by text: the batches lm-eval's HFLM forms (among
        # prompts that fit; longer ones count as the tokens the model reads).
        lengths = [len(self.tok_encode(p)) for p in prompts]
        if limit > 0:
            lengths = [min(n, limit) for n in lengths]
        order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], prompts[i]))
        results: list[tuple[str, RequestTiming] | None] = [None] * len(prompts)
        for batch in batches(order, self._batch):
            job = self._encode_batch([prompts[i] for i in batch], spec)
            generated, elapsed = timed(self._generate_ids, job)
            shares = split_time(elapsed, [1] * len(batch))
            for i, row, share in zip(batch, generated.tolist(), shares, strict=True):
                text, count = self._text_of(row[job.context.shape[1] :], spec)
                timing = RequestTiming(
                    "generate_until",
                    share,
                    lengths[i],
                    count,
                    len(batch),
                    computed_tokens=lengths[i] + count,  # padding not counted
                )
                results[i] = (text, timing)
                if done:
                    done(i, results[i])
        return results  # type: ignore[return-value]

    def _encode_batch(self, contexts: list[str], spec: GenerationSpec) -> GenerationBatch:
        kwargs = dict(spec.kwargs)
        context, attention = self.tok_batch_encode(
            contexts,
            left_truncate_len=self.max_length - spec.max_gen_toks,
            truncation=self.truncation,
        )
        max_length = kwargs.pop("max_length", context.shape[1] + spec.max_gen_toks)
        return GenerationBatch(
            context.to(self.device), attention.to(self.device), max_length, spec.until, kwargs
        )

    def _generate_ids(self, job: GenerationBatch) -> torch.Tensor:
        generated = self._model_generate(
            context=job.context,
            attention_mask=job.attention,
            stop=job.until,
            max_length=job.max_length,
            **job.kwargs,
        )
        self._wait_for_device()
        return generated

    def _text_of(self, new_tokens: list[int], spec: GenerationSpec) -> tuple[str, int]:
        """A row's generated text, cut at the stop sequences, and its token count."""
        pad = self.tokenizer.pad_token_id
        while new_tokens and new_tokens[-1] == pad:
            new_tokens.pop()
        text = postprocess_generated_text(self.tok_decode(new_tokens), spec.until, None)
        return text, len(new_tokens)


def fix_arithmetic() -> int:
    """The same requests give the same bits in every run on this machine: a fixed number
    of CPU threads (a reduction split among other threads sums in another order), MKL
    not choosing its own thread count as it goes (torch.set_num_threads turns that off;
    MKL_DYNAMIC=FALSE before torch starts MKL), and torch's deterministic kernels where
    an operation has several. BENCH_THREADS=N sets the thread count; by default it is
    torch's own (OMP_NUM_THREADS, else one per core). Returns the thread count."""
    threads = _threads_wanted() or torch.get_num_threads()
    torch.set_num_threads(threads)
    # cuBLAS is deterministic with a fixed workspace, which torch asks for once
    # deterministic algorithms are on (without a GPU nothing reads it).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # warn_only: an operation with no deterministic kernel warns (--verbose shows it)
    # rather than stopping the run.
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Deterministic mode would also fill every new tensor with NaN, a pass over memory
    # that the model's kernels overwrite anyway.
    torch.utils.deterministic.fill_uninitialized_memory = False
    return threads


def _threads_wanted() -> int | None:
    value = os.environ.get("BENCH_THREADS", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise BadInput(f"BENCH_THREADS={value}: give a whole number of threads, 1 or more")
    return int(value)


def timed(compute, batch):
    """compute(batch) and its wall seconds."""
    start = time.perf_counter()
    result = compute(batch)
    return result, time.perf_counter() - start
