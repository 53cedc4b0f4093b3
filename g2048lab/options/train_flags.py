"""The arguments of ``g2048lab train`` and the settings they make, below the command line:
the ``train`` command parses with them, and a sweep checks every trial's flags with them
before it starts one (``sweeps.spec``). A learner's ``--PREFIX.*`` flags come from the
registry (``Learner.flags``), so a new learner adds its flags without a line here."""

from __future__ import annotations

import argparse

from .. import games, learners
from .arg_types import (
    DEFAULT_RUNS_DIR,
    game_name,
    positive_float,
    positive_int,
    run_name,
    seed_number,
)
from .config_flags import add_config_flags, overrides

__all__ = ["SKIPPED_FIELDS", "add_train_arguments", "checked_settings", "flag_groups"]

SKIPPED_FIELDS = ("seed", "source")  # seeds come from --seed, a teacher from --teacher


def flag_groups() -> dict[str, tuple[type, list[str]]]:
    """Every learner's ``--PREFIX.*`` flag groups, from the registry: {prefix: (the dataclass
    behind them, the learners that take them)}. Learners may share a group of one dataclass."""
    groups: dict[str, tuple[type, list[str]]] = {}
    for name in learners.names():
        for prefix, cls in learners.get(name).flags.items():
            known, takers = groups.setdefault(prefix, (cls, []))
            if known is not cls:
                raise TypeError(
                    f"--{prefix}.* flags are {known.__name__} for {takers[0]} and "
                    f"{cls.__name__} for {name}: give one of them another prefix"
                )
            takers.append(name)
    return groups


def checked_settings(args: argparse.Namespace) -> dict[str, dict]:
    """The ``--PREFIX.*`` flags given, {prefix: {field: value}}, each checked against its
    range and the learner it is for, and ``--preset`` and ``--teacher`` against the learner;
    ValueError in one line. Cheap: builds nothing (``g2048lab sweep`` checks every trial's
    flags with it before starting)."""
    groups = flag_groups()
    given = {prefix: overrides(args, prefix, cls) for prefix, (cls, _) in groups.items()}
    given = {prefix: fields for prefix, fields in given.items() if fields}
    learner = learners.get(args.learner)
    if "teacher" in given and args.teacher is None:
        raise ValueError("--teacher.* flags need --teacher RUN_OR_CHECKPOINT")
    if args.resume is None:
        for prefix in given:
            takers = groups[prefix][1]
            if args.learner not in takers:
                raise ValueError(
                    f"--{prefix}.* flags set the {' or '.join(takers)} learner's settings: "
                    f"add --learner {takers[0]} or drop them"
                )
        if args.teacher is not None and not learner.kickstarts:
            teachable = [n for n in learners.names() if learners.get(n).kickstarts]
            raise ValueError(
                f"--teacher and --teacher.* flags set the {' or '.join(teachable)} learner's "
                f"settings: add --learner {teachable[0]} or drop them"
            )
    if args.preset is not None and learner.presets and args.preset not in learner.presets:
        raise ValueError(
            f"unknown preset {args.preset!r}; choose one of {', '.join(learner.presets)}"
        )
    return given


def add_train_arguments(train: argparse.ArgumentParser) -> None:
    """Every argument of ``g2048lab train``, on ``train`` (the command's parser, or one of a
    sweep's that checks its trials' flags)."""
    train.add_argument(
        "--learner",
        default="ppo",
        choices=learners.names(),
        help="ppo: the MoE transformer trained with PPO (default); ntuple: a 4x6-tuple network "
        "trained by TD(0) on afterstates, 268 MB of weights (a fast, strong baseline)",
    )
    presets = {n: learners.get(n).presets for n in learners.names() if learners.get(n).presets}
    train.add_argument(
        "--game",
        type=game_name,
        default=None,
        help=f"the game to play: {', '.join(games.names())}, or 2048-RxC for 3 to 8 rows and "
        f"columns (default {games.DEFAULT}; a resumed run keeps its own)",
    )
    train.add_argument(
        "--preset",
        default=None,
        help="the learner's size or recipe, "
        + "; ".join(f"{name}: {', '.join(names)}" for name, names in presets.items())
        + " (default: the learner's own)",
    )
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int, help="env steps for the whole run")
    budget.add_argument("--minutes", type=positive_float, help="training minutes for the whole run")
    train.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    train.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    train.add_argument("--run-name", type=run_name, default=None, help="default: run-<date>-<time>")
    train.add_argument("--seed", type=seed_number, default=0)
    train.add_argument("--threads", type=positive_int, default=None, help="CPU threads")
    train.add_argument("--resume", metavar="RUN_NAME_OR_CHECKPOINT", default=None)
    train.add_argument("--checkpoint-minutes", type=positive_float, default=5.0)
    train.add_argument("--checkpoint-games", type=positive_int, default=None)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel under torchrun (NCCL on GPUs, gloo on CPUs)",
    )
    train.add_argument(
        "--dist-timeout",
        type=positive_float,
        default=60.0,
        help="seconds before a collective gives up on a silent rank",
    )
    train.add_argument(
        "--teacher",
        metavar="RUN_OR_CHECKPOINT",
        default=None,
        help="ppo: kickstart from this run's latest checkpoint (a run name, run folder or "
        "checkpoint file): a distillation loss toward its moves, annealed to 0 over "
        "--teacher.anneal-steps env steps. An ntuple teacher's moves are a softmax over its "
        "move values at 50 score points, a ppo teacher's its policy. With --resume: where "
        "the run's teacher is now, if it was renamed or moved",
    )
    for prefix, (cls, _) in flag_groups().items():
        add_config_flags(train, prefix, cls, skip=SKIPPED_FIELDS)
