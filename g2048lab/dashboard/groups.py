"""A group of runs (one setting of a sweep, over seeds) as one curve: the mean across its runs
per bin of the x axis, a 95% confidence band across them, and how many runs each bin holds.
No widget: ``MetricGrid`` draws a ``RunGroup`` beside single runs.

Binning. The x range the group's runs cover is cut into equal bins; each run gives one value
per bin: the mean of its points there, or, for a bin that falls between two of its points,
its line through them. So a run that logs often weighs as much as one that logs rarely, and
n counts runs, not points. A run counts only inside its own x range: a seed that is behind
drops out of the bins it has not reached, and n says so.

The band. Student's t over the n runs of a bin: mean ± t(0.975, n - 1) · sd / √n, exact when
seeds vary normally about the group's mean curve. Not the percentile bootstrap of
``g2048lab.stats`` (which ``sweep report`` uses for final values), for two reasons: over the
2-5 seeds a sweep usually has it is too narrow (with 2 runs its interval is at most [min,
max], which holds the mean half the time; the t interval is 12.7 times the standard error
wide there), and it would cost a bootstrap per bin, per metric, per group at every refresh,
where the t interval is one vectorised expression for them all. A bin of one run has a mean
and no band.

    group_curve([(x1, y1), (x2, y2), (x3, y3)], bins=100)  # -> GroupCurve
    mean_band(values)          # values (runs, bins), NaN where a run is absent

The seeds' curves are taken as drawn: with the chart's smoothing and on its x axis (env
steps, games, wall time), so the mean is the mean of the thin seed lines shown on demand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from .history import RunHistory
from .series import ema

__all__ = [
    "CONFIDENCE",
    "GroupCurve",
    "RunGroup",
    "band_outline",
    "binned",
    "group_curve",
    "group_label",
    "mean_band",
]

CONFIDENCE = 0.95
BINS_PER_POINTS = 5  # a chart of at most N points per trace gets at most N / 5 bins


@dataclass(frozen=True)
class GroupCurve:
    """A group's curve on ``x`` (bin centres, in the x axis's unit), each array (bins,):
    ``mean`` across the runs in the bin (NaN: none), ``low``/``high`` its confidence interval
    (NaN where n < 2), ``n`` the runs in the bin."""

    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray


def bin_edges(curves: Sequence[tuple[np.ndarray, np.ndarray]], bins: int) -> np.ndarray:
    """``bins + 1`` equal edges over the x range of every curve together."""
    lo = min(float(x[0]) for x, _ in curves)
    hi = max(float(x[-1]) for x, _ in curves)
    return np.linspace(lo, hi, bins + 1)


def binned(x: np.ndarray, y: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """One run's value per bin of ``edges``: the mean of its points in the bin; in a bin
    without points but inside the run's x range, the run's line at the bin's centre; NaN
    outside its range. ``x`` increasing, finite.

    ``binned([0, 1, 5, 7], [1, 3, 5, 9], edges=[0, 2, 4, 6, 8, 10]) -> [2, 4, 5, 9, nan]``
    (bin [0, 2): the mean of 1 and 3; [2, 4): no point, the line from (1, 3) to (5, 5) at 3;
    [8, 10]: past the run's last point)
    """
    x, y, edges = (np.asarray(a, dtype=np.float64) for a in (x, y, edges))
    bins = len(edges) - 1
    index = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    sums = np.bincount(index, weights=y, minlength=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    values = np.full(bins, np.nan)
    has = counts > 0
    values[has] = sums[has] / counts[has]
    between = ~has & (centres >= x[0]) & (centres <= x[-1])
    values[between] = np.interp(centres[between], x, y)
    return values


def mean_band(
    values: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high, n) per column of ``values`` (runs, bins), NaN where a run is absent:
    the mean of the runs present and its Student-t interval (NaN where fewer than 2)."""
    values = np.asarray(values, dtype=np.float64)
    present = np.isfinite(values)
    n = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(present, values, 0.0).sum(axis=0) / n
        squares = np.where(present, (values - mean) ** 2, 0.0).sum(axis=0)
        sd = np.sqrt(squares / (n - 1))
        t = scipy_stats.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1))
        half = np.where(n >= 2, t * sd / np.sqrt(n), np.nan)
    mean = np.where(n > 0, mean, np.nan)
    return mean, mean - half, mean + half, n


def group_curve(
    curves: Sequence[tuple[Sequence, Sequence]], bins: int, confidence: float = CONFIDENCE
) -> GroupCurve | None:
    """The group curve of runs' (x, y) ``curves`` on at most ``bins`` bins (fewer when the
    runs have fewer points: the median count); non-finite points are left out. None when no
    run has a point."""
    clean = []
    for x, y in curves:
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        keep = np.isfinite(x) & np.isfinite(y)
        x, y = x[keep], y[keep]
        if len(x):
            order = np.argsort(x, kind="stable")
            clean.append((x[order], y[order]))
    if not clean:
        return None
    bins = int(max(1, min(bins, np.median([len(x) for x, _ in clean]))))
    edges = bin_edges(clean, bins)
    values = np.stack([binned(x, y, edges) for x, y in clean])  # (runs, bins)
    mean, low, high, n = mean_band(values, confidence)
    keep = n > 0
    centres = (edges[:-1] + edges[1:]) / 2
    return GroupCurve(centres[keep], mean[keep], low[keep], high[keep], n[keep])


def band_outline(curve: GroupCurve) -> tuple[list, list]:
    """The band as Plotly's ``fill="toself"`` draws it: each stretch of bins with an interval
    one closed outline (along the top, back along the bottom), stretches apart by None.
    ``([], [])`` when no bin has one."""
    xs: list = []
    ys: list = []
    has = np.isfinite(curve.low)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], has.astype(np.int8), [0]))))
    for start, stop in zip(edges[::2], edges[1::2]):
        if xs:
            xs.append(None)
            ys.append(None)
        x = curve.x[start:stop].tolist()
        xs += x + x[::-1]
        ys += curve.high[start:stop].tolist() + curve.low[start:stop][::-1].tolist()
    return xs, ys


def group_label(setting: dict) -> str:
    """A setting as a legend names it: ``{"ppo.learning-rate": "3e-4"}`` ->
    ``"ppo.learning-rate=3e-4"``; a sweep over seeds alone has one group, ``"all seeds"``."""
    return ", ".join(f"{flag}={value}" for flag, value in setting.items()) or "all seeds"


class RunGroup:
    """Runs of one setting, drawn as one curve. To the metric grid it is one more entry
    beside single runs: it has a ``name`` and ``charted()`` metrics as a ``RunHistory`` has.

    ``name``: unique among the entries drawn (``SWEEP/GROUP``); ``label``: the legend's
    words; ``members``: each run's history (the runs that have started); ``seeds``: draw
    each member's own curve too, thin.
    """

    def __init__(
        self, name: str, label: str, members: Sequence[RunHistory] = (), seeds: bool = False
    ):
        self.name, self.label = name, label
        self.members = list(members)
        self.seeds = seeds
        self._drawn: dict[tuple[str, str], tuple[object, list, list]] = {}

    def charted(self) -> list[str]:
        """Keys any member has a value of, in order of first appearance."""
        seen: dict[str, None] = {}
        for member in self.members:
            seen.update(dict.fromkeys(member.charted()))
        return list(seen)

    def version(self, key: str) -> tuple:
        """Changes whenever the members or their ``key`` series change."""
        return tuple(
            (m.name, m.metrics[key].version if key in m.metrics else None) for m in self.members
        )

    def seed_curve(self, member: RunHistory, key: str, smoothing: float, x_axis: str):
        """``member``'s ``key`` as drawn: smoothed, on ``x_axis`` (cached by its version)."""
        series = member.metrics.get(key)
        if series is None or not series.x:
            return [], []
        version = (series.version, smoothing, x_axis)
        cached = self._drawn.get((member.name, key))
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        y = ema(series.y, smoothing) if smoothing > 0 else series.y
        x = member.x_values(series.x, x_axis)
        self._drawn[(member.name, key)] = (version, x, y)
        return x, y

    def curve(self, key: str, smoothing: float, x_axis: str, max_points: int) -> GroupCurve | None:
        """The group's ``key`` on ``x_axis``, in at most ``max_points / BINS_PER_POINTS``
        bins."""
        names = {m.name for m in self.members}
        self._drawn = {k: v for k, v in self._drawn.items() if k[0] in names}
        curves = [self.seed_curve(m, key, smoothing, x_axis) for m in self.members]
        bins = max(2, max_points // BINS_PER_POINTS)
        return group_curve([(x, y) for x, y in curves if len(x)], bins)
