"""The raw backend: plain transformers doing the forward passes the large workload needs.

From lm_eval's own requests (read back from its log_samples), tokenized by lm-eval's HF
class exactly as both harnesses tokenize them:
- multiple choice, as bench's hf backend does it: the very function it calls
  (bench/backends/shared_context.py `score_questions`), batch-size questions per batch,
  each context once, the choices' further tokens on its KV cache, timed here without
  the harness around it (the workload has no request that shares no context).
  `plan_choices` also
  gives the rows lm-eval forms (context + continuation minus its last token, identical
  rows once, longest first, batches of the batch size), for the token count;
- generations: prompts longest first, batches of the batch size, left-padded, one greedy
  `model.generate` per batch with max_new_tokens and lm-eval's stop-sequence criterion
  (so a batch stops where both harnesses stop it).

Under torch.inference_mode, same dtype and batch size as the runs. It also counts the
tokens each harness puts through the model for the same work (`TokenCount`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from large_samples import ChoiceRequest, GenRequest

from bench.backends.shared_context import (
    Question,
    group_questions,
    question_batches,
    score_questions,
)


@dataclass(frozen=True)
class ScoreBatch:
    """Input rows that go through the model together, longest first, and for each row
    the (request index, continuation tokens) it answers."""

    rows: list[tuple[int, ...]]
    owners: list[list[tuple[int, list[int]]]]

    @property
    def width(self) -> int:
        return len(self.rows[0])

    @property
    def first(self) -> int:
        """First position whose logits some row reads."""
        return min(
            len(row) - max(len(cont) for _, cont in owners)
            for row, owners in zip(self.rows, self.owners, strict=True)
        )


@dataclass(frozen=True)
class TokenCount:
    """Tokens through the model for the multiple-choice requests."""

    requests: int
    request_tokens: int  # context + continuation of every request, before merging
    rows: int  # forward rows after identical rows are merged
    tokens: int  # their tokens, no padding
    padded: int  # batch size x width, summed over batches
    logit_positions: int  # positions whose output layer (vocabulary logits) is computed


@dataclass(frozen=True)
class GenCount:
    """Tokens through the model for the generations, from the replay's batches."""

    prompt_tokens: int  # no padding
    prefill_padded: int  # batch size x prompt width, summed over batches
    decode_tokens: int  # batch size x (new tokens - 1): one token per row per later step


@dataclass(frozen=True)
class RawTimes:
    choice_s: float
    gen_s: float
    lls: list[float]  # per choice request, in request order
    texts: list[str]  # per generation request, in request order
    gen_count: GenCount


class RawModel:
    """The pack loaded with AutoModelForCausalLM, and lm-eval's tokenization of it."""

    def __init__(self, model_dir: Path, dtype: str, batch_size: int):
        import torch
        import transformers
        from lm_eval.models.huggingface import HFLM

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=getattr(torch, dtype)
        ).to(self.device)
        self.model.eval()
        # Only for tokenizing: lm-eval's HF class over this very model object (it warns
        # that a model object, not a name, came in: expected here).
        quiet = logging.getLogger("lm_eval")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            self.lm = HFLM(pretrained=self.model, tokenizer=tokenizer, batch_size=batch_size)
        finally:
            quiet.setLevel(level)
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    # -- planning (no model calls) ---------------------------------------------------

    def plan_choices(self, requests: list[ChoiceRequest]) -> list[ScoreBatch]:
        rows: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
        for i, request in enumerate(requests):
            context, continuation = self.lm._encode_pair(request.context, request.continuation)
            row = tuple((context + continuation)[-(self.lm.max_length + 1) :][:-1])
            rows.setdefault(row, []).append((i, continuation))
        order = sorted(rows, key=lambda row: (-len(row), row))
        size = self.batch_size
        return [
            ScoreBatch(order[s : s + size], [rows[row] for row in order[s : s + size]])
            for s in range(0, len(order), size)
        ]

    def plan_questions(self, requests: list[ChoiceRequest]) -> list[list[Question]]:
        """Requests grouped by their context tokens, in batches as bench forms them."""
        pairs = [self.lm._encode_pair(r.context, r.continuation) for r in requests]
        questions, alone = group_questions(pairs, self.lm.max_length)
        assert not alone, "every request of the workload shares its context"
        return question_batches(questions, self.batch_size)

    def plan_gens(self, requests: list[GenRequest]) -> list[list[int]]:
        lengths = [len(self.lm.tok_encode(r.prompt)) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: (-lengths[i], requests[i].prompt))
        return [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]

    # -- replay ------------------------------------------------------------------------

    def replay(self, choices: list[ChoiceRequest], gens: list[GenRequest]) -> RawTimes:
        with self.torch.inference_mode():
            choice_s, lls = self._score_questions(self.plan_questions(choices), len(choices))
            gen_s, texts, count = self._generate(gens)
        return RawTimes(choice_s, gen_s, lls, texts, count)

    def _sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def _score_questions(self, plan: list[list[Question]], n: int) -> tuple[float, list[float]]:
        """The shared-context passes, timed."""
        seconds, lls = 0.0, [0.0] * n
        for batch in plan:
            start = time.perf_counter()
            scores = score_questions(self.model, batch, self.model.device, keeps_positions=True)
            self._sync()
            seconds += time.perf_counter() - start
            for question, question_scores in zip(batch, scores, strict=True):
                for (i, _), (logprob, _) in zip(question.owners, question_scores, strict=True):
                    lls[i] = logprob
        return seconds, lls

    def _generate(self, requests: list[GenRequest]) -> tuple[float, list[str], GenCount]:
        from lm_eval.models.utils import handle_stop_sequences, postprocess_generated_text
        from lm_eval.models.utils_hf import stop_sequences_criteria

        eos = self.lm.tok_decode([self.lm.eot_token_id], skip_special_tokens=False)
        seconds, texts = 0.0, [""] * len(requests)
        prompt_tokens = prefill = decode = 0
        for batch in self.plan_gens(requests):
            kwargs = dict(requests[batch[0]].gen_kwargs)
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
            max_new = int(kwargs.pop("max_gen_toks", 256))
            context, attention = self.lm.tok_batch_encode(
                [requests[i].prompt for i in batch],
                left_truncate_len=self.lm.max_length - max_new,
            )
            context, attention = context.to(self.device), attention.to(self.device)
            criteria = stop_sequences_criteria(
                self.tokenizer, until, context.shape[1], context.shape[0]
            )
            start = time.perf_counter()
            out = self.model.generate(
                input_ids=context,
                attention_mask=attention,
                max_new_tokens=max_new,
                stopping_criteria=criteria,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
                use_cache=True,
            )
            self._sync()
            seconds += time.perf_counter() - start
            new = out.shape[1] - context.shape[1]
            prompt_tokens += int(attention.sum())
            prefill += context.numel()
            decode += len(batch) * max(new - 1, 0)
            for i, row in zip(batch, out[:, context.shape[1] :].tolist(), strict=True):
                texts[i] = postprocess_generated_text(self.lm.tok_decode(row), until, None)
        return seconds, texts, GenCount(prompt_tokens, prefill, decode)


def choice_counts(
    plan: list[ScoreBatch], batches: list[list[Question]], requests: int
) -> tuple[TokenCount, TokenCount]:
    """(lm_eval's, bench's) tokens for the multiple-choice requests. lm-eval forwards one
    row per distinct context + continuation, in padded batches, and computes the output
    layer at every padded position. bench forwards a batch's contexts once each,
    right-padded to the longest (output layer at each context's last position, for every
    row), then one row per choice of its further tokens, right-padded to the longest
    choice of the batch (output layer at each of them)."""
    pairs = [(row, owners) for b in plan for row, owners in zip(b.rows, b.owners, strict=True)]
    asked = sum((len(row) + 1) * len(owners) for row, owners in pairs)
    rows = sum(len(b.rows) for b in plan)
    tokens = sum(len(row) for b in plan for row in b.rows)
    padded = sum(len(b.rows) * b.width for b in plan)
    lm = TokenCount(requests, asked, rows, tokens, padded, padded)
    bench_rows = bench_tokens = bench_padded = bench_logits = 0
    for batch in batches:
        conts = [cont for q in batch for _, cont in q.owners]
        rest = max(len(c) for c in conts) - 1
        width = max(len(q.context) for q in batch)
        ends = len({len(q.context) for q in batch})
        bench_rows += len(batch) + (len(conts) if rest else 0)
        bench_tokens += sum(len(q.context) for q in batch) + sum(len(c) - 1 for c in conts)
        bench_padded += len(batch) * width + len(conts) * rest
        bench_logits += len(batch) * ends + len(conts) * rest
    bench = TokenCount(requests, asked, bench_rows, bench_tokens, bench_padded, bench_logits)
    return lm, bench
