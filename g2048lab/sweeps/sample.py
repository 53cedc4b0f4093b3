"""``--random``: settings drawn by Optuna's TPE sampler (``optuna.samplers.TPESampler``,
seeded), ``trials`` of them, each trained with every seed of the sweep. A setting's value
for the sampler is its mean final metric over its finished seeds, told once all its seeds
ended. The grid's flags, if any, are drawn as categories. Rebuilt from the store when a
driver starts: settings drawn before are neither drawn again nor forgotten.
"""

from __future__ import annotations

import json

from ..store import RunStore
from .results import final_value
from .spec import SweepSpec, group_key
from .sweep_store import Trial

__all__ = ["Sampler", "distributions"]

ENDED = ("finished", "failed", "pruned")


def distributions(spec: SweepSpec) -> dict:
    """Optuna's distribution for each swept flag."""
    import optuna.distributions as d

    found: dict = {flag: d.CategoricalDistribution(values) for flag, values in spec.grid.items()}
    for r in spec.random:
        if r.integer:
            found[r.flag] = d.IntDistribution(int(r.low), int(r.high), log=r.log)
        else:
            found[r.flag] = d.FloatDistribution(r.low, r.high, log=r.log)
    return found


def as_text(value) -> str:
    """A drawn value as a flag's text: 4 significant digits for a float."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Sampler:
    def __init__(self, spec: SweepSpec, runs: RunStore, trials: list[Trial]):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna, self.spec, self.runs = optuna, spec, runs
        self.space = distributions(spec)
        self.study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=spec.first_seed)
        )
        self.pending: dict[str, object] = {}  # group key -> optuna trial, told when it ends
        self.groups = list(dict.fromkeys(t.group for t in trials))
        for key in self.groups:
            group = [t for t in trials if t.group == key]
            if all(t.state in ENDED for t in group):
                self._add_past(group)

    def more(self) -> bool:
        return len(self.groups) < self.spec.trials

    def draw(self) -> dict:
        trial = self.study.ask(self.space)
        setting = {flag: as_text(trial.params[flag]) for flag in self.space}
        key = group_key(setting)
        self.groups.append(key)
        self.pending[key] = trial
        return setting

    def ended(self, trials: list[Trial]) -> None:
        """Tell the sampler the value of each drawn setting whose seeds all ended."""
        for key, optuna_trial in list(self.pending.items()):
            group = [t for t in trials if t.group == key]
            if group and all(t.state in ENDED for t in group):
                value = self._value(group)
                state = self.optuna.trial.TrialState
                if value is None:
                    self.study.tell(optuna_trial, state=state.FAIL)
                else:
                    self.study.tell(optuna_trial, value)
                del self.pending[key]

    def _value(self, group: list[Trial]) -> float | None:
        values = [
            final_value(self.runs, t, self.spec.metric) for t in group if t.state == "finished"
        ]
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    def _add_past(self, group: list[Trial]) -> None:
        value = self._value(group)
        params = {}
        for flag, dist in self.space.items():
            text = group[0].setting.get(flag)
            if text is None:
                return
            params[flag] = text if flag in self.spec.grid else json.loads(text)
            if not dist._contains(dist.to_internal_repr(params[flag])):
                return  # drawn under another spec: not this sampler's
        state = self.optuna.trial.TrialState
        self.study.add_trial(
            self.optuna.trial.create_trial(
                params=params,
                distributions=self.space,
                value=value,
                state=state.COMPLETE if value is not None else state.FAIL,
            )
        )
