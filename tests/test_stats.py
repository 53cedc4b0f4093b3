"""g2048lab.stats against cases with known answers (the intervals `eval` and `play` print
are tested with the other terminal output in test_terminal.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from g2048lab import stats

# --- point estimates ----------------------------------------------------------------------


def test_iqm_is_the_mean_of_the_middle_half():
    assert stats.iqm(np.array([1, 2, 3, 4, 5, 6, 7, 100])) == 4.5  # mean of 3, 4, 5, 6
    assert stats.iqm(np.array([[1, 2, 3, 4], [0, 10, 20, 1000]])).tolist() == [2.5, 15.0]


def test_probability_of_improvement_known_cases():
    assert stats.probability_of_improvement([5, 6, 7], [1, 2]) == 1.0  # disjoint
    assert stats.probability_of_improvement([1, 2], [5, 6, 7]) == 0.0
    assert stats.probability_of_improvement([1, 2, 3], [1, 2, 3]) == 0.5  # identical
    assert stats.probability_of_improvement([2, 2], [2, 2]) == 0.5  # all ties count half
    # 3 of 4 pairs won, one tied: (3 + 0.5) / 4
    assert stats.probability_of_improvement([2, 3], [1, 2]) == 0.875
    # two tasks, averaged: A wins every pair on the first, ties on the second
    a = np.array([[9, 1], [8, 1]])  # (runs, tasks)
    b = np.array([[0, 1], [1, 1], [2, 1]])
    assert stats.probability_of_improvement(a, b) == 0.75


samples = st.lists(st.integers(0, 20), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(samples, samples)
def test_probability_of_improvement_counts_pairs(a, b):
    """Against the definition: every pair of runs, a win 1, a tie 1/2."""
    pairs = [1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b]
    assert stats.probability_of_improvement(a, b) == pytest.approx(np.mean(pairs))
    assert stats.probability_of_improvement(a, b) + stats.probability_of_improvement(
        b, a
    ) == pytest.approx(1.0)


def test_wilson_interval_textbook_values():
    ci = stats.wilson_interval(72, 100)
    assert ci.estimate == 0.72
    assert (ci.low, ci.high) == pytest.approx((0.6251, 0.7986), abs=1e-4)
    none, every = stats.wilson_interval(0, 50), stats.wilson_interval(50, 50)
    assert none.low == 0 and 0.05 < none.high < 0.09  # never a zero-width [0, 0]
    assert every.high == pytest.approx(1) and 0.91 < every.low < 0.95


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5000), st.data())
def test_wilson_interval_holds_the_rate_inside_zero_one(n, data):
    k = data.draw(st.integers(0, n))
    ci = stats.wilson_interval(k, n)
    assert 0 <= ci.low <= k / n <= ci.high <= 1 + 1e-12


# --- bootstrap intervals ------------------------------------------------------------------


def test_bootstrap_interval_of_a_constant_sample_is_degenerate():
    ci = stats.mean_interval(np.full(30, 1234.0))
    assert (ci.estimate, ci.low, ci.high) == (1234.0, 1234.0, 1234.0)


def test_bootstrap_interval_of_the_mean_matches_the_normal_one_and_shrinks_with_n():
    """For many values the bootstrap interval of a mean is mean +- 1.96 s / sqrt(n)."""
    rng = np.random.default_rng(7)
    large = rng.normal(100, 10, 4000)
    ci = stats.mean_interval(large)
    half = 1.96 * large.std(ddof=1) / np.sqrt(len(large))
    assert ci.estimate == pytest.approx(large.mean()) and ci.low < ci.estimate < ci.high
    assert (ci.high - ci.low) / 2 == pytest.approx(half, rel=0.1)
    assert ci.estimate - ci.low == pytest.approx(half, rel=0.15)
    widths = [(c.high - c.low) for c in map(stats.mean_interval, (large[:40], large[:400]))]
    assert widths[1] < widths[0] / 2.5 and ci.high - ci.low < widths[1] / 2.5  # ~ 1/sqrt(10)


def test_bootstrap_intervals_repeat_for_a_seed():
    scores = np.random.default_rng(3).exponential(1000, 50)
    assert stats.iqm_interval(scores) == stats.iqm_interval(scores)
    assert stats.mean_interval(scores, seed=1) != stats.mean_interval(scores, seed=2)
    assert stats.median_interval(scores).low < 766 < stats.median_interval(scores).high
    wide = stats.mean_interval(scores, confidence=0.99)
    narrow = stats.mean_interval(scores, confidence=0.5)
    assert wide.low < narrow.low < narrow.high < wide.high and wide.confidence == 0.99


def test_a_bootstrap_needs_two_values():
    with pytest.raises(ValueError, match="at least 2"):
        stats.mean_interval(np.array([5.0]))


def test_stratified_bootstrap_keeps_every_tasks_count():
    """Task A's 3 runs all score 0, task B's 7 all 100: a stratified resample always
    holds 3 of A and 7 of B, so the pooled mean is always 70, whereas resampling the 10
    runs together moves it."""
    strata = [np.zeros(3), np.full(7, 100.0)]
    ci = stats.stratified_interval(strata, np.mean)
    assert (ci.estimate, ci.low, ci.high) == pytest.approx((70, 70, 70))
    pooled = stats.bootstrap_interval(np.concatenate(strata), np.mean)
    assert pooled.low < 60 and pooled.high > 80

    seen = []

    def record(scores, axis=-1):
        seen.append(scores.shape[-1])
        return np.mean(scores, axis=axis)

    stats.stratified_interval(strata, record, resamples=100)
    assert set(seen) == {10}


def test_stratified_interval_takes_runs_by_tasks():
    """A (runs, tasks) array is one stratum per column: the same as its columns."""
    scores = np.random.default_rng(5).normal(size=(6, 3))
    assert stats.stratified_interval(scores) == stats.stratified_interval(list(scores.T))
    assert stats.stratified_interval(scores).estimate == pytest.approx(stats.iqm(scores.ravel()))


def test_improvement_interval():
    ci = stats.improvement_interval([5, 6, 7], [1, 2, 3])
    assert (ci.estimate, ci.low, ci.high) == (1.0, 1.0, 1.0)  # every resample: disjoint
    rng = np.random.default_rng(11)
    a, b = rng.normal(1, 1, 10), rng.normal(0, 1, 10)
    ci = stats.improvement_interval(a, b)
    assert 0 <= ci.low < ci.estimate < ci.high <= 1
    assert ci.estimate == stats.probability_of_improvement(a, b)
    with pytest.raises(ValueError, match="same tasks"):
        stats.improvement_interval(np.ones((3, 2)), np.ones((3, 3)))
