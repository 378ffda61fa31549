"""Error bars and significance for per-sample scores (formulas: docs/statistics.md).

- `bootstrap_ci`: 95% percentile bootstrap interval of a mean.
- `paired_difference`: one task's paired comparison: difference, interval, p-value,
  win / tie / loss counts, minimum detectable difference, design effect.
- `minimum_detectable_difference`, `design_effect`: analytic, from the observed variance.

Where a task declares that its documents come in groups (clusters), every bootstrap
resamples whole clusters, and variances are the cluster-robust ones: questions on one
passage are not independent evidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

ITERATIONS = 10_000
ALPHA = 0.05
POWER = 0.80
# Bootstrap draws are made in blocks of about this many indices: 10,000 draws of a
# 10,000-document task at once would take 800 MB.
_BLOCK = 4_000_000

Clusters = Sequence[str | None] | None  # per document, in the scores' order; None: own group


def groups_of(clusters: Clusters, n: int) -> np.ndarray:
    """Group index per document: documents of one cluster share one; a document without a
    cluster (or no clusters at all) is a group of its own."""
    if clusters is None:
        return np.arange(n)
    if len(clusters) != n:
        raise ValueError(f"{len(clusters)} cluster ids for {n} documents")
    # A document with no cluster id gets a key no real id can equal.
    keys = [(0, str(c)) if c is not None else (1, str(i)) for i, c in enumerate(clusters)]
    index: dict[tuple[int, str], int] = {}
    return np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)


def is_clustered(groups: np.ndarray) -> bool:
    return len(groups) > 0 and int(groups.max()) + 1 < len(groups)


def resampled_means(
    values: np.ndarray, groups: np.ndarray, iterations: int, rng: np.random.Generator
) -> np.ndarray:
    """Bootstrap draws of the mean of `values`, resampling whole groups with replacement
    (each draw takes as many groups as there are); a draw's mean is over the documents
    its groups hold."""
    sums = np.bincount(groups, weights=values)
    sizes = np.bincount(groups).astype(float)
    count = len(sums)
    draws = np.empty(iterations)
    block = max(1, _BLOCK // count)
    for start in range(0, iterations, block):
        picks = rng.integers(0, count, size=(min(block, iterations - start), count))
        draws[start : start + len(picks)] = sums[picks].sum(axis=1) / sizes[picks].sum(axis=1)
    return draws


def _quantiles(draws: np.ndarray) -> tuple[float, float]:
    low, high = np.quantile(draws, [ALPHA / 2, 1 - ALPHA / 2])
    return float(low), float(high)


def bootstrap_ci(
    items: list,
    aggregate=None,
    iterations: int = ITERATIONS,
    seed: int = 0,
    clusters: Clusters = None,
) -> tuple[float, float]:
    """95% interval of `aggregate(items)` (default: the mean of numbers). Items may be
    lm-eval's per-sample tuples, e.g. (log-likelihood, words) for perplexity."""
    if len(items) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    groups = groups_of(clusters, len(items))
    if aggregate is None:
        return _quantiles(resampled_means(np.asarray(items, float), groups, iterations, rng))
    # A Python aggregation: fewer draws keep it quick.
    draws = min(iterations, 1000)
    if not is_clustered(groups):
        picks = rng.integers(0, len(items), size=(draws, len(items)))
        stats = [aggregate([items[i] for i in row]) for row in picks]
    else:
        order = np.argsort(groups, kind="stable")
        members = np.split(order, np.cumsum(np.bincount(groups))[:-1])
        picks = rng.integers(0, len(members), size=(draws, len(members)))
        stats = [aggregate([items[i] for g in row for i in members[g]]) for row in picks]
    return _quantiles(np.asarray(stats, dtype=float))


def _two_sided(observed: float, draws: np.ndarray) -> float:
    """How often the resampled difference falls on the other side of zero, doubled."""
    if observed == 0 and not draws.any():
        return 1.0
    share = np.mean(draws <= 0) if observed > 0 else np.mean(draws >= 0)
    return float(min(1.0, 2 * share))


def mean_variance(values: np.ndarray, groups: np.ndarray) -> float:
    """Variance of the mean of `values`. Without clusters: s^2 / n (s with n - 1). With
    clusters: the cluster-robust (CR1) estimate G/(G-1) * sum_g (sum_{i in g} r_i)^2 / n^2,
    r_i = x_i - mean; it equals s^2 / n when every cluster holds one document."""
    n = len(values)
    if n < 2:
        return float("nan")
    residuals = values - values.mean()
    if not is_clustered(groups):
        return float(residuals @ residuals / (n - 1) / n)
    totals = np.bincount(groups, weights=residuals)
    count = len(totals)
    if count < 2:
        return float("nan")
    return float(count / (count - 1) * (totals @ totals) / n**2)


def design_effect(values: np.ndarray, groups: np.ndarray) -> float:
    """Variance of the mean with clusters over the variance as if documents were
    independent; 1.0 without clusters, NaN where the naive variance is zero."""
    naive = mean_variance(values, np.arange(len(values)))
    if not is_clustered(groups):
        return 1.0
    if not naive > 0:
        return float("nan")
    return mean_variance(values, groups) / naive


def minimum_detectable_difference(
    differences: np.ndarray,
    groups: np.ndarray | None = None,
    alpha: float = ALPHA,
    power: float = POWER,
) -> float:
    """The smallest true mean difference a two-sided paired test at `alpha` detects with
    probability `power`, given the observed variance of the per-document differences:
    (z_{1-alpha/2} + z_{power}) * sqrt(Var(mean d)), i.e. (z + z) * sd(d) / sqrt(n)
    without clusters, that times sqrt(design effect) with them."""
    d = np.asarray(differences, float)
    groups = np.arange(len(d)) if groups is None else groups
    variance = mean_variance(d, groups)
    if math.isnan(variance):
        return float("nan")
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * math.sqrt(variance))


@dataclass(frozen=True)
class PairedDifference:
    """Model A against model B on the documents of one task both answered."""

    n: int  # documents both answered
    groups: int  # independent units resampled: clusters where declared, else documents
    clustered: bool  # the task declares clusters (and some cluster holds two documents)
    mean: float  # mean per-document difference, A - B
    ci: tuple[float, float]  # 95% paired (cluster) bootstrap interval of `mean`
    p_value: float  # two-sided, from the same bootstrap draws
    wins: int  # documents where A scored higher than B
    ties: int  # documents where both scored the same
    losses: int  # documents where B scored higher
    mde: float  # minimum detectable difference (80% power, alpha 0.05)
    design_effect: float  # Var(mean) with clusters / Var(mean) as if independent; 1 without


def paired_difference(
    a: np.ndarray,
    b: np.ndarray,
    clusters: Clusters = None,
    iterations: int = ITERATIONS,
    seed: int = 0,
) -> PairedDifference:
    """`a` and `b`: the two models' scores on the same documents, in the same order. The
    interval and the p-value come from the same draws."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = a - b
    groups = groups_of(clusters, len(d))
    draws = resampled_means(d, groups, iterations, np.random.default_rng(seed))
    observed = float(d.mean())
    return PairedDifference(
        n=len(d),
        groups=int(groups.max()) + 1,
        clustered=is_clustered(groups),
        mean=observed,
        ci=_quantiles(draws),
        p_value=_two_sided(observed, draws),
        wins=int((a > b).sum()),
        ties=int((a == b).sum()),
        losses=int((a < b).sum()),
        mde=minimum_detectable_difference(d, groups),
        design_effect=design_effect(d, groups),
    )


def is_accuracy_like(higher_is_better, value: float) -> bool:
    """Bounded higher-is-better scores (accuracy, exact match): the ones averaged, and
    the ones a cost per correct answer is counted from."""
    return bool(higher_is_better) and 0.0 <= value <= 1.0
