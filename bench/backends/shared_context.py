"""Multiple-choice questions scored on their context's KV cache.

A question with k choices is k loglikelihood requests with one context. lm-eval's hf
backend forwards context + choice once per choice; here the context goes through the
model once and the choices' further tokens go on top of its KV cache. Several questions
share a batch: their contexts right-padded into one pass (a real token never looks at
the padding on its right), then one row per choice over the cache rows of its question,
with an attention mask that hides the padding and positions that continue each context.

Plain torch and transformers' public model call: the hf backend and the raw baseline of
benchmarks/vs_lm_eval.py run this same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

TokenPair = tuple[list[int], list[int]]


@dataclass(frozen=True)
class Question:
    """Requests that share one context: the context tokens, and for each request its
    (index, continuation tokens)."""

    context: tuple[int, ...]
    owners: list[tuple[int, list[int]]]

    @property
    def tokens(self) -> list[int]:
        """Tokens each request reads: the context and its own continuation."""
        return [len(self.context) + len(cont) for _, cont in self.owners]


def group_questions(
    pairs: Sequence[TokenPair], max_length: int
) -> tuple[list[Question], list[int]]:
    """Requests grouped by their context, in request order, where several share one and
    the whole fits the model; the indices of every other request (scored as plain rows)."""
    by_context: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
    for i, (context, continuation) in enumerate(pairs):
        if not continuation:
            raise ValueError("loglikelihood request with an empty continuation")
        by_context.setdefault(tuple(context), []).append((i, continuation))
    questions, rest = [], []
    for context, owners in by_context.items():
        longest = max(len(cont) for _, cont in owners)
        if len(owners) > 1 and context and len(context) + longest <= max_length + 1:
            questions.append(Question(context, owners))
        else:
            rest += [i for i, _ in owners]
    return questions, sorted(rest)


def question_batches(questions: list[Question], size: int) -> list[list[Question]]:
    """Batches of `size` questions, longest context first (ties in token order), so that
    a batch pads little."""
    order = sorted(questions, key=lambda q: (-len(q.context), q.context))
    return [order[s : s + size] for s in range(0, len(order), size)]


def score_questions(
    model,
    batch: list[Question],
    device: torch.device,
    keeps_positions: bool,
    softmax_dtype: torch.dtype | None = None,
) -> list[list[tuple[float, bool]]]:
    """(log-probability, greedy?) of each choice of each question, in owner order, from
    two forward passes. Call under torch.no_grad (and the caller's autocast).

    `keeps_positions`: the model takes `logits_to_keep` (the output layer is then
    computed at each context's last position only, not at every position).
    `softmax_dtype`: as lm-eval's HFLM takes it (None: the logits' own)."""
    lengths = torch.tensor([len(q.context) for q in batch])
    width = int(lengths.max())
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    for r, q in enumerate(batch):
        ids[r, : len(q.context)] = torch.tensor(q.context, dtype=torch.long)
    padding = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)  # True: a real token
    choices = [(r, cont) for r, q in enumerate(batch) for _, cont in q.owners]
    rest = max(len(cont) for _, cont in choices) - 1

    last = lengths - 1
    kwargs = {}
    if keeps_positions:
        keep = torch.unique(last)  # sorted: column j of the logits is position keep[j]
        kwargs["logits_to_keep"] = keep.to(device)
        columns = torch.searchsorted(keep, last)
    else:
        columns = last
    out = model(
        ids.to(device), attention_mask=padding.long().to(device), use_cache=rest > 0, **kwargs
    )
    # Each context's last position predicts the first token of every one of its choices.
    heads = F.log_softmax(
        out.logits[torch.arange(len(batch)), columns.to(out.logits.device)],
        dim=-1,
        dtype=softmax_dtype,
    )

    if rest:
        rows = torch.tensor([r for r, _ in choices])
        cache = out.past_key_values
        cache.batch_select_indices(rows.to(device))  # a question's cache row per choice
        inputs = torch.zeros((len(choices), rest), dtype=torch.long)
        for n, (_, cont) in enumerate(choices):
            inputs[n, : len(cont) - 1] = torch.tensor(cont[:-1], dtype=torch.long)
        positions = lengths[rows].unsqueeze(1) + torch.arange(rest).unsqueeze(0)
        attention = torch.cat(
            [padding[rows], torch.ones((len(choices), rest), dtype=torch.bool)], 1
        )
        logits = model(
            inputs.to(device),
            attention_mask=attention.long().to(device),
            past_key_values=cache,
            position_ids=positions.to(device),
            use_cache=False,
        ).logits
        tails = F.log_softmax(logits, dim=-1, dtype=softmax_dtype)

    scores: list[list[tuple[float, bool]]] = [[] for _ in batch]
    for n, (r, cont) in enumerate(choices):
        steps = heads[r : r + 1]
        if len(cont) > 1:
            steps = torch.cat([steps, tails[n, : len(cont) - 1]])
        target = torch.tensor(cont, dtype=torch.long, device=steps.device)
        logprob = float(steps.gather(1, target.unsqueeze(1)).sum())
        greedy = bool((steps.argmax(dim=-1) == target).all())
        scores[r].append((logprob, greedy))
    return scores
