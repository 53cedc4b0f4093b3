"""A sweep at a glance, as plain data: its status, driver and trials by group with their
progress. ``g2048lab sweep status``, the ``Sweep`` object and the dashboards all read it.
"""

from __future__ import annotations

from ..store import RunStore
from .results import final_value
from .sweep_store import TRIAL_STATES, SweepStore, Trial

__all__ = ["overview"]


def overview(runs: RunStore, name: str) -> dict:
    """{"name", "status", "driver": {"pid", "host"} | None, "metric", "parallel",
    "counts": {state: n}, "groups": [{"key", "group": setting, "trials": [...],
    "final_mean": float | None (over its finished trials)}]}; a trial: {"number", "run",
    "seed", "state", "env_steps", "progress" (0..1 of its budget, or None), "final" (its
    metric's value over the last tenth of its env steps so far), "error"}."""
    sweeps = SweepStore(runs)
    sweep = sweeps.get_sweep(name)
    trials = sweeps.trials(name)
    last = runs.last_metrics()
    infos = {r.name: r for r in runs.list_runs()}
    groups: dict[str, dict] = {}
    for trial in trials:
        group = groups.setdefault(
            trial.group, {"key": trial.group, "group": trial.setting, "trials": []}
        )
        group["trials"].append(_trial(runs, trial, infos.get(trial.run_name), last, sweep))
    for group in groups.values():  # finished trials only: a running one's value is not final
        finals = [
            t["final"]
            for t in group["trials"]
            if t["final"] is not None and t["state"] == "finished"
        ]
        group["final_mean"] = sum(finals) / len(finals) if finals else None
    alive = sweeps.driver_alive(sweep)
    return {
        "name": sweep.name,
        "status": sweep.status,
        "driver": {"pid": sweep.driver_pid, "host": sweep.driver_host} if alive else None,
        "metric": sweep.spec.metric,
        "parallel": sweep.spec.parallel,
        "seeds": sweep.spec.seed_list(),
        "counts": {s: sum(t.state == s for t in trials) for s in TRIAL_STATES},
        "groups": list(groups.values()),
    }


def _trial(runs: RunStore, trial: Trial, run, last: dict, sweep) -> dict:
    row = last.get(trial.run_name, {})
    progress = None
    if run is not None:
        steps, seconds = run.config.get("total_env_steps"), run.config.get("max_seconds")
        if steps:
            progress = min(1.0, run.env_steps / steps)
        elif seconds and "time/elapsed_s" in row:
            progress = min(1.0, row["time/elapsed_s"] / seconds)
        if trial.state == "finished":
            progress = 1.0
    final = final_value(runs, trial, sweep.spec.metric) if run is not None else None
    return {
        "number": trial.number,
        "run": trial.run_name,
        "seed": trial.seed,
        "state": trial.state,
        "run_status": str(run.status) if run is not None else None,
        "env_steps": run.env_steps if run is not None else 0,
        "progress": progress,
        "final": final,
        "error": trial.error,
    }
