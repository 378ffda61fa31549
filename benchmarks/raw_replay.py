"""The raw backend: plain transformers doing the forward passes the large workload needs.

From lm_eval's own requests (read back from its log_samples), tokenized by lm-eval's HF
class exactly as both harnesses tokenize them:
- multiple choice, as bench's hf backend does it (bench/backends/hf.py `_score_shared`):
  per question, its context once (`model(context, use_cache=True, logits_to_keep=1)`),
  then the choices' further tokens on that KV cache repeated over the choices; a request
  whose context no other request shares goes as a row of its own. `plan_choices` also
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
class Question:
    """Requests that share one context: (request index, continuation tokens) each."""

    context: tuple[int, ...]
    owners: list[tuple[int, list[int]]]


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

    def plan_questions(self, requests: list[ChoiceRequest]) -> list[Question]:
        """Requests grouped by their context tokens, in request order."""
        by_context: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
        for i, request in enumerate(requests):
            context, continuation = self.lm._encode_pair(request.context, request.continuation)
            by_context.setdefault(tuple(context), []).append((i, continuation))
        return [Question(context, owners) for context, owners in by_context.items()]

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

    def _score_questions(self, plan: list[Question], n: int) -> tuple[float, list[float]]:
        """The shared-context passes, timed; single-request questions as plain rows."""
        torch = self.torch
        seconds, lls = 0.0, [0.0] * n
        for question in plan:
            conts = [cont for _, cont in question.owners]
            rest = max(len(c) for c in conts) - 1
            context = torch.tensor([question.context], device=self.device)
            start = time.perf_counter()
            out = self.model(context, use_cache=rest > 0, logits_to_keep=1)
            head = torch.log_softmax(out.logits[0, -1], dim=-1)
            if rest:
                cache = out.past_key_values
                cache.batch_repeat_interleave(len(conts))
                inputs = torch.zeros((len(conts), rest), dtype=torch.long)
                for r, cont in enumerate(conts):
                    inputs[r, : len(cont) - 1] = torch.tensor(cont[:-1], dtype=torch.long)
                begin = len(question.context)
                positions = torch.arange(begin, begin + rest).expand(len(conts), -1)
                logits = self.model(
                    inputs.to(self.device),
                    past_key_values=cache,
                    position_ids=positions.to(self.device),
                    use_cache=False,
                ).logits
                tails = torch.log_softmax(logits, dim=-1)
            self._sync()
            seconds += time.perf_counter() - start
            for r, (i, cont) in enumerate(question.owners):
                ll = float(head[cont[0]])
                for j in range(1, len(cont)):
                    ll += float(tails[r, j - 1, cont[j]])
                lls[i] = ll
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
    plan: list[ScoreBatch], questions: list[Question], requests: int
) -> tuple[TokenCount, TokenCount]:
    """(lm_eval's, bench's) tokens for the multiple-choice requests. lm-eval forwards one
    row per distinct context + continuation, in padded batches, and computes the output
    layer at every padded position. bench forwards each question's context once (one
    row, unpadded, output layer at its last position) and one row per choice of its
    further tokens, right-padded to the longest choice (output layer at each of them)."""
    pairs = [(row, owners) for b in plan for row, owners in zip(b.rows, b.owners, strict=True)]
    asked = sum((len(row) + 1) * len(owners) for row, owners in pairs)
    rows = sum(len(b.rows) for b in plan)
    tokens = sum(len(row) for b in plan for row in b.rows)
    padded = sum(len(b.rows) * b.width for b in plan)
    lm = TokenCount(requests, asked, rows, tokens, padded, padded)
    rests = [max(len(c) for _, c in q.owners) - 1 for q in questions]
    bench_rows = len(questions) + sum(
        len(q.owners) for q, r in zip(questions, rests, strict=True) if r
    )
    context_tokens = sum(len(q.context) for q in questions)
    cont_tokens = sum(len(c) - 1 for q in questions for _, c in q.owners)
    cont_padded = sum(len(q.owners) * r for q, r in zip(questions, rests, strict=True))
    bench = TokenCount(
        requests,
        asked,
        bench_rows,
        context_tokens + cont_tokens,
        context_tokens + cont_padded,
        len(questions) + cont_padded,
    )
    return lm, bench
