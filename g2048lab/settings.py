"""The allowed range of each config field, declared beside the field and checked in one place.

A config dataclass gives a numeric field its range where it defines it::

    clip_coef: float = setting(0.2, gt=0)  # policy ratio clip

and calls ``check_settings(self)`` first thing in ``__post_init__``. Every float field,
ranged or not, must also be finite: a NaN or an infinity in a setting only ever shows up
later as a loss that is not a number. The command line (options/config_flags.py) checks a flag with
``problem`` against the same range, so its one-line message names the flag as typed:
``--ppo.clip-coef must be > 0, got -1``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_SEED", "Range", "check_settings", "problem", "setting", "show", "type_options"]

MAX_SEED = 2**63 - 1
"""The largest seed: torch.manual_seed takes up to 2**64 - 1, and a run adds offsets to its
seed (one per rank)."""


@dataclass(frozen=True)
class Range:
    """Bounds of a number: ``gt`` / ``ge`` below, ``lt`` / ``le`` above (None: open)."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    hint: str = ""  # appended to the message: what a good value is

    def __contains__(self, value: float) -> bool:
        return not (
            (self.gt is not None and not value > self.gt)
            or (self.ge is not None and not value >= self.ge)
            or (self.lt is not None and not value < self.lt)
            or (self.le is not None and not value <= self.le)
        )

    def describe(self) -> str:
        """``> 0``, ``>= 1``, ``in (0, 1]``."""
        below, above = (self.gt, self.ge), (self.lt, self.le)
        if below != (None, None) and above != (None, None):
            left = f"({show(self.gt)}" if self.gt is not None else f"[{show(self.ge)}"
            right = f"{show(self.lt)})" if self.lt is not None else f"{show(self.le)}]"
            return f"in {left}, {right}"
        bounds = [(">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le)]
        return " and ".join(f"{op} {show(v)}" for op, v in bounds if v is not None) or "a number"


def setting(
    default: Any,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    hint: str = "",
    flag: bool = True,
) -> Any:
    """A dataclass field with ``default`` and an allowed range (``check_settings`` checks it).
    ``flag=False``: a field set from elsewhere (the model's board, from the run's game), which
    ``g2048lab train`` offers no flag for."""
    metadata = {"range": Range(gt, ge, lt, le, hint), "flag": flag}
    return dataclasses.field(default=default, metadata=metadata)


def show(value: Any) -> str:
    """A number as a person typed it: ``-1`` for -1.0, ``1e-05``, ``nan``."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


def problem(cls: type, name: str, value: Any) -> str | None:
    """What is wrong with ``value`` for the field ``name`` of the dataclass ``cls``, in words
    that follow its name ("must be > 0, got -1"); None if it is allowed. Checks only what
    the field alone decides: ranges, finiteness, None where None is not allowed."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    options = type_options(_hints(cls)[name])
    if value is None:
        numeric = set(options) <= {int, float}  # a number that None may not stand for
        return f"must be {_kinds(options)}, got None" if numeric else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None  # bools, strings and the rest: the dataclass checks them itself
    bounds = field.metadata.get("range", Range())
    finite = math.isfinite(value)
    if finite and value in bounds:
        return None
    if finite or bounds.describe().startswith("in "):  # an interval implies finite
        wanted = bounds.describe()
    else:
        wanted = "a finite number" + (f" {bounds.describe()}" if bounds != Range() else "")
    hint = f"; {bounds.hint}" if bounds.hint else ""
    return f"must be {wanted}, got {show(value)}{hint}"


def check_settings(config: Any) -> None:
    """Raise ValueError("PPOConfig.clip_coef must be > 0, got -1") for the first field of the
    dataclass instance ``config`` that ``problem`` refuses."""
    cls = type(config)
    for field in dataclasses.fields(cls):
        wrong = problem(cls, field.name, getattr(config, field.name))
        if wrong:
            raise ValueError(f"{cls.__name__}.{field.name} {wrong}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def type_options(kind: Any) -> tuple[Any, ...]:
    """The types a field's annotation allows: ``(float, NoneType)`` for ``float | None``,
    ``(int,)`` for ``int``."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return typing.get_args(kind)
    return (kind,)


def _kinds(options: tuple[Any, ...]) -> str:
    return " or ".join(getattr(t, "__name__", str(t)) for t in options)
