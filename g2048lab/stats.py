"""Statistics for comparing agents: point estimates with confidence intervals.

Small pure functions over numpy arrays, no I/O, after Agarwal et al. 2021 ("Deep RL
at the edge of the statistical precipice"): the interquartile mean, stratified
bootstrap intervals, the probability of improvement. SciPy does the machinery
(``scipy.stats.bootstrap``, ``trim_mean``, ``binomtest``).

Scores are anything a run or a game is measured by (a game's score, a run's final
mean score); their unit is the caller's. Where several tasks (strata) are measured,
scores are given as a (runs, tasks) array or as a list of 1-D arrays, one per task,
when tasks have different numbers of runs. Bootstrap intervals are percentile
intervals over ``RESAMPLES`` resamples drawn from a fixed default seed, so the same
scores always give the same interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "CONFIDENCE",
    "Interval",
    "RESAMPLES",
    "SEED",
    "bootstrap_interval",
    "improvement_interval",
    "iqm",
    "iqm_interval",
    "mean_interval",
    "median_interval",
    "probability_of_improvement",
    "stratified_interval",
    "wilson_interval",
]

CONFIDENCE = 0.95
RESAMPLES = 10_000
SEED = 0
_BATCH = 1_000  # resamples per vectorised call: bounds memory at 1,000 x the sample size

Scores = np.ndarray | Sequence[np.ndarray]
"""1-D (runs,) for one task, 2-D (runs, tasks), or a list of 1-D arrays, one per task."""

Statistic = Callable[..., np.ndarray]
"""``statistic(scores, axis=-1)``: reduces the last axis, e.g. ``np.mean``, ``iqm``."""


@dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval, in the unit of the scores."""

    estimate: float
    low: float
    high: float
    confidence: float = CONFIDENCE

    def bounds(self) -> list[float]:
        """``[low, high]``, as JSON reports give it."""
        return [self.low, self.high]


def iqm(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% of the scores along ``axis``
    (a quarter of the values cut at each end, ``trim_mean(scores, 0.25)``).
    ``iqm([1, 2, 3, 4, 5, 6, 7, 100]) == 4.5``."""
    return stats.trim_mean(scores, 0.25, axis=axis)


def bootstrap_interval(
    scores: np.ndarray,
    statistic: Statistic = np.mean,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """``statistic`` of (n,) ``scores`` with its percentile bootstrap interval over the
    n values (resampled with replacement). Raises ValueError for fewer than 2 values."""
    sample = np.asarray(scores, dtype=float)
    return stratified_interval(
        [sample], statistic, confidence=confidence, resamples=resamples, seed=seed
    )


def mean_interval(scores: np.ndarray, **options) -> Interval:
    """Mean of (n,) ``scores`` with its bootstrap interval (options: ``bootstrap_interval``)."""
    return bootstrap_interval(scores, np.mean, **options)


def iqm_interval(scores: np.ndarray, **options) -> Interval:
    """Interquartile mean of (n,) ``scores`` with its bootstrap interval."""
    return bootstrap_interval(scores, iqm, **options)


def median_interval(scores: np.ndarray, **options) -> Interval:
    """Median of (n,) ``scores`` with its bootstrap interval."""
    return bootstrap_interval(scores, np.median, **options)


def stratified_interval(
    scores: Scores,
    statistic: Statistic = iqm,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """``statistic`` of all scores pooled, with its stratified bootstrap interval: each
    resample draws, within every task, as many runs as that task has, with replacement,
    and pools them (Agarwal et al. 2021), so no task ever weighs more than it does in
    the data. Raises ValueError if a task has fewer than 2 runs."""
    strata = _strata(scores)

    def pooled(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return statistic(np.concatenate(samples, axis=axis), axis=axis)

    return _bootstrap(strata, pooled, confidence, resamples, seed)


def probability_of_improvement(a: Scores, b: Scores) -> float:
    """P(A > B): the chance that a run of A scores above a run of B on the same task,
    ties counting half (the Mann-Whitney U over n * m), averaged over tasks. ``a`` and
    ``b`` hold the same tasks, with any numbers of runs. 1 when every run of A beats
    every run of B, 0.5 for identical samples."""
    strata_a, strata_b = _paired_strata(a, b)
    return float(_improvement(*strata_a, *strata_b, axis=-1))


def improvement_interval(
    a: Scores,
    b: Scores,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """``probability_of_improvement(a, b)`` with its stratified bootstrap interval: the
    runs of A and of B are resampled independently within each task."""
    strata_a, strata_b = _paired_strata(a, b)
    return _bootstrap([*strata_a, *strata_b], _improvement, confidence, resamples, seed)


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """The rate ``k / n`` (e.g. games reaching a tile) with its Wilson score interval,
    which stays inside [0, 1] and is sound at 0 and n. 72 of 100: 0.72 (0.625-0.799)."""
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(k / n, float(ci.low), float(ci.high), confidence)


def _bootstrap(
    samples: list[np.ndarray],
    statistic: Statistic,
    confidence: float,
    resamples: int,
    seed: int,
) -> Interval:
    """Percentile bootstrap of ``statistic(*samples, axis=-1)``, each sample resampled
    on its own (SciPy's unpaired resampling is the stratified bootstrap)."""
    if min(len(s) for s in samples) < 2:
        raise ValueError("a bootstrap interval needs at least 2 values in every sample")
    result = stats.bootstrap(
        samples,
        statistic,
        n_resamples=resamples,
        batch=_BATCH,
        vectorized=True,
        paired=False,
        axis=-1,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    estimate = float(statistic(*samples, axis=-1))
    ci = result.confidence_interval
    return Interval(estimate, float(ci.low), float(ci.high), confidence)


def _improvement(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(A > B) averaged over tasks, for ``samples`` = A's tasks then B's tasks, each
    (..., runs): from the ranks of the pooled runs, ties ranked as their mean. Reduces
    the last axis only (SciPy calls it with ``axis=-1``)."""
    del axis
    half = len(samples) // 2
    per_task = []
    for a, b in zip(samples[:half], samples[half:]):
        n, m = a.shape[-1], b.shape[-1]
        ranks = stats.rankdata(np.concatenate([a, b], axis=-1), axis=-1)
        u = ranks[..., :n].sum(axis=-1) - n * (n + 1) / 2  # pairs A wins, ties half
        per_task.append(u / (n * m))
    return np.mean(per_task, axis=0)


def _strata(scores: Scores) -> list[np.ndarray]:
    if isinstance(scores, (list, tuple)) and scores and np.ndim(scores[0]) == 1:
        strata = [np.asarray(s, dtype=float) for s in scores]
    else:
        array = np.asarray(scores, dtype=float)
        if array.ndim not in (1, 2):
            raise ValueError(f"scores must be (runs,) or (runs, tasks), got shape {array.shape}")
        strata = [array] if array.ndim == 1 else list(array.T)
    if any(s.ndim != 1 for s in strata) or not strata:
        raise ValueError("each task's scores must be a 1-D array")
    return strata


def _paired_strata(a: Scores, b: Scores) -> tuple[list[np.ndarray], list[np.ndarray]]:
    strata_a, strata_b = _strata(a), _strata(b)
    if len(strata_a) != len(strata_b):
        raise ValueError(f"A has {len(strata_a)} tasks and B {len(strata_b)}: give the same tasks")
    return strata_a, strata_b
