"""A sweep's report: per group the final metric of its finished runs with 95% intervals, and
for each pair of groups the probability of improvement P(A > B) (Agarwal et al. 2021).

A run's final metric is ``results.final_value``: its mean over the last tenth of its env
steps, or, for ``eval/KEY``, its evaluation. Only finished trials are counted: a pruned run
stopped early by design and a failed one stopped by accident, so their final values answer
another question; they and the trials not done yet are counted in ``states`` only. The
statistics are those of ``g2048lab.stats`` (SciPy's bootstrap, one stratum: 2048 is one
task). ``g2048lab.dashboard.sweep_figures`` draws it; ``g2048lab.cli.sweep_report`` prints it.
"""

from __future__ import annotations

import math

import numpy as np

from .. import stats
from ..store import RunStore
from .results import FINAL_SHARE, final_value
from .sweep_store import TRIAL_STATES, SweepStore, Trial

__all__ = ["PAIRED_GROUPS", "decimals", "describe", "sweep_groups", "sweep_report"]

PAIRED_GROUPS = 6  # up to this many groups (15 pairs) the table pairs them all; beyond, the best


def sweep_groups(trials: list[Trial]) -> list[tuple[str, dict, list[Trial]]]:
    """(key, setting, trials) per group, groups in the order of their first trial."""
    groups: dict[str, tuple[str, dict, list[Trial]]] = {}
    for trial in trials:
        groups.setdefault(trial.group, (trial.group, trial.setting, []))[2].append(trial)
    return list(groups.values())


def sweep_report(runs: RunStore, name: str, metric: str | None = None, *, pairs="all") -> dict:
    """The report of sweep ``name`` on ``metric`` (default: the sweep's) as plain data:

    ``{"metric", "sweep", "confidence": 0.95, "paired": "all" | "best", "groups": [{"group":
    setting, "key", "runs": [names], "values": [final metric per run], "n", "mean", "iqm",
    "median", "ci", "mean_ci", "iqm_ci", "median_ci", "states": {state: trials}}],
    "pairs": [{"a", "b", "p_improvement", "ci"}]}``

    Groups are in the order of their first trial; ``runs``/``values`` are the group's
    finished runs that have the metric (``n`` of them). ``ci`` is the mean's 95% stratified
    bootstrap interval (``mean_ci`` too; ``iqm_ci``, ``median_ci`` the others'), percentile,
    over the group's runs; a group of one run has no interval (None), a group of none has no
    statistics (None). A pair is P(group ``a`` > group ``b``): the chance that a run of ``a``
    ends above one of ``b``, ties half, with its interval (None unless both have 2 runs or
    more). ``pairs="all"``: every pair a < b of groups with runs; ``"best"``: the group of
    the highest mean against each other one; ``"auto"``: all up to PAIRED_GROUPS groups.
    Each interval pair costs about 20 ms of bootstrap, so "all" grows with groups squared.

    ValueError (one line) when no trial has ``metric``, naming those its runs have.
    """
    sweeps = SweepStore(runs)
    sweep = sweeps.get_sweep(name)
    metric = metric or sweep.spec.metric
    trials = sweeps.trials(name)
    finals = {t.number: final_value(runs, t, metric) for t in trials if t.state == "finished"}
    if all(value is None for value in finals.values()):
        _check_metric(runs, name, trials, metric)
    groups = [
        _group(key, setting, members, finals) for key, setting, members in sweep_groups(trials)
    ]
    paired = pairs if pairs != "auto" else "all" if len(groups) <= PAIRED_GROUPS else "best"
    if paired not in ("all", "best"):
        raise ValueError(f"pairs must be 'all', 'best' or 'auto', got {pairs!r}")
    return {
        "metric": metric,
        "sweep": name,
        "confidence": stats.CONFIDENCE,
        "paired": paired,
        "groups": groups,
        "pairs": [_pair(groups, a, b) for a, b in _pairs(groups, paired)],
    }


def _group(key: str, setting: dict, members: list[Trial], finals: dict) -> dict:
    counted = [t for t in members if finals.get(t.number) is not None]
    values = np.array([finals[t.number] for t in counted], dtype=float)  # (n,)
    group = {
        "group": setting,
        "key": key,
        "runs": [t.run_name for t in counted],
        "values": values.tolist(),
        "n": len(values),
    }
    for statistic, interval in (
        ("mean", stats.mean_interval),
        ("iqm", stats.iqm_interval),
        ("median", stats.median_interval),
    ):
        if len(values) >= 2:
            found = interval(values)
            group[statistic], group[f"{statistic}_ci"] = found.estimate, found.bounds()
        else:  # one run is its own mean, IQM and median, with no interval; none has none
            group[statistic] = float(values[0]) if len(values) else None
            group[f"{statistic}_ci"] = None
    group["ci"] = group["mean_ci"]
    group["states"] = {
        state: count for state in TRIAL_STATES if (count := sum(t.state == state for t in members))
    }
    return group


def _pairs(groups: list[dict], paired: str) -> list[tuple[int, int]]:
    scored = [i for i, g in enumerate(groups) if g["n"]]
    if paired == "all":
        return [(a, b) for i, a in enumerate(scored) for b in scored[i + 1 :]]
    if not scored:
        return []
    best = max(scored, key=lambda i: groups[i]["mean"])
    return [(best, b) for b in scored if b != best]


def _pair(groups: list[dict], a: int, b: int) -> dict:
    values_a, values_b = groups[a]["values"], groups[b]["values"]
    ci = None
    if min(len(values_a), len(values_b)) >= 2:
        ci = stats.improvement_interval(values_a, values_b).bounds()
    p = stats.probability_of_improvement(values_a, values_b)
    return {"a": a, "b": b, "p_improvement": p, "ci": ci}


def _check_metric(runs: RunStore, name: str, trials: list[Trial], metric: str) -> None:
    """ValueError naming the metrics the sweep's runs have, if ``metric`` is none of them
    (nothing recorded yet is no error: the report is then empty)."""
    known = metric_names(runs, trials)
    if not known or metric in known:
        return
    hint = ""
    if metric.startswith("eval/") and not any(k.startswith("eval/") for k in known):
        hint = " (eval/ metrics need a sweep started with --eval-games N)"
    raise ValueError(
        f"no trial of sweep {name} has the metric {metric!r}{hint}; "
        f"its runs have: {', '.join(known)}"
    )


def metric_names(runs: RunStore, trials: list[Trial]) -> list[str]:
    """The metrics that ``trials`` have, sorted: the numeric keys of their runs' last metric
    rows, and ``eval/...`` for each number in their evaluations."""
    names = {t.run_name for t in trials}
    keys = {
        key
        for run, row in runs.last_metrics().items()
        if run in names
        for key, value in row.items()
        if key != "iteration" and isinstance(value, (int, float))
    }
    for trial in trials:
        keys |= {f"eval/{path}" for path in _number_paths(trial.result or {})}
    return sorted(keys)


def _number_paths(tree: dict, prefix: str = "") -> list[str]:
    """``{"mean_score": 1.0, "tile_share": {"2048": 0.1}, "seed": "x"}``
    ``-> ["mean_score", "tile_share/2048"]``"""
    paths = []
    for key, value in tree.items():
        if isinstance(value, dict):
            paths += _number_paths(value, f"{prefix}{key}/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            paths.append(f"{prefix}{key}")
    return paths


# --- words for the terminal and the page ---------------------------------------------


def describe(report: dict) -> list[str]:
    """What the numbers are, in lines of at most 80 characters for a short name and metric
    (the terminal's header and the page's)."""
    metric, groups = report["metric"], report["groups"]
    counts = {s: sum(g["states"].get(s, 0) for g in groups) for s in TRIAL_STATES}
    final = (
        "each run's evaluation"
        if metric.startswith("eval/")
        else f"mean of each run's last {FINAL_SHARE:.0%} of env steps"
    )
    trials = ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "none"
    missing = counts["finished"] - sum(g["n"] for g in groups)
    lacking = f" ({missing} without {metric})" if missing else ""
    return [
        f"sweep {report['sweep']}: {metric}, {final}",
        f"trials: {trials}; only the finished count{lacking}",
        f"intervals: {report['confidence']:.0%} stratified bootstrap over a group's runs; "
        "a lone run has none",
    ]


def decimals(values: list[float]) -> int:
    """Decimals that show 3 significant digits of the largest value: 12,345 -> 0, 51.2 -> 1,
    0.72 -> 3 (at most 6)."""
    largest = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    if largest == 0:
        return 2
    return min(6, max(0, 2 - math.floor(math.log10(largest))))
