"""Per-sample results of the large workload from both sides, and how far they agree.

lm_eval's side comes from its `--log_samples` files, bench's from its store's samples
table (what `bench results export --what samples` writes). A multiple-choice sample may
flip (one side picks another choice) only where its two best choices lie within 1e-4 of
each other; every flip is listed with that gap so a reader can judge it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

LL_TOLERANCE = 1e-4  # absolute, per choice: float32 sums over other kernels and shapes


@dataclass(frozen=True)
class ChoiceSample:
    """One multiple-choice document as one side scored it."""

    doc_id: int
    prompt: str  # the context of its first choice
    lls: list[float]  # log-likelihood of each choice
    acc: float
    acc_norm: float


@dataclass(frozen=True)
class GenSample:
    doc_id: int
    prompt: str
    text: str  # the generation before filters
    exact_match: float


@dataclass(frozen=True)
class SideSamples:
    choices: dict[int, ChoiceSample]
    gens: dict[int, GenSample]


@dataclass(frozen=True)
class Flip:
    """A document whose acc or acc_norm differs between the sides."""

    doc_id: int
    metric: str
    gap: float  # between the two best (length-normalized for acc_norm) choices, lm_eval's
    bench_gap: float  # the same from bench's log-likelihoods

    @property
    def near_tie(self) -> bool:
        return min(self.gap, self.bench_gap) <= LL_TOLERANCE


@dataclass(frozen=True)
class Agreement:
    max_ll_diff: float  # over every choice of every document
    lls_within: bool
    prompts_same: bool  # every document's prompt is the same text on both sides
    flips: list[Flip]
    gen_diffs: list[tuple[int, str, str]]  # (doc, lm_eval's text, bench's text)
    missing: list[str]  # documents one side has and the other lacks


@dataclass(frozen=True)
class ChoiceRequest:
    """One loglikelihood request as lm_eval made it."""

    doc_id: int
    context: str
    continuation: str


@dataclass(frozen=True)
class GenRequest:
    doc_id: int
    prompt: str
    gen_kwargs: dict


def _lm_eval_file(out_dir: Path, task: str) -> Path:
    (path,) = out_dir.rglob(f"samples_{task}_*.jsonl")
    return path


def _lm_eval_rows(out_dir: Path, task: str) -> list[dict]:
    return [json.loads(line) for line in _lm_eval_file(out_dir, task).read_text().splitlines()]


def lm_eval_samples(out_dir: Path, choice_task: str, gen_task: str) -> SideSamples:
    """lm_eval's log_samples files (their figures are strings: "-19.36", "False")."""
    choices = {}
    for row in _lm_eval_rows(out_dir, choice_task):
        choices[row["doc_id"]] = ChoiceSample(
            doc_id=row["doc_id"],
            prompt=row["arguments"]["gen_args_0"]["arg_0"],
            lls=[float(ll) for ll, _ in row["filtered_resps"]],
            acc=float(row["acc"]),
            acc_norm=float(row["acc_norm"]),
        )
    gens = {}
    for row in _lm_eval_rows(out_dir, gen_task):
        gens[row["doc_id"]] = GenSample(
            doc_id=row["doc_id"],
            prompt=row["arguments"]["gen_args_0"]["arg_0"],
            text=row["resps"][0][0],
            exact_match=float(row["exact_match"]),
        )
    return SideSamples(choices, gens)


def bench_samples(rows: list[dict], choice_task: str, gen_task: str) -> SideSamples:
    """bench's samples table rows (bench results export --what samples --format json)."""
    choices, gens = {}, {}
    for row in rows:
        scores = row["scores"] if isinstance(row["scores"], dict) else json.loads(row["scores"])
        if row["task"] == choice_task:
            choices[row["doc_id"]] = ChoiceSample(
                doc_id=row["doc_id"],
                prompt=row["prompt"],
                lls=[float(ll) for ll, _ in json.loads(row["response"])],
                acc=float(scores["acc"]),
                acc_norm=float(scores["acc_norm"]),
            )
        elif row["task"] == gen_task:
            gens[row["doc_id"]] = GenSample(
                doc_id=row["doc_id"],
                prompt=row["prompt"],
                text=json.loads(row["raw_response"])[0][0],
                exact_match=float(scores["exact_match"]),
            )
    return SideSamples(choices, gens)


def lm_eval_requests(
    out_dir: Path, choice_task: str, gen_task: str
) -> tuple[list[ChoiceRequest], list[GenRequest]]:
    """Every request lm_eval made, read back from its log_samples files, in doc order."""
    choices = [
        ChoiceRequest(row["doc_id"], arg["arg_0"], arg["arg_1"])
        for row in sorted(_lm_eval_rows(out_dir, choice_task), key=lambda r: r["doc_id"])
        for arg in row["arguments"].values()
    ]
    gens = [
        GenRequest(row["doc_id"], arg["arg_0"], arg["arg_1"])
        for row in sorted(_lm_eval_rows(out_dir, gen_task), key=lambda r: r["doc_id"])
        for arg in row["arguments"].values()
    ]
    return choices, gens


def choice_lengths(out_dir: Path, choice_task: str) -> dict[int, list[int]]:
    """Characters of each choice, lm-eval's acc_norm divisor, from lm_eval's logged docs."""
    return {
        row["doc_id"]: [len(choice) for choice in row["doc"]["choices"]]
        for row in _lm_eval_rows(out_dir, choice_task)
    }


def top_gap(values: list[float]) -> float:
    best = sorted(values, reverse=True)
    return best[0] - best[1] if len(best) > 1 else float("inf")


def normed(lls: list[float], lengths: list[int]) -> list[float]:
    """lm-eval's acc_norm scale: log-likelihood per character of the choice."""
    return [ll / n for ll, n in zip(lls, lengths, strict=True)]


def compare(theirs: SideSamples, ours: SideSamples, lengths: dict[int, list[int]]) -> Agreement:
    """lm_eval's samples (theirs) against bench's (ours)."""
    missing = [
        f"{kind} doc {doc} ({'bench' if doc in mine else 'lm_eval'} only)"
        for kind, mine, other in (
            ("choice", ours.choices, theirs.choices),
            ("generation", ours.gens, theirs.gens),
        )
        for doc in sorted(set(mine) ^ set(other))
    ]
    max_diff, flips, prompts_same = 0.0, [], True
    for doc in sorted(set(ours.choices) & set(theirs.choices)):
        a, b = theirs.choices[doc], ours.choices[doc]
        prompts_same &= a.prompt == b.prompt
        max_diff = max([max_diff, *(abs(x - y) for x, y in zip(a.lls, b.lls, strict=True))])
        norm_a, norm_b = normed(a.lls, lengths[doc]), normed(b.lls, lengths[doc])
        for metric, gaps in (
            ("acc", (top_gap(a.lls), top_gap(b.lls))),
            ("acc_norm", (top_gap(norm_a), top_gap(norm_b))),
        ):
            if getattr(a, metric) != getattr(b, metric):
                flips.append(Flip(doc, metric, *gaps))
    gen_diffs = []
    for doc in sorted(set(ours.gens) & set(theirs.gens)):
        a, b = theirs.gens[doc], ours.gens[doc]
        prompts_same &= a.prompt == b.prompt
        if a.text != b.text or a.exact_match != b.exact_match:
            gen_diffs.append((doc, a.text, b.text))
    return Agreement(
        max_ll_diff=max_diff,
        lls_within=max_diff <= LL_TOLERANCE,
        prompts_same=prompts_same,
        flips=flips,
        gen_diffs=gen_diffs,
        missing=missing,
    )
