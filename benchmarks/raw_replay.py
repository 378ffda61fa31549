"""The raw backend: plain transformers doing the forward passes the large workload needs.

From lm_eval's own requests (read back from its log_samples), tokenized by lm-eval's HF
class exactly as both harnesses tokenize them:
- multiple choice: the unique input rows (context + continuation minus its last token;
  two requests with the same row share it, as in bench's hf backend and lm-eval's
  one-token logits cache), longest first, in padded batches of the batch size; one
  `model(rows, logits_to_keep=...)` + log_softmax per batch, logits only from the first
  position some row of the batch reads (what bench's hf backend computes);
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

    def plan_gens(self, requests: list[GenRequest]) -> list[list[int]]:
        lengths = [len(self.lm.tok_encode(r.prompt)) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: (-lengths[i], requests[i].prompt))
        return [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]

    # -- replay ------------------------------------------------------------------------

    def replay(self, choices: list[ChoiceRequest], gens: list[GenRequest]) -> RawTimes:
        plan = self.plan_choices(choices)
        with self.torch.inference_mode():
            choice_s, lls = self._score(plan, len(choices))
            gen_s, texts, count = self._generate(gens)
        return RawTimes(choice_s, gen_s, lls, texts, count)

    def _sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def _score(self, plan: list[ScoreBatch], n: int) -> tuple[float, list[float]]:
        torch = self.torch
        seconds, lls = 0.0, [0.0] * n
        for batch in plan:
            padded = torch.zeros((len(batch.rows), batch.width), dtype=torch.long)
            for r, row in enumerate(batch.rows):
                padded[r, : len(row)] = torch.tensor(row, dtype=torch.long)
            padded = padded.to(self.device)
            first = batch.first
            keep = torch.arange(first, batch.width, device=self.device) if first else 0
            start = time.perf_counter()
            logits = self.model(padded, logits_to_keep=keep).logits
            logprobs = torch.log_softmax(logits, dim=-1)
            self._sync()
            seconds += time.perf_counter() - start
            # Read back outside the clock: a check that the replay did the same work.
            for r, (row, owners) in enumerate(zip(batch.rows, batch.owners, strict=True)):
                for i, cont in owners:
                    span = logprobs[r, len(row) - len(cont) - first : len(row) - first]
                    target = torch.tensor(cont, device=span.device).unsqueeze(1)
                    lls[i] = float(span.gather(1, target).sum())
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


def choice_counts(plan: list[ScoreBatch], requests: int) -> tuple[TokenCount, TokenCount]:
    """(lm_eval's, bench's) tokens for the multiple-choice requests. Both merge identical
    rows and form these batches; lm-eval's HF class computes the output layer at every
    padded position, bench's hf backend only from each batch's first read position."""
    pairs = [(row, owners) for b in plan for row, owners in zip(b.rows, b.owners, strict=True)]
    asked = sum((len(row) + 1) * len(owners) for row, owners in pairs)
    rows = sum(len(b.rows) for b in plan)
    tokens = sum(len(row) for b in plan for row in b.rows)
    padded = sum(len(b.rows) * b.width for b in plan)
    bench_logits = sum(len(b.rows) * (b.width - b.first) for b in plan)
    return (
        TokenCount(requests, asked, rows, tokens, padded, padded),
        TokenCount(requests, asked, rows, tokens, padded, bench_logits),
    )
