"""Named n-tuple recipes: ``g2048lab train --learner ntuple --preset NAME``.

Each recipe is a set of ``NTupleConfig`` fields, the techniques of the published programs
added one at a time, so that a sweep over ``--grid preset=...`` measures what each adds
(README, "The n-tuple learner at the state of the art"). Flags given beside a preset
override its fields; without ``--preset`` a run takes ``NTupleConfig``'s defaults (TC on
the "auto" layout: 5x6 on 4x4, the best measured at 5 minutes).

- ``td``: plain TD(0) at rate 0.4 on the 4x6 network (every recipe but the last is 4x6),
  one set of weights (Szubert & Jaśkowski 2014; this learner before temporal coherence).
- ``tc``: temporal coherence, each weight at its own rate |E| / A (Jaśkowski 2018), meta
  rate 1.0.
- ``tc-stages``: TC and a second set of weights for boards holding a 16384 (Wu et al. 2014's
  stages, with Jaśkowski's weight promotion).
- ``otd-tc``: optimistic initial values with TD first, then TC (Guei, Chen & Wu 2022).
- ``5x6-tc``: TC on Jaśkowski's 5x6 network.
- ``5x6-tc-lambda``: and the λ-return of the next 3 moves at λ = 0.5 (Jaśkowski's delayed
  TC(λ)): the defaults.

Every recipe but the last learns by TD(0) (``td_horizon`` 1), as when they were measured.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RECIPES"]

_TD0 = {"td_lambda": 0.0, "td_horizon": 1}  # each afterstate toward the next one's value

RECIPES: dict[str, dict[str, Any]] = {
    "td": {
        **_TD0,
        "learning_rate": 0.4,
        "coherence": False,
        "stages": "",
        "optimistic_init": 0.0,
        "tuples": "4x6",
    },
    "tc": {
        **_TD0,
        "learning_rate": 1.0,
        "coherence": True,
        "stages": "",
        "optimistic_init": 0.0,
        "tuples": "4x6",
    },
    "tc-stages": {
        **_TD0,
        "learning_rate": 1.0,
        "coherence": True,
        "stages": "16384",
        "tuples": "4x6",
    },
    "otd-tc": {
        **_TD0,
        "tuples": "4x6",
        "learning_rate": 0.1,
        "optimistic_init": 160_000.0,
        "coherence": True,
        "coherence_after": 100_000_000,
    },
    "5x6-tc": {**_TD0, "learning_rate": 1.0, "coherence": True, "tuples": "5x6"},
    "5x6-tc-lambda": {
        "learning_rate": 1.0,
        "coherence": True,
        "tuples": "5x6",
        "td_lambda": 0.5,
        "td_horizon": 3,
    },
}
"""Preset name -> the ``NTupleConfig`` fields it sets."""
