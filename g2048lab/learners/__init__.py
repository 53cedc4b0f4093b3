"""Learners: the algorithms a run can train, by name (``g2048lab train --learner NAME``).

``register`` adds a ``Learner`` subclass under its ``name``; ``get`` finds one, with
an error that lists the names there are. The built-in ones are registered on first use,
so importing this package stays cheap.
"""

from __future__ import annotations

import importlib

from .base import Agent, Learner, LearnerSetup, LearnerView, RunHooks

__all__ = [
    "Agent",
    "Learner",
    "LearnerSetup",
    "LearnerView",
    "RunHooks",
    "get",
    "names",
    "register",
]

BUILTIN = {
    "ppo": ".ppo.ppo_learner",
    "ntuple": ".ntuple.ntuple_learner",
}  # name -> module that registers it
_REGISTRY: dict[str, type[Learner]] = {}


class UnknownLearner(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def register(cls: type[Learner]) -> type[Learner]:
    """Add a learner class under ``cls.name`` (usable as a class decorator)."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a learner needs a name that is an identifier, got {name!r}")
    _REGISTRY[name] = cls
    return cls


def get(name: str) -> type[Learner]:
    """The learner class registered as ``name``."""
    if name not in _REGISTRY and name in BUILTIN:
        importlib.import_module(BUILTIN[name], __name__)
    if name not in _REGISTRY:
        raise UnknownLearner(f"no learner named {name!r}; choose one of {', '.join(names())}")
    return _REGISTRY[name]


def names() -> list[str]:
    """Every learner name there is: the built-in ones and those registered since."""
    return sorted({*BUILTIN, *_REGISTRY})
