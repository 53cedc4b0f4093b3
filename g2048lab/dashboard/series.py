"""Pure helpers for chart data: smoothing, moving averages, bounded point counts.

Values may hold None (a metric not measured yet, e.g. losses before the first update);
every helper passes None through as a gap, as Plotly draws it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np

__all__ = ["Series", "downsample", "ema", "game_positions", "moving_average"]

Number = float | int | None


def ema(values: Sequence[Number], weight: float) -> list[Number]:
    """Debiased exponential moving average, as TensorBoard's smoothing slider computes it.

    ``weight`` in [0, 1): 0 returns the values unchanged. The first smoothed point
    equals the first value (the bias toward 0 is divided out by ``1 - weight**t``);
    gaps (None, NaN) pass through and do not count; a constant series stays as it is.

    ``ema([1, 2, 3], 0.5) -> [1, 5/3, 17/7]``
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    finite = [v for v in values if _finite(v)]
    if weight == 0.0 or all(v == finite[0] for v in finite):
        return list(values)
    smoothed: list[Number] = []
    last, count = 0.0, 0
    for value in values:
        if not _finite(value):
            smoothed.append(value)
            continue
        last = last * weight + (1.0 - weight) * value
        count += 1
        smoothed.append(last / (1.0 - weight**count))
    return smoothed


def moving_average(values: Sequence[Number], window: int) -> list[Number]:
    """Mean of the last ``window`` values at each point (fewer at the start); gaps skipped.

    ``moving_average([1, 2, 3, 4], 2) -> [1, 1.5, 2.5, 3.5]``
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    averages: list[Number] = []
    recent: deque[float] = deque()
    total = 0.0
    for value in values:
        if _finite(value):
            recent.append(value)
            total += value
            if len(recent) > window:
                total -= recent.popleft()
        averages.append(total / len(recent) if recent else None)
    return averages


def downsample(
    x: Sequence[Number], y: Sequence[Number], max_points: int, reduce: str = "mean"
) -> tuple[list[Number], list[Number]]:
    """At most ``max_points`` points: the newest half kept as they are, the older points
    merged into equal buckets (x: the mean; y: the mean, or the max with ``reduce="max"``).

    ``downsample(range(10), range(10), 6) -> x = y = [1, 3.5, 5.5, 7, 8, 9]``
    (buckets [0 1 2] [3 4] [5 6], then 7 8 9 untouched)
    """
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be mean or max, got {reduce!r}")
    n = len(x)
    if n <= max_points:
        return list(x), list(y)
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    recent = max_points // 2
    old = n - recent
    buckets = max_points - recent
    xs = np.array(x[:old], dtype=np.float64)  # None -> NaN
    ys = np.array(y[:old], dtype=np.float64)
    sizes = np.full(buckets, old // buckets)
    sizes[: old % buckets] += 1  # as np.array_split: the first buckets one longer
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    merged_x: list[Number] = (np.add.reduceat(xs, starts) / sizes).tolist()
    finite = np.isfinite(ys)
    counts = np.add.reduceat(finite, starts)
    if reduce == "max":
        merged = np.maximum.reduceat(np.where(finite, ys, -np.inf), starts)
    else:
        merged = np.add.reduceat(np.where(finite, ys, 0.0), starts) / np.maximum(counts, 1)
    merged_y: list[Number] = [
        value if count else None for value, count in zip(merged.tolist(), counts.tolist())
    ]
    return merged_x + list(x[old:]), merged_y + list(y[old:])


def game_positions(previous_episode: int | None, episode: int, count: int) -> list[float]:
    """Game numbers (x) for ``count`` finished games reported by a message at ``episode``
    games in total, the previous seen message having been at ``previous_episode``.

    When the message lists every game since the last one, they are the last ``count``
    games; when it lists an even sample of more (or messages were missed), they are
    spread evenly over the games since the previous message.

    ``game_positions(10, 13, 3) -> [11, 12, 13]``; ``game_positions(0, 8, 2) -> [4, 8]``
    """
    if count == 0:
        return []
    gap = episode - previous_episode if previous_episode is not None else count
    if gap <= count:
        return [float(episode - count + 1 + i) for i in range(count)]
    step = gap / count
    return [previous_episode + step * (i + 1) for i in range(count)]


class Series:
    """A growing (x, y) series held to at most ``capacity`` points: when it overflows, the
    older points are merged (``downsample``) and the recent ones kept, so memory stays
    bounded over a long run and the present stays sharp. ``version`` counts changes.
    """

    def __init__(self, capacity: int = 10_000, reduce: str = "mean"):
        if capacity < 4:
            raise ValueError(f"capacity must be at least 4, got {capacity}")
        self.capacity = capacity
        self.reduce = reduce
        self.x: list[Number] = []
        self.y: list[Number] = []
        self.version = 0

    def __len__(self) -> int:
        return len(self.x)

    def extend(self, x: Sequence[Number], y: Sequence[Number]) -> None:
        if not len(x):
            return
        self.x.extend(x)
        self.y.extend(y)
        if len(self.x) > self.capacity:  # merge down to 3/4 so this happens now and then
            self.x, self.y = downsample(self.x, self.y, self.capacity * 3 // 4, self.reduce)
        self.version += 1

    def clear(self) -> None:
        self.x, self.y = [], []
        self.version += 1


def _finite(value: Number) -> bool:
    return value is not None and math.isfinite(value)
