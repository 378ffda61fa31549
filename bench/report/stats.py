"""Error bars and significance for per-sample scores.

- `bootstrap_ci`: 95% percentile bootstrap interval of a mean.
- `paired_p_value`: two models on the same documents; a paired bootstrap of the mean
  difference, stratified by task, so it also compares averages over several tasks.
- `tied_ranks`: ranks that show ties where differences are not significant ("1-2").
"""

from __future__ import annotations

import numpy as np

ITERATIONS = 10_000
ALPHA = 0.05


def bootstrap_ci(
    items: list, aggregate=None, iterations: int = ITERATIONS, seed: int = 0
) -> tuple[float, float]:
    """95% interval of `aggregate(items)` (default: the mean of numbers). Items may be
    lm-eval's per-sample tuples, e.g. (log-likelihood, words) for perplexity."""
    if len(items) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    if aggregate is None:
        values = np.asarray(items, dtype=float)
        picks = rng.integers(0, len(values), size=(iterations, len(values)))
        stats = values[picks].mean(axis=1)
    else:  # a Python aggregation: fewer draws keep it quick
        draws = min(iterations, 1000)
        picks = rng.integers(0, len(items), size=(draws, len(items)))
        stats = np.array([aggregate([items[i] for i in row]) for row in picks], dtype=float)
    low, high = np.quantile(stats, [ALPHA / 2, 1 - ALPHA / 2])
    return float(low), float(high)


def paired_p_value(
    a: list[np.ndarray], b: list[np.ndarray], iterations: int = ITERATIONS, seed: int = 0
) -> float:
    """Two-sided p-value that the average over tasks of A's and B's mean scores differ.

    `a[t]` and `b[t]` hold the two models' per-document scores on task t, in the same
    document order. Each bootstrap draw resamples documents within every task, the same
    documents for both models, and recomputes the difference of the task-averaged means.
    """
    rng = np.random.default_rng(seed)
    diffs = [np.asarray(x, float) - np.asarray(y, float) for x, y in zip(a, b, strict=True)]
    observed = np.mean([d.mean() for d in diffs])
    draws = np.zeros(iterations)
    for d in diffs:
        picks = rng.integers(0, len(d), size=(iterations, len(d)))
        draws += d[picks].mean(axis=1)
    draws /= len(diffs)
    if observed == 0 and not draws.any():
        return 1.0
    # How often the resampled difference falls on the other side of zero.
    share = np.mean(draws <= 0) if observed > 0 else np.mean(draws >= 0)
    return float(min(1.0, 2 * share))


def tied_ranks(order: list[str], significant: dict[tuple[str, str], bool]) -> dict[str, str]:
    """Rank labels for models listed best first. `significant[(x, y)]` says whether x and
    y differ significantly. A model's rank runs from 1 + the number of models
    significantly better to the number of models not significantly worse."""

    def differ(x: str, y: str) -> bool:
        return significant.get((x, y), False) or significant.get((y, x), False)

    labels = {}
    for i, model in enumerate(order):
        better = sum(differ(other, model) for other in order[:i])
        worse = sum(differ(model, other) for other in order[i + 1 :])
        best, worst = better + 1, len(order) - worse
        labels[model] = str(best) if best == worst else f"{best}-{worst}"
    return labels


def is_accuracy_like(higher_is_better, value: float) -> bool:
    """Bounded higher-is-better scores (accuracy, exact match): the ones averaged, and
    the ones a cost per correct answer is counted from."""
    return bool(higher_is_better) and 0.0 <= value <= 1.0
