"""Kickstarting: PPO with an added distillation loss toward a teacher's policy.

Schmitt et al. 2018, "Kickstarting Deep Reinforcement Learning": the student plays and
learns with its own RL loss, plus ``weight * KL(teacher || student)`` on the boards it
visits; the weight falls linearly to zero over ``anneal_steps`` env steps, so the student
ends on its own. Any agent that can rank moves can teach (``Agent.move_probs``): an
n-tuple network through a softmax over its move values (reward + afterstate value, in
score points, at ``temperature`` points), a PPO checkpoint through its policy.

Beside the policy, a teacher that can value boards in score points
(``Agent.board_values``: an n-tuple network) can teach the value head too:
``value_weight * 0.5 * (value - teacher's value)^2`` on the same boards, annealed on the
same schedule. The value head predicts the discounted return of the shaped reward, so the
two are in the same units only for a reward linear in the raw score with nothing added
and no discount (``check_teacher_value_units``); ``teacher_value_targets`` puts the
teacher's values in the value head's normalised units.

The pure pieces are here: the config, the weight schedules, the losses' targets and the
agreement metric; ``run_teacher`` builds the teacher a run still needs from its checkpoint. The PPO
learner wires them into its rollout (the teacher's probabilities per board) and its update
(the loss).

A run names its teacher by path, and a path can break (the teacher's run renamed, moved or
deleted). A resumed student whose teacher's weight has annealed to 0 never reads the
teacher; before that, a missing teacher is one line naming the path, and the run is
pointed at the teacher's new place with ``train --resume RUN --teacher PATH``
(``repoint_teacher``), the one teacher flag a resumed run takes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from ...engine.env import RewardConfig

__all__ = [
    "TeacherConfig",
    "agreement",
    "check_teacher_value_units",
    "distillation_loss",
    "load_teacher",
    "repoint_teacher",
    "run_teacher",
    "teacher_value_targets",
    "teacher_value_weight",
    "teacher_weight",
]


@dataclass(frozen=True)
class TeacherConfig:
    """Who teaches a PPO student, how hard and for how long."""

    source: str = ""  # the teacher's checkpoint file or run folder
    # the distillation loss's weight at the start: 0.2 beat 1 in two 30-minute seeds (README)
    weight: float = 0.2
    anneal_steps: int = 2_000_000  # env steps over which the weight falls linearly to 0
    temperature: float | None = None  # teacher softmax temperature; None: the teacher's own
    # the value head's regression onto the teacher's value at the start, annealed like
    # ``weight``; 0: the policy alone is taught (and checkpoints from before it read as 0)
    value_weight: float = 0.0

    def __post_init__(self) -> None:
        if not _is_number(self.weight) or not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(
                f"teacher weight must be at least 0 and finite, got {self.weight}; 0.2 is the "
                "default"
            )
        v = self.value_weight
        if not _is_number(v) or not (math.isfinite(v) and v >= 0):
            raise ValueError(
                f"teacher value-weight must be at least 0 and finite, got {v}; 0 (off) is the "
                "default"
            )
        if not isinstance(self.anneal_steps, int) or isinstance(self.anneal_steps, bool):
            raise ValueError(
                f"teacher anneal-steps must be a whole number, got {self.anneal_steps}"
            )
        if self.anneal_steps < 1:
            raise ValueError(f"teacher anneal-steps must be at least 1, got {self.anneal_steps}")
        t = self.temperature
        if t is not None and not (_is_number(t) and math.isfinite(t) and t > 0):
            raise ValueError(f"teacher temperature must be positive and finite, got {t}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def teacher_weight(config: TeacherConfig, env_steps: int) -> float:
    """The distillation weight after ``env_steps`` steps: linear from ``weight`` to 0."""
    return config.weight * max(0.0, 1.0 - env_steps / config.anneal_steps)


def teacher_value_weight(config: TeacherConfig, env_steps: int) -> float:
    """The value-regression weight after ``env_steps`` steps: linear from ``value_weight``
    to 0 over the same ``anneal_steps`` as ``teacher_weight``."""
    return config.value_weight * max(0.0, 1.0 - env_steps / config.anneal_steps)


def check_teacher_value_units(
    teacher: TeacherConfig | None, reward: RewardConfig, gamma: float
) -> None:
    """ValueError in one line, saying what to set, when the teacher is asked to teach the
    value (``value_weight`` > 0) but has no source, or its values (undiscounted raw score)
    are not the value head's units: those need ``reward`` linear in the raw score with no
    bonus or penalty (the return is then ``score_weight`` * the teacher's value) and
    ``gamma`` 1. Nothing to check without a teacher or with ``value_weight`` 0."""
    if teacher is None or teacher.value_weight == 0:
        return
    if not teacher.source:
        raise ValueError(
            "--teacher.value-weight needs a teacher: add --teacher RUN_OR_CHECKPOINT, or set "
            "--teacher.value-weight 0"
        )
    wrong = []
    if reward.log_score:
        wrong.append("--reward.log-score false")
    for name in ("survival_bonus", "merge_bonus", "game_over_penalty"):
        if getattr(reward, name) != 0:
            wrong.append(f"--reward.{name.replace('_', '-')} 0 (now {getattr(reward, name):g})")
    if gamma != 1:
        wrong.append(f"--ppo.gamma 1 (now {gamma:g})")
    if wrong:
        raise ValueError(
            f"--teacher.value-weight {teacher.value_weight:g} regresses the value head on the "
            "teacher's undiscounted score, which needs the reward in the same units: set "
            f"{', '.join(wrong)}; or set --teacher.value-weight 0"
        )


def teacher_value_targets(
    values_points: Tensor, reward: RewardConfig, return_mean: float, return_std: float
) -> Tensor:
    """(N,) the teacher's board values in score points -> (N,) in the value head's units:
    the return they stand for (``score_weight`` points each, under the reward
    ``check_teacher_value_units`` accepts), normalised as the returns are
    (``(return - return_mean) / return_std``; 0 and 1 when values are not normalised)."""
    return (reward.score_weight * values_points - return_mean) / return_std


def distillation_loss(logits: Tensor, teacher_probs: Tensor) -> Tensor:
    """(M,) KL(teacher || student) in nats per board.

    ``logits`` (M, 4) the student's masked logits (-inf where illegal); ``teacher_probs``
    (M, 4) the teacher's move probabilities, 0 where illegal. The gradient is that of the
    cross-entropy the paper uses; the KL is 0 when the student matches the teacher.
    """
    logp = F.log_softmax(logits.float(), dim=-1)  # (M, 4)
    taught = teacher_probs > 0
    # 0 * log 0 = 0, and no -inf reaches the product (it would make NaN gradients)
    student = logp.masked_fill(~taught, 0.0)
    teacher = teacher_probs.clamp_min(1e-30).log().masked_fill(~taught, 0.0)
    return (teacher_probs * (teacher - student)).sum(-1)


def agreement(logits: Tensor, teacher_probs: Tensor) -> Tensor:
    """() share of boards where the student's most probable move is the teacher's."""
    return (logits.argmax(-1) == teacher_probs.argmax(-1)).float().mean()


def run_teacher(config: TeacherConfig | None, device: torch.device, env_steps: int = 0):
    """The teacher a run at ``env_steps`` still learns from: None without a teacher or once
    its weight is 0 from here on (a resumed student whose teacher has annealed away needs
    neither the teacher's file nor its memory), else ``load_teacher(config.source)``.

    A resumed run's teacher missing from its path is a ValueError in one line: put it back,
    or point the run at its new place with ``--teacher``.
    """
    if config is None or (
        teacher_weight(config, env_steps) == 0 and teacher_value_weight(config, env_steps) == 0
    ):
        return None
    source = Path(config.source)
    if env_steps > 0 and not source.exists():
        raise ValueError(
            f"the teacher {source} is gone (renamed, moved or deleted?) and this run learns "
            f"from it until env step {config.anneal_steps:,} (now {env_steps:,}): put it back, "
            "or say where it is now: g2048lab train --resume RUN --teacher RUN_OR_CHECKPOINT"
        )
    return load_teacher(source, device, values=config.value_weight > 0)


def repoint_teacher(config: TeacherConfig | None, source: str | Path) -> TeacherConfig:
    """``config`` teaching from ``source`` instead (where its teacher is now), the weight and
    the schedule kept; ValueError for a run that has no teacher."""
    if config is None:
        raise ValueError(
            "this run has no teacher to point elsewhere: --teacher with --resume only says "
            "where a kickstarted run's teacher is now; to kickstart, start a new run"
        )
    return replace(config, source=str(source))


def load_teacher(source: str | Path, device: torch.device, values: bool = False):
    """The ``Agent`` saved at ``source`` (a checkpoint file or a run folder: its latest file).

    Raises ``CheckpointError`` for a file that is not a readable checkpoint (the message
    says it is the teacher) and ValueError for a learner that cannot rank moves, or with
    ``values`` (it is to teach the value too) cannot value boards, each in one line.
    """
    from ...checkpoint import CheckpointError
    from ..base import Agent
    from ..loading import load_agent

    try:
        agent = load_agent(source, device).agent
    except CheckpointError as error:
        raise CheckpointError(f"cannot load the teacher: {error}") from None
    if type(agent).move_probs is Agent.move_probs:
        raise ValueError(f"{agent.describe()} at {source} cannot rank moves, so it cannot teach")
    if values and type(agent).board_values is Agent.board_values:
        raise ValueError(
            f"{agent.describe()} at {source} cannot value boards in score points, so it cannot "
            "teach the value: set --teacher.value-weight 0, or teach from an ntuple run"
        )
    return agent
