"""A trial's result: the number a sweep compares it by.

``metric`` is a key of the runs' metric rows (``rollout/score_mean``, ``rollout/reach_2048``,
...), read as its mean over the last tenth of the run's env steps (one row's noise is not a
result), or ``eval/KEY`` for a key of the trial's evaluation (``eval/mean_score``,
``eval/tile_share/2048``), which needs ``--eval-games``.
"""

from __future__ import annotations

import json
import math

from ..store import RunStore
from .sweep_store import Trial

__all__ = ["FINAL_SHARE", "curve", "final_value"]

FINAL_SHARE = 0.1  # the last tenth of the env steps makes a run's final value


def curve(rows: list[dict], metric: str) -> list[tuple[int, float]]:
    """(env steps, value) of every metric row that has a finite ``metric``."""
    points = []
    for row in rows:
        value = row.get(metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            points.append((int(row.get("env_steps", 0)), float(value)))
    return points


def final_of_curve(points: list[tuple[int, float]]) -> float | None:
    """The mean of the points in the last ``FINAL_SHARE`` of the curve's env steps."""
    if not points:
        return None
    last = points[-1][0]
    start = last * (1 - FINAL_SHARE)
    tail = [v for steps, v in points if steps >= start] or [points[-1][1]]
    return sum(tail) / len(tail)


def final_value(runs: RunStore, trial: Trial, metric: str) -> float | None:
    """The trial's final ``metric``, or None (no such metric, no run, not evaluated)."""
    if metric.startswith("eval/"):
        value = trial.result
        for key in metric.removeprefix("eval/").split("/"):
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return float(value) if isinstance(value, (int, float)) else None
    return final_of_curve(tail_of_curve(runs, trial.run_name, metric))


def tail_of_curve(runs: RunStore, run_name: str, metric: str) -> list[tuple[int, float]]:
    """The points of ``curve`` in the last ``FINAL_SHARE`` of the run's env steps (those
    ``final_of_curve`` reads), oldest first; [] for no run. Rows are read newest first and
    parsed only down to that share (a sweep report reads 100 runs of 3,000 rows; whole,
    that is most of its time)."""
    rows = runs.reader().execute(
        "SELECT metrics.row FROM metrics JOIN runs ON runs.id = metrics.run_id"
        " WHERE runs.name = ? ORDER BY metrics.iteration DESC",
        (run_name,),
    )
    points: list[tuple[int, float]] = []
    start = None
    for (text,) in rows:
        point = curve([json.loads(text)], metric)
        if not point:
            continue
        if start is None:  # the newest point sets the share, as in final_of_curve
            start = point[0][0] * (1 - FINAL_SHARE)
        elif point[0][0] < start:
            break
        points.append(point[0])
    return points[::-1]
