"""A run's history as the charts need it, without a widget: ``RunHistory.absorb(snapshot)``.

One ``RunHistory`` per run shown. It keeps every numeric metric of the run's rows as a
bounded ``Series`` against env steps, whatever its name (a learner's new metric is charted
with no dashboard code: see ``metric_groups``), the scores and tiles of finished games from
the messages, expert usage over time, and the latest message. The single-run dashboard and
the runs view both draw from it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable

import numpy as np

from ..messages import TrainingUpdate
from .series import Series, game_positions
from .sources import Gone, Snapshot

__all__ = ["AXES", "NOT_CHARTED", "RunHistory", "metric_groups"]

# x axes a metric can be drawn against: row key -> label
AXES = {"env_steps": "env steps", "episodes": "games", "time/elapsed_s": "wall time (s)"}
# row keys that are counters or x axes, not metrics
NOT_CHARTED = frozenset({"iteration", *AXES})
# namespaces first in this order; the others follow alphabetically, then these last
_FIRST = ("rollout", "train", "teacher", "ntuple")
_LAST = ("time", "memory")


def metric_groups(keys: Iterable[str]) -> list[tuple[str, list[str]]]:
    """Metric keys grouped by namespace (the part before the first ``/``), namespaces in a
    fixed order, keys in the order given.

    ``metric_groups(["time/x", "train/loss", "foo", "train/lr"])
    -> [("train", ["train/loss", "train/lr"]), ("other", ["foo"]), ("time", ["time/x"])]``
    """
    groups: dict[str, list[str]] = {}
    for key in keys:
        namespace = key.split("/", 1)[0] if "/" in key else "other"
        groups.setdefault(namespace, []).append(key)

    def rank(namespace: str) -> tuple[int, int, str]:
        if namespace in _FIRST:
            return (0, _FIRST.index(namespace), "")
        if namespace in _LAST:
            return (2, _LAST.index(namespace), "")
        return (1, 0, namespace)

    return [(namespace, groups[namespace]) for namespace in sorted(groups, key=rank)]


class RunHistory:
    """What has been read of one run; see the module docstring.

    ``metrics[key]``: the metric against env steps. ``axes[key]``: env steps -> games and
    env steps -> wall time, to draw any metric against those (``x_values``). ``scores`` and
    ``tiles``: per finished game, against the game's number.
    """

    def __init__(self, name: str, capacity: int = 10_000):
        self.name = name
        self.capacity = capacity
        self.metrics: dict[str, Series] = {}
        self.axes = {key: Series(capacity) for key in AXES if key != "env_steps"}
        self.scores = Series(capacity)
        self.tiles = Series(capacity, reduce="max")
        self.experts: list[Series] = []  # one per (layer, expert): usage over env steps
        self.latest: TrainingUpdate | None = None
        self.status = "idle"
        self.error: str | None = None
        self.silent_s: float | None = None
        self.notes: deque[str] = deque(maxlen=4)
        self.ended = False
        self.gone: Gone | None = None  # deleted or renamed in the store
        self.version = 0  # bumped by every absorb that changed something
        self._episode: int | None = None  # games finished at the last message read

    # --- reading ------------------------------------------------------------------------

    def charted(self) -> list[str]:
        """Keys of the metrics that have at least one value, in order of first appearance."""
        return [key for key, series in self.metrics.items() if series.x]

    def last(self, key: str) -> float | None:
        series = self.metrics.get(key)
        return series.y[-1] if series is not None and series.y else None

    def x_values(self, x: list, axis: str) -> list:
        """Env steps ``x`` as ``axis`` (a key of AXES), read off the run's own counters."""
        if axis == "env_steps" or not x:
            return x
        mapping = self.axes[axis]
        if not mapping.x:
            return [None] * len(x)
        return np.interp(np.asarray(x, dtype=np.float64), mapping.x, mapping.y).tolist()

    # --- writing ------------------------------------------------------------------------

    def absorb(self, snapshot: Snapshot) -> None:
        if snapshot.reset:  # the run was resumed from a checkpoint: its history is re-read
            self.metrics.clear()
            for series in (self.scores, self.tiles, *self.axes.values()):
                series.clear()
            self.experts, self._episode = [], None
        self.status, self.error, self.silent_s = snapshot.status, snapshot.error, snapshot.silent_s
        self.ended = snapshot.final
        changed = snapshot.gone != self.gone
        self.gone = snapshot.gone
        for note in snapshot.notes:
            self.note(note)
        for update in snapshot.updates:
            self._absorb_games(update)
            self._absorb_experts(update)
        if snapshot.updates:
            self.latest = snapshot.updates[-1]
        self.absorb_rows(snapshot.metrics)
        if snapshot.updates or snapshot.metrics or snapshot.notes or snapshot.reset or changed:
            self.version += 1

    def absorb_rows(self, rows: list[dict]) -> None:
        """Metric rows, in iteration order: every numeric key becomes (or extends) a series."""
        if not rows:
            return
        steps = [row.get("env_steps") for row in rows]
        columns: dict[str, tuple[list, list]] = {}
        for row, step in zip(rows, steps):
            for key, value in row.items():
                if key in NOT_CHARTED or value is None or isinstance(value, bool):
                    continue
                if isinstance(value, (int, float)):
                    xs, ys = columns.setdefault(key, ([], []))
                    xs.append(step)
                    ys.append(value)
        for key, (xs, ys) in columns.items():
            series = self.metrics.get(key)
            if series is None:
                series = self.metrics[key] = Series(self.capacity)
            series.extend(xs, ys)
        for key, mapping in self.axes.items():
            known = [(s, row[key]) for s, row in zip(steps, rows) if row.get(key) is not None]
            mapping.extend([s for s, _ in known], [v for _, v in known])

    def note(self, text: str) -> None:
        self.notes.append(f"{time.strftime('%H:%M:%S')} {text}")

    def _absorb_games(self, update: TrainingUpdate) -> None:
        games = update.finished_games
        if games:
            x = game_positions(self._episode, update.episode, len(games))
            self.scores.extend(x, [score for score, _ in games])
            self.tiles.extend(x, [tile for _, tile in games])
        self._episode = update.episode

    def _absorb_experts(self, update: TrainingUpdate) -> None:
        usage = [u for layer in update.expert_usage for u in layer]
        if not usage:
            return
        if len(self.experts) != len(usage):  # first message, or another model: start over
            self.experts = [Series(capacity=400) for _ in usage]
        elif self.experts[0].x and self.experts[0].x[-1] == update.env_steps:
            return  # a heartbeat while paused: nothing new
        for series, value in zip(self.experts, usage):
            series.extend([update.env_steps], [value])
