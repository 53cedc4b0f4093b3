"""``--prune``: stop the trials whose learning curve is clearly behind, by Optuna's median
rule (``optuna.pruners.MedianPruner``): at each rung (every ``prune_every`` env steps) a
trial's metric, averaged over the rung, is compared with the median of the finished trials'
at the same rung; below it, after the warm-up rungs, the trial is pruned. A pruned trial
keeps its run (stopped, with a checkpoint) and is recorded as pruned, not failed.

The driver rebuilds the rule from the store when it starts, so a resumed sweep prunes as
the first driver would have.
"""

from __future__ import annotations

import statistics

from ..store import RunNotFound, RunStore
from .results import curve
from .spec import SweepSpec, flag_value
from .sweep_store import Trial

__all__ = ["MedianRule", "rung_size"]

WARMUP_RUNGS = 2  # a trial is judged from the end of its second rung on
DEFAULT_RUNG = 100_000  # env steps, when the trials' budget is minutes


def rung_size(spec: SweepSpec) -> int:
    """Env steps per rung: ``prune_every``, else a tenth of the trials' ``--steps``."""
    if spec.prune_every:
        return spec.prune_every
    steps = flag_value(spec.train, "--steps") or spec.grid.get("steps", [None])[0]
    return max(1, int(steps) // 10) if steps else DEFAULT_RUNG


def rungs(points: list[tuple[int, float]], every: int) -> dict[int, float]:
    """{rung k: mean metric over env steps in ((k-1)*every, k*every]} for complete rungs
    (those the curve has passed the end of)."""
    if not points:
        return {}
    done = points[-1][0] // every
    values: dict[int, list[float]] = {}
    for steps, value in points:
        k = max(1, -(-steps // every))  # ceil
        if k <= done:
            values.setdefault(k, []).append(value)
    return {k: sum(v) / len(v) for k, v in sorted(values.items())}


class MedianRule:
    def __init__(self, spec: SweepSpec, runs: RunStore, trials: list[Trial]):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.metric, self.every, self.runs = spec.metric, rung_size(spec), runs
        startup = max(2, min(5, len(trials) // 3))
        self.study = optuna.create_study(
            direction="maximize",
            pruner=optuna.pruners.MedianPruner(
                n_startup_trials=startup, n_warmup_steps=WARMUP_RUNGS
            ),
        )
        self.live: dict[int, object] = {}  # trial id -> optuna trial
        self.points: dict[int, list[tuple[int, float]]] = {}
        self.reported: dict[int, int] = {}  # trial id -> last rung reported
        self._why: dict[int, str] = {}
        for trial in trials:  # what earlier drivers saw
            if trial.state in ("finished", "pruned"):
                self._add_past(trial)

    def _add_past(self, trial: Trial) -> None:
        try:
            values = rungs(curve(self.runs.metrics(trial.run_name), self.metric), self.every)
        except RunNotFound:
            return
        if not values:
            return
        state = self.optuna.trial.TrialState
        past = self.optuna.trial.create_trial(
            state=state.COMPLETE if trial.state == "finished" else state.PRUNED,
            value=list(values.values())[-1] if trial.state == "finished" else None,
            intermediate_values=values,
        )
        self.study.add_trial(past)

    def begin(self, trial: Trial) -> None:
        """``trial`` (re)starts training: its curve is read from its run's first row."""
        self.live[trial.id] = self.study.ask()
        self.points[trial.id], self.reported[trial.id] = [], 0

    def report(self, trial: Trial, rows: list[dict]) -> bool:
        """Add the trial's new metric rows; True when it should be pruned."""
        if trial.id not in self.live:
            self.begin(trial)
        self.points[trial.id] += curve(rows, self.metric)
        values = rungs(self.points[trial.id], self.every)
        new = [k for k in values if k > self.reported[trial.id]]
        if not new:
            return False
        optuna_trial = self.live[trial.id]
        for k in new:
            optuna_trial.report(values[k], step=k)
        self.reported[trial.id] = new[-1]
        if not optuna_trial.should_prune():
            return False
        k = new[-1]
        others = [
            t.intermediate_values[k]
            for t in self.study.get_trials(deepcopy=False)
            if t.state == self.optuna.trial.TrialState.COMPLETE and k in t.intermediate_values
        ]
        median = statistics.median(others) if others else float("nan")
        self._why[trial.id] = (
            f"its {self.metric} by {k * self.every:,} env steps, {values[k]:,.4g}, is below the "
            f"median of the finished trials there, {median:,.4g}"
        )
        return True

    def why(self, trial: Trial) -> str:
        return self._why.get(trial.id, "")

    def end(self, trial: Trial) -> None:
        """The trial stopped training (finished, pruned, failed or stopped to resume)."""
        optuna_trial = self.live.pop(trial.id, None)
        if optuna_trial is None:
            return
        state = self.optuna.trial.TrialState
        values = rungs(self.points.get(trial.id, []), self.every)
        if trial.id in self._why:
            self.study.tell(optuna_trial, state=state.PRUNED)
        elif values and self._finished(trial):
            self.study.tell(optuna_trial, list(values.values())[-1])
        else:
            self.study.tell(optuna_trial, state=state.FAIL)

    def _finished(self, trial: Trial) -> bool:
        try:
            return self.runs.get_run(trial.run_name).status == "finished"
        except RunNotFound:
            return False
