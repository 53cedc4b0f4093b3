"""Comparing runs: which settings differ, and where each run ended up. Pure functions over
the plain data the run store holds (a run's config, its metric rows)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

__all__ = ["FINAL_METRICS", "config_diff", "final_metrics", "flatten_config"]

FINAL_METRICS = (
    "rollout/score_mean",  # mean score of the recent games
    "rollout/best_score",
    "rollout/max_tile",
    "env_steps",
    "time/elapsed_s",  # wall time spent running, pauses excluded
    "time/steps_per_s",
)
"""The metric-row keys that say where a run ended up (``final_metrics``)."""


def flatten_config(config: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """Nested settings as one level of dotted keys; lists, empty dicts and None stay values.

    ``{"model": {"d_model": 64}, "seed": 0} -> {"model.d_model": 64, "seed": 0}``
    """
    flat: dict[str, object] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_diff(configs: Mapping[str, Mapping[str, object]]) -> dict[str, dict[str, object]]:
    """The dotted settings whose values differ between runs (``{run name: config}``), as
    ``{key: {run name: value}}``, keys sorted. A key a run lacks reads as None there (a run
    from before the setting existed, or one without it: ``teacher``), so a setting None or
    missing in every run is no difference. One run: ``{}``.

    ``{"a": {"ppo": {"lr": 1}, "t": None}, "b": {"ppo": {"lr": 2}, "seed": 0}}``
    ``-> {"ppo.lr": {"a": 1, "b": 2}, "seed": {"a": None, "b": 0}}``
    """
    flat = {name: flatten_config(config) for name, config in configs.items()}
    keys = sorted({key for settings in flat.values() for key in settings})
    return {
        key: {name: settings.get(key) for name, settings in flat.items()}
        for key in keys
        if len({_canonical(settings.get(key)) for settings in flat.values()}) > 1
    }


def _canonical(value: object) -> str:
    """One text per value: lists and dicts compare by content, 1, 1.0 and True differ."""
    return json.dumps(value, sort_keys=True, default=repr)


def final_metrics(
    rows: Sequence[Mapping[str, object]], keys: Sequence[str] = FINAL_METRICS
) -> dict[str, float | None]:
    """The last value of each of ``keys`` that is not None in metric rows (oldest first); None
    for a key no row has.

    ``[{"env_steps": 64, "rollout/score_mean": 510.0}, {"env_steps": 128,``
    ``"rollout/score_mean": None}], keys=("env_steps", "rollout/score_mean", "x")``
    ``-> {"env_steps": 128, "rollout/score_mean": 510.0, "x": None}``
    """
    return {
        key: next((row[key] for row in reversed(rows) if row.get(key) is not None), None)
        for key in keys
    }
