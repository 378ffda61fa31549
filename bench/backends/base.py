"""What every backend shares: lm-eval's request types mapped onto two primitives.

A backend implements `score_pairs` (log-probability of continuation tokens given context
tokens) and `generate` (text for prompts with one set of generation settings); this
class turns lm-eval's `loglikelihood`, `loglikelihood_rolling` and `generate_until`
into calls of those, and files a RequestTiming for every request in `self.timings`.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lm_eval import utils as lm_utils
from lm_eval.api.instance import Instance
from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs

from bench.backends.timing import RequestLog, RequestTiming
from bench.trace import mark

TokenPair = tuple[list[int], list[int]]  # (context tokens, continuation tokens)
Scored = tuple[float, bool, RequestTiming]  # (log-probability, greedy?, timing)
Done = Callable[[int, Any], None] | None

# Characters per kept token in the first tail tried (a token of prose spans about 4); a
# tail with too few tokens is doubled.
TAIL_CHARS_PER_TOKEN = 8
# Tokens before the kept ones that two tails must also agree on.
TAIL_MARGIN = 32


@dataclass(frozen=True)
class GenerationSpec:
    """lm-eval's gen_kwargs, normalized by lm-eval: stop strings, token budget, the rest."""

    until: list[str]
    max_gen_toks: int
    kwargs: dict  # do_sample, temperature and anything else the task asked for

    @property
    def temperature(self) -> float:
        if not self.kwargs.get("do_sample"):
            return 0.0
        return float(self.kwargs.get("temperature") or 0.0)


def batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + size]


class LoggedLM:
    """Answers kept per request in `self.timings` (a RequestLog), with how long each took;
    requests its cache already knows are not asked again."""

    @property
    def timings(self) -> RequestLog:
        if not hasattr(self, "_timings"):
            self._timings = RequestLog()
        return self._timings

    @timings.setter
    def timings(self, log: RequestLog) -> None:
        # A distributed worker gives each work unit a fresh log on the same loaded model.
        self._timings = log

    def _todo(self, requests: list[Instance], request_type: str) -> list[int]:
        """Indices of the requests the cache cannot answer."""
        mark("first_request", once=True)
        reused = self.timings.reuse(requests, request_type)
        return [i for i in range(len(requests)) if i not in reused]

    def _answers(self, requests: list[Instance]) -> list:
        self.timings.flush()
        return [self.timings.answer(req) for req in requests]


class TimedLM(LoggedLM, TemplateLM):
    """Mixin base for bench backends (see module docstring)."""

    # Rolling windows scored in groups of this many (None: all at once). The hf backend
    # sets its batch size here to form the very batches lm-eval's HFLM forms.
    rolling_group_size: int | None = None

    # Both primitives call `done(index, result)` as each item is finished (so answers
    # reach the store while the run goes on) and also return all results in order.

    @abstractmethod
    def score_pairs(
        self, pairs: list[TokenPair], request_type: str, done: Done = None
    ) -> list[Scored]: ...

    @abstractmethod
    def generate(
        self, prompts: list[str], spec: GenerationSpec, done: Done = None
    ) -> list[tuple[str, RequestTiming]]: ...

    def score_groups(
        self, groups: list[list[TokenPair]], request_type: str, done: Done = None
    ) -> list[Scored]:
        """score_pairs over each group in turn, so that each forms batches of its own;
        `done` gets indices that count across the groups."""
        results: list[Scored] = []
        for pairs in groups:
            offset = len(results)
            results += self.score_pairs(
                pairs, request_type, done and (lambda j, scored, o=offset: done(o + j, scored))
            )
        return results

    # -- lm-eval's LM interface -----------------------------------------------------

    def _loglikelihood_tokens(self, requests, **_) -> list[tuple[float, bool]]:
        # TemplateLM's token-level entry point, for callers that bypass `loglikelihood`.
        pairs = [(context, continuation) for _, context, continuation in requests]
        return [(lp, g) for lp, g, _ in self.score_pairs(pairs, "loglikelihood", None)]

    def encode_request(self, context: str, continuation: str) -> TokenPair:
        if context:
            # The model reads context+continuation's last max_length tokens (+1: the hf
            # backend's input drops the last one): more context is never kept.
            keep = self.max_length + 1
            tokens, cont = self._encode_pair(self.text_tail(context, keep), continuation)
            return tokens[-keep:], cont
        # Empty context: condition on the prefix token (BOS/EOS), as lm-eval does.
        cont = self.tok_encode(continuation, add_special_tokens=False)
        if cont and cont[0] == self.prefix_token_id:
            return cont[:1], cont[1:]
        return [self.prefix_token_id], cont

    def text_tail(self, text: str, keep: int) -> str:
        """A suffix of `text` whose tokens end as the whole text's do, for their last
        `keep`: a prompt is cut on the left to what the model reads, so a document of
        megabytes costs the tokenization of its tail (the tokenizer takes some 125 bytes
        per character), not of all of it, per request. A tail is taken once its last
        keep + TAIL_MARGIN tokens equal those of a tail twice as long (the tokenization
        has come into step with the whole text's); else the whole text is tokenized."""
        want = keep + TAIL_MARGIN
        size = want * TAIL_CHARS_PER_TOKEN
        while 2 * size < len(text):
            short = self.tok_encode(text[-size:])
            if len(short) >= want and short[-want:] == self.tok_encode(text[-2 * size :])[-want:]:
                return text[-size:]
            size *= 2
        return text

    def loglikelihood(
        self, requests: list[Instance], disable_tqdm: bool = False
    ) -> list[tuple[float, bool]]:
        todo = self._todo(requests, "loglikelihood")
        # A multiple-choice question's requests share one context: its tail is found once.
        contexts: dict[str, str] = {}
        pairs = []
        for i in todo:
            context, continuation = requests[i].args
            if context not in contexts:
                contexts[context] = self.text_tail(context, self.max_length + 1)
            pairs.append(self.encode_request(contexts[context], continuation))

        def done(j: int, scored: Scored) -> None:
            logprob, greedy, timing = scored
            self.timings.add(requests[todo[j]], timing, (logprob, greedy))

        self.score_pairs(pairs, "loglikelihood", done)
        return self._answers(requests)

    def loglikelihood_rolling(
        self, requests: list[Instance], disable_tqdm: bool = False
    ) -> list[float]:
        todo = self._todo(requests, "loglikelihood_rolling")
        windows: list[TokenPair] = []
        owners: list[int] = []
        for owner in todo:
            for window in lm_utils.get_rolling_token_windows(
                token_list=self.tok_encode(requests[owner].args[0]),
                prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length,
                context_len=1,
            ):
                windows.append(lm_utils.make_disjoint_window(window))
                owners.append(owner)
        left = Counter(owners)  # windows still to score, per document
        for owner in todo:
            if not left[owner]:  # an empty document: nothing to score, log-likelihood 0
                self.timings.add(
                    requests[owner],
                    RequestTiming("loglikelihood_rolling", 0.0, 0, 0, 0, computed_tokens=0),
                    0.0,
                )
        totals = dict.fromkeys(todo, 0.0)
        parts: dict[int, list[RequestTiming]] = {owner: [] for owner in todo}

        def done(window: int, scored: Scored) -> None:
            # A document is answered once all of its windows are.
            owner = owners[window]
            totals[owner] += scored[0]
            parts[owner].append(scored[2])
            left[owner] -= 1
            if left[owner] == 0:
                timing = merge_timings(parts[owner], "loglikelihood_rolling")
                self.timings.add(requests[owner], timing, totals[owner])

        size = self.rolling_group_size or len(windows) or 1
        groups = [windows[start : start + size] for start in range(0, len(windows), size)]
        self.score_groups(groups, "loglikelihood_rolling", done)
        return self._answers(requests)

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        todo = self._todo(requests, "generate_until")
        # Requests with the same generation settings go to the backend together.
        groups: dict[str, list[int]] = {}
        for i in todo:
            key = json.dumps(requests[i].args[1], sort_keys=True, default=str)
            groups.setdefault(key, []).append(i)
        for members in groups.values():
            spec = self.generation_spec(requests[members[0]].args[1])

            def done(j: int, result: tuple[str, RequestTiming], members=members) -> None:
                self.timings.add(requests[members[j]], result[1], result[0])

            self.generate([requests[i].args[0] for i in members], spec, done)
        return self._answers(requests)

    def generation_spec(self, gen_kwargs: dict) -> GenerationSpec:
        kwargs = dict(normalize_gen_kwargs(dict(gen_kwargs), self.max_gen_toks))
        eos = self.tok_decode([self.eot_token_id], skip_special_tokens=False)
        until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
        return GenerationSpec(until, int(kwargs.pop("max_gen_toks")), kwargs)

    @property
    def max_gen_toks(self) -> int:
        return 256


def report_all(results: list, done: Done) -> list:
    """For backends that finish a whole call at once: report every item, then return."""
    if done:
        for index, result in enumerate(results):
            done(index, result)
    return results


def merge_timings(parts: list[RequestTiming], request_type: str) -> RequestTiming:
    return RequestTiming(
        request_type=request_type,
        wall_s=sum(p.wall_s for p in parts),
        prompt_tokens=sum(p.prompt_tokens for p in parts),
        completion_tokens=sum(p.completion_tokens for p in parts),
        batch_size=max((p.batch_size for p in parts), default=0),
        computed_tokens=None
        if any(p.computed_tokens is None for p in parts)
        else sum(p.computed_tokens for p in parts),
    )
