"""What a sweep runs: its settings (a grid, or draws from ranges), seeds and train flags.

A *setting* is a dict {flag: value as text} over the swept flags, e.g.
``{"teacher.weight": "0.2", "learner": "ppo"}``; a *trial* is one setting with one seed,
trained as one ordinary run (``g2048lab train``); a *group* is the trials of one setting
(its seeds). A group's key is a short hash of its setting, stable across processes.

Pure: parsing and checking only; no store, no processes. A bad spec is a ValueError of
one line that says what to do (the CLI prints it, exit 2), raised before anything runs.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import re
from dataclasses import asdict, dataclass, field

__all__ = [
    "RandomRange",
    "SweepSpec",
    "check_sweep_name",
    "flag_value",
    "group_key",
    "parse_grid",
    "parse_random",
    "train_argv",
]

# train flags a sweep sets itself, per trial
RESERVED = ("run-name", "runs-dir", "resume", "seed", "quiet", "distributed", "dist-timeout")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,25}")
_FLAG = re.compile(r"[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)?")


@dataclass(frozen=True)
class RandomRange:
    """``--random FLAG=LOW:HIGH[:log]``: a value drawn from [low, high] (an int range when
    both ends are whole numbers), uniformly or on a log scale."""

    flag: str
    low: float
    high: float
    log: bool = False
    integer: bool = False


@dataclass(frozen=True)
class SweepSpec:
    """A sweep's plan, stored with it (``to_json``) so that ``sweep resume`` needs nothing
    else. ``grid``: {flag: [values]}; ``random``: ranges drawn ``trials`` times by Optuna's
    TPE sampler (the grid's flags then drawn as categories); ``train``: the flags every
    trial gets; ``parallel``: trials at once (0: what the cores allow); ``prune``: stop trials
    whose curve of ``metric`` is below the median at the same env steps (Optuna's
    MedianPruner), checked every ``prune_every`` env steps; ``eval_games``: greedy games
    each finished trial is evaluated on (0: none)."""

    grid: dict[str, list[str]] = field(default_factory=dict)
    random: list[RandomRange] = field(default_factory=list)
    trials: int = 0
    seeds: int = 1
    first_seed: int = 0
    train: list[str] = field(default_factory=list)
    parallel: int = 0
    prune: bool = False
    prune_every: int = 0  # env steps; 0: a tenth of the trial's --steps, else 100,000
    metric: str = "rollout/score_mean"
    eval_games: int = 0
    ray: str | None = None  # a Ray cluster's address, or None: this machine

    def __post_init__(self):
        if not self.grid and not self.random and self.seeds < 2:
            raise ValueError(
                "a sweep needs something to vary: --grid FLAG=V1,V2, --random FLAG=LOW:HIGH "
                "or --seeds S with S of 2 or more"
            )
        if self.random and self.trials < 1:
            raise ValueError("--random draws --trials N settings: give --trials 1 or more")
        if not self.random and self.trials:
            raise ValueError("--trials counts --random draws: give --random FLAG=LOW:HIGH too")
        if self.seeds < 1:
            raise ValueError(f"--seeds must be at least 1, got {self.seeds}")
        if self.eval_games < 0:
            raise ValueError(f"--eval-games must be 0 or more, got {self.eval_games}")
        if self.parallel < 0:
            raise ValueError(f"--parallel must be at least 1, got {self.parallel}")
        swept = [*self.grid, *(r.flag for r in self.random)]
        repeated = sorted({f for f in swept if swept.count(f) > 1})
        if repeated:
            raise ValueError(f"--{repeated[0]} is swept twice: give each flag once")

    @property
    def flags(self) -> list[str]:
        """The swept flags, in the order given."""
        return [*self.grid, *(r.flag for r in self.random)]

    def grid_settings(self) -> list[dict[str, str]]:
        """Every combination of the grid's values ([{}] for a seeds-only sweep)."""
        names = list(self.grid)
        return [dict(zip(names, values)) for values in itertools.product(*self.grid.values())]

    def seed_list(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SweepSpec:
        data = json.loads(text)
        data["random"] = [RandomRange(**r) for r in data.get("random", [])]
        return cls(**data)


def check_sweep_name(name: str) -> str:
    """A sweep's name: letters, digits, - and _, at most 26 (its runs are tagged sweep:NAME)."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"bad sweep name {name!r}: use letters, digits, - and _ (at most 26, starting with "
            "a letter or digit)"
        )
    return name


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """``["ppo.learning-rate=3e-4,1e-3", "learner=ppo,ntuple"]`` -> {flag: [values]}."""
    grid: dict[str, list[str]] = {}
    for item in items:
        flag, values = _split(item, "--grid", "FLAG=V1,V2,...")
        listed = [v.strip() for v in values.split(",")]
        if not values.strip() or any(not v for v in listed):
            raise ValueError(f"--grid {item}: an empty value; give FLAG=V1,V2,... (no empty ones)")
        if len(set(listed)) != len(listed):
            raise ValueError(f"--grid {item}: a value is listed twice; list each once")
        if flag in grid:
            raise ValueError(f"--{flag} is swept twice: give each flag once")
        grid[flag] = listed
    return grid


def parse_random(items: list[str]) -> list[RandomRange]:
    """``["ppo.learning-rate=1e-4:1e-3:log"]`` -> [RandomRange]."""
    ranges = []
    for item in items:
        flag, text = _split(item, "--random", "FLAG=LOW:HIGH[:log]")
        parts = text.split(":")
        log = len(parts) == 3 and parts[2] == "log"
        if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
            raise ValueError(f"--random {item}: write FLAG=LOW:HIGH or FLAG=LOW:HIGH:log")
        try:
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"--random {item}: LOW and HIGH must be numbers") from None
        if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
            raise ValueError(f"--random {item}: LOW must be below HIGH, both finite")
        if log and low <= 0:
            raise ValueError(f"--random {item}: a log range needs LOW > 0")
        integer = all(re.fullmatch(r"[+-]?\d+", p.strip()) for p in parts[:2])
        ranges.append(RandomRange(flag, low, high, log, integer))
    return ranges


def _split(item: str, option: str, form: str) -> tuple[str, str]:
    flag, sep, rest = item.partition("=")
    flag = flag.strip().removeprefix("--")
    if not sep or not _FLAG.fullmatch(flag):
        raise ValueError(f"{option} {item}: write {form}, FLAG a train flag without its --")
    if flag in RESERVED:
        raise ValueError(f"{option} {item}: the sweep sets --{flag} itself; use --seeds for seeds")
    return flag, rest


def group_key(setting: dict) -> str:
    """8 hex digits naming a setting (its group), the same in every process."""
    text = json.dumps({k: str(v) for k, v in setting.items()}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def train_argv(spec: SweepSpec, setting: dict, seed: int) -> list[str]:
    """The ``g2048lab train`` flags of one trial, before the run's own (name, folder)."""
    argv = list(spec.train)
    for flag, value in setting.items():
        argv += [f"--{flag}", str(value)]
    return [*argv, "--seed", str(seed)]


def flag_value(argv: list[str], flag: str) -> str | None:
    """The value of ``flag`` (``--threads``) in train flags, as ``--flag V`` or
    ``--flag=V``; the last one given, as argparse takes it; None if absent."""
    found = None
    for i, item in enumerate(argv):
        if item == flag and i + 1 < len(argv):
            found = argv[i + 1]
        elif item.startswith(flag + "="):
            found = item.split("=", 1)[1]
    return found


def check_train_flags(spec: SweepSpec, settings: list[dict]) -> None:
    """Parse every trial's flags as ``g2048lab train`` would and check their values (unknown
    flag, a value out of range, flags of another learner); ValueError in one line."""
    from ..options.train_flags import add_train_arguments, checked_settings

    for flag in spec.train:
        name = flag.removeprefix("--").split("=")[0]
        if flag.startswith("--") and name in RESERVED:
            raise ValueError(f"--{name} after --: the sweep sets it itself; drop it")
    for setting in settings:
        for seed in spec.seed_list()[:1]:
            argv = train_argv(spec, setting, seed)
            args = _parse_train(add_train_arguments, argv)
            checked_settings(args)


class _Refused(Exception):
    pass


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise _Refused(message)


def _parse_train(add_train_arguments, argv: list[str]) -> argparse.Namespace:
    parser = _RaisingParser(prog="g2048lab train")
    add_train_arguments(parser)
    try:
        return parser.parse_args(argv)
    except _Refused as error:
        raise ValueError(f"train {' '.join(argv)}: {error}") from None
