"""Hugging Face transformers backend.

Model loading, tokenization and chat templates come from lm-eval's HFLM, so a prompt is
tokenized exactly as `lm_eval --model hf` tokenizes it. The request loops are ours: they
batch by length, run each distinct input sequence once (multiple-choice answers that
share a context+continuation prefix share one forward row) and time every batch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from lm_eval import utils as lm_utils
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import (
    handle_stop_sequences,
    normalize_gen_kwargs,
    postprocess_generated_text,
)
from tqdm import tqdm

from bench.backends.timing import RequestTiming, TimingLog, split_time

TokenPair = tuple[list[int], list[int]]  # (context tokens, continuation tokens)


def _batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class HFBackend(HFLM):
    """lm-eval `LM` over transformers, with per-request timing in `self.timings`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.timings = TimingLog()

    @property
    def _batch(self) -> int:
        size = self.batch_size
        return int(size) if str(size).isdigit() else 1

    # -- loglikelihood ---------------------------------------------------------------

    def _encode_request(self, context: str, continuation: str) -> TokenPair:
        if context:
            return self._encode_pair(context, continuation)
        # Empty context: condition on the prefix token (BOS/EOS), as lm-eval does.
        cont = self.tok_encode(continuation, add_special_tokens=False)
        if cont and cont[0] == self.prefix_token_id:
            return cont[:1], cont[1:]
        return [self.prefix_token_id], cont

    def loglikelihood(
        self, requests: list[Instance], disable_tqdm: bool = False
    ) -> list[tuple[float, bool]]:
        pairs = [self._encode_request(*req.args) for req in requests]
        scored = self._score_pairs(pairs, "loglikelihood", disable_tqdm)
        for req, (_, _, timing) in zip(requests, scored, strict=True):
            self.timings.add(req, timing)
        return [(logprob, greedy) for logprob, greedy, _ in scored]

    def loglikelihood_rolling(
        self, requests: list[Instance], disable_tqdm: bool = False
    ) -> list[float]:
        windows: list[TokenPair] = []
        owners: list[int] = []
        for owner, req in enumerate(requests):
            for window in lm_utils.get_rolling_token_windows(
                token_list=self.tok_encode(req.args[0]),
                prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length,
                context_len=1,
            ):
                windows.append(lm_utils.make_disjoint_window(window))
                owners.append(owner)
        # Windows are scored in request order, batch by batch, exactly as lm-eval's HFLM
        # does: float32 sums over long texts change in the last bits with the batch shape.
        scored = [
            result
            for chunk in tqdm(
                list(_batches(windows, self._batch)),
                disable=disable_tqdm,
                desc="Running loglikelihood_rolling batches",
            )
            for result in self._score_pairs(chunk, "loglikelihood_rolling", True)
        ]

        totals = [0.0] * len(requests)
        parts: list[list[RequestTiming]] = [[] for _ in requests]
        for owner, (logprob, _, timing) in zip(owners, scored, strict=True):
            totals[owner] += logprob
            parts[owner].append(timing)
        for req, timing_parts in zip(requests, parts, strict=True):
            self.timings.add(req, _merge(timing_parts, "loglikelihood_rolling"))
        return totals

    def _score_pairs(
        self, pairs: list[TokenPair], request_type: str, disable_tqdm: bool
    ) -> list[tuple[float, bool, RequestTiming]]:
        """Log-probability and greedy flag of every continuation, longest inputs first."""
        # The model sees context+continuation without its last token; requests whose
        # input rows are identical are computed once.
        rows: dict[tuple[int, ...], list[int]] = {}
        for i, (context, continuation) in enumerate(pairs):
            if not continuation:
                raise ValueError("loglikelihood request with an empty continuation")
            inp = tuple((context + continuation)[-(self.max_length + 1) :][:-1])
            rows.setdefault(inp, []).append(i)
        # Longest first, ties in token order: the same batches lm-eval's HFLM forms.
        order = sorted(rows, key=lambda inp: (-len(inp), inp))

        results: list[tuple[float, bool, RequestTiming] | None] = [None] * len(pairs)
        progress = tqdm(
            total=len(pairs), disable=disable_tqdm, desc=f"Running {request_type} requests"
        )
        for batch in _batches(order, self._batch):
            width = len(batch[0])
            padded = torch.zeros((len(batch), width), dtype=torch.long)
            for r, inp in enumerate(batch):
                padded[r, : len(inp)] = torch.tensor(inp, dtype=torch.long)
            start = time.perf_counter()
            logprobs = F.log_softmax(
                self._model_call(padded.to(self.device)), dim=-1, dtype=self.softmax_dtype
            )
            elapsed = time.perf_counter() - start
            shares = split_time(elapsed, [len(inp) for inp in batch])
            for r, inp in enumerate(batch):
                owners = rows[inp]
                for i in owners:
                    cont = pairs[i][1]
                    span = logprobs[r, len(inp) - len(cont) : len(inp)]
                    target = torch.tensor(cont, dtype=torch.long, device=span.device)
                    token_lp = span.gather(1, target.unsqueeze(1)).squeeze(1)
                    greedy = bool((span.argmax(dim=-1) == target).all())
                    timing = RequestTiming(
                        request_type=request_type,
                        wall_s=shares[r] / len(owners),
                        prompt_tokens=len(inp) + 1 - len(cont),
                        completion_tokens=len(cont),
                        batch_size=len(batch),
                    )
                    results[i] = (float(token_lp.sum()), greedy, timing)
                progress.update(len(owners))
        progress.close()
        return results  # type: ignore[return-value]

    # -- generation ------------------------------------------------------------------

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        # Requests with the same generation settings batch together, longest prompt first.
        groups: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(json.dumps(req.args[1], sort_keys=True, default=str), []).append(i)
        prompt_lengths = [len(self.tok_encode(req.args[0])) for req in requests]

        outputs: list[str | None] = [None] * len(requests)
        progress = tqdm(total=len(requests), disable=disable_tqdm, desc="Running generate_until")
        eos = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        for members in groups.values():
            members.sort(key=lambda i: (-prompt_lengths[i], requests[i].args[0]))
            for batch in _batches(members, self._batch):
                texts, timings = self._generate_batch(
                    [requests[i].args[0] for i in batch], requests[batch[0]].args[1], eos
                )
                for i, text, timing in zip(batch, texts, timings, strict=True):
                    outputs[i] = text
                    timing.prompt_tokens = prompt_lengths[i]
                    self.timings.add(requests[i], timing)
                progress.update(len(batch))
        progress.close()
        return outputs  # type: ignore[return-value]

    def _generate_batch(
        self, contexts: list[str], gen_kwargs: dict, eos: str
    ) -> tuple[list[str], list[RequestTiming]]:
        kwargs = normalize_gen_kwargs(dict(gen_kwargs), self.max_gen_toks)
        until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
        max_gen_toks = kwargs.pop("max_gen_toks")
        context_ids, attention = self.tok_batch_encode(
            contexts, left_truncate_len=self.max_length - max_gen_toks, truncation=self.truncation
        )
        context_ids, attention = context_ids.to(self.device), attention.to(self.device)
        start = time.perf_counter()
        generated = self._model_generate(
            context=context_ids,
            attention_mask=attention,
            stop=until,
            max_length=kwargs.pop("max_length", context_ids.shape[1] + max_gen_toks),
            **kwargs,
        )
        elapsed = time.perf_counter() - start

        texts, new_token_counts = [], []
        pad = self.tokenizer.pad_token_id
        for row in generated.tolist():
            new_tokens = row[context_ids.shape[1] :]
            while new_tokens and new_tokens[-1] == pad:
                new_tokens.pop()
            new_token_counts.append(len(new_tokens))
            texts.append(postprocess_generated_text(self.tok_decode(new_tokens), until, None))
        timings = [
            RequestTiming("generate_until", share, 0, count, len(contexts))
            for share, count in zip(
                split_time(elapsed, [1] * len(contexts)), new_token_counts, strict=True
            )
        ]
        return texts, timings


def _merge(parts: list[RequestTiming], request_type: str) -> RequestTiming:
    return RequestTiming(
        request_type=request_type,
        wall_s=sum(p.wall_s for p in parts),
        prompt_tokens=sum(p.prompt_tokens for p in parts),
        completion_tokens=sum(p.completion_tokens for p in parts),
        batch_size=max((p.batch_size for p in parts), default=0),
    )
