"""Hugging Face transformers backend.

Model loading, tokenization and chat templates come from lm-eval's HFLM, so a prompt is
tokenized exactly as `lm_eval --model hf` tokenizes it. The request loops are ours (see
TimedLM): they batch by length, run each distinct input row once (multiple-choice answers
that share a context+continuation prefix share one forward row) and time every batch.
"""

from __future__ import annotations

import inspect
import time
from functools import cached_property

import torch
import torch.nn.functional as F
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import postprocess_generated_text
from tqdm import tqdm

from bench.backends.base import Done, GenerationSpec, Scored, TimedLM, TokenPair, batches
from bench.backends.threads import choose_cpu_threads
from bench.backends.timing import RequestTiming, split_time

# MKL multiplies matrices of fewer than 12 rows with other kernels (a different order of
# additions: other last bits); from 12 rows on a row's result does not depend on how many
# rows are multiplied with it. 16 keeps a margin.
MIN_OUTPUT_ROWS = 16


def kept_from(needed: int, rows: int, width: int) -> int:
    """First position whose logits a batch computes: `needed` or earlier, so that the
    output layer still multiplies at least MIN_OUTPUT_ROWS rows (bitwise lm-eval's)."""
    return max(0, min(needed, width - -(-MIN_OUTPUT_ROWS // rows)))


class HFBackend(TimedLM, HFLM):
    """lm-eval `LM` over transformers, with per-request timing in `self.timings`."""

    @property
    def _batch(self) -> int:
        size = self.batch_size
        return int(size) if str(size).isdigit() else 1

    _threads_fitted = False

    def _fit_threads(self) -> None:
        """Fit torch's CPU threads to the cores free when the first request runs; at load
        time the task loading beside it (bench/backends/process.py) keeps a core busy."""
        if self._threads_fitted:
            return
        self._threads_fitted = True
        if self.device.type == "cpu" and (threads := choose_cpu_threads()):
            torch.set_num_threads(threads)

    @property
    def rolling_group_size(self) -> int:  # type: ignore[override]
        # Rolling windows go batch by batch in request order, as in HFLM: float32 sums
        # over long texts change in their last bits with the batch's shape.
        return self._batch

    def score_pairs(
        self, pairs: list[TokenPair], request_type: str, done: Done = None
    ) -> list[Scored]:
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

        self._fit_threads()
        results: list[Scored | None] = [None] * len(pairs)
        progress = tqdm(
            total=len(pairs),
            disable=len(pairs) < 2 * self._batch,
            desc=f"Running {request_type} requests",
        )
        for batch in batches(order, self._batch):
            width = len(batch[0])
            padded = torch.zeros((len(batch), width), dtype=torch.long)
            for r, inp in enumerate(batch):
                padded[r, : len(inp)] = torch.tensor(inp, dtype=torch.long)
            # Only positions that some row's continuation is read from.
            needed = min(len(inp) - max(len(pairs[i][1]) for i in rows[inp]) for inp in batch)
            first = kept_from(needed, len(batch), width)
            start = time.perf_counter()
            logprobs = F.log_softmax(
                self._logits_from(padded.to(self.device), first), dim=-1, dtype=self.softmax_dtype
            )
            self._wait_for_device()
            elapsed = time.perf_counter() - start
            shares = split_time(elapsed, [len(inp) for inp in batch])
            for r, inp in enumerate(batch):
                owners = rows[inp]
                for i in owners:
                    cont = pairs[i][1]
                    span = logprobs[r, len(inp) - len(cont) - first : len(inp) - first]
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
                    if done:
                        done(i, results[i])
                progress.update(len(owners))
        progress.close()
        return results  # type: ignore[return-value]

    @cached_property
    def _keeps_positions(self) -> bool:
        return "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def _logits_from(self, inputs: torch.Tensor, first: int) -> torch.Tensor:
        """Logits of positions `first`.. only. The output layer is a fifth of a small
        model's arithmetic and most positions of a scored row are context; with enough
        rows (kept_from) they come out bitwise as from the full matrix, which
        tests/test_speedups.py checks."""
        if not self._keeps_positions or first == 0:
            return self._model_call(inputs)[:, first:]
        keep = torch.arange(first, inputs.shape[1], device=inputs.device)
        with (
            torch.no_grad(),
            torch.autocast(
                device_type=self.device.type,
                dtype=self.mixed_precision_dtype,
                enabled=self.mixed_precision_dtype is not None,
            ),
        ):
            return self.model(inputs, logits_to_keep=keep).logits

    def _wait_for_device(self) -> None:
        """A GPU runs kernels after the call that queued them returns: wait for them, so
        that a batch's recorded time is its arithmetic, not its launch."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def generate(
        self, prompts: list[str], spec: GenerationSpec, done: Done = None
    ) -> list[tuple[str, RequestTiming]]:
        self._fit_threads()
        # Longest prompt first, ties by text: the batches lm-eval's HFLM forms.
        lengths = [len(self.tok_encode(p)) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], prompts[i]))
        results: list[tuple[str, RequestTiming] | None] = [None] * len(prompts)
        progress = tqdm(total=len(prompts), disable=len(prompts) < 2, desc="Generating")
        for batch in batches(order, self._batch):
            texts, timings = self._generate_batch([prompts[i] for i in batch], spec)
            for i, text, timing in zip(batch, texts, timings, strict=True):
                timing.prompt_tokens = lengths[i]
                results[i] = (text, timing)
                if done:
                    done(i, results[i])
            progress.update(len(batch))
        progress.close()
        return results  # type: ignore[return-value]

    def _generate_batch(
        self, contexts: list[str], spec: GenerationSpec
    ) -> tuple[list[str], list[RequestTiming]]:
        kwargs = dict(spec.kwargs)
        context_ids, attention = self.tok_batch_encode(
            contexts,
            left_truncate_len=self.max_length - spec.max_gen_toks,
            truncation=self.truncation,
        )
        context_ids, attention = context_ids.to(self.device), attention.to(self.device)
        start = time.perf_counter()
        generated = self._model_generate(
            context=context_ids,
            attention_mask=attention,
            stop=spec.until,
            max_length=kwargs.pop("max_length", context_ids.shape[1] + spec.max_gen_toks),
            **kwargs,
        )
        self._wait_for_device()
        elapsed = time.perf_counter() - start

        texts, new_token_counts = [], []
        pad = self.tokenizer.pad_token_id
        for row in generated.tolist():
            new_tokens = row[context_ids.shape[1] :]
            while new_tokens and new_tokens[-1] == pad:
                new_tokens.pop()
            new_token_counts.append(len(new_tokens))
            texts.append(postprocess_generated_text(self.tok_decode(new_tokens), spec.until, None))
        timings = [
            RequestTiming("generate_until", share, 0, count, len(contexts))
            for share, count in zip(
                split_time(elapsed, [1] * len(contexts)), new_token_counts, strict=True
            )
        ]
        return texts, timings
