"""The PPO learner's settings: one dataclass, what a run's ``TrainerConfig.learner_config``
holds for ``--learner ppo``, and the two ways to build it: from the command line's flags
(``--preset``, ``--teacher`` and the ``--model.*``, ``--ppo.*``, ``--reward.*`` and
``--teacher.*`` groups, ``FLAGS``) and from a checkpoint's fields.

A checkpoint keeps these settings as the PPO learner's own flat fields (``preset``,
``model_config``, ``ppo_config``, ``reward_config``, ``teacher_config``,
``start_config``), the same in files written before learners owned their settings, so
every PPO checkpoint reads back here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ...engine.env import RewardConfig
from ...model import PRESETS, ModelConfig
from .algorithm import PPOConfig
from .kickstart import TeacherConfig
from .starts import StartConfig

__all__ = ["FLAGS", "PRECISIONS", "PPOLearnerConfig", "config_from_flags", "config_from_payload"]

PRECISIONS = ("auto", "fp32", "bf16")

FLAGS: dict[str, type] = {
    "ppo": PPOConfig,
    "model": ModelConfig,
    "reward": RewardConfig,
    "teacher": TeacherConfig,
    "start": StartConfig,
}
"""The ``--PREFIX.*`` flag groups of the PPO learner: prefix -> the dataclass behind them."""


PPO_BEFORE_THREADS = {"overlap": False, "update_threads": 1, "decoupled": False}
"""What a checkpoint's ``ppo_config`` without these fields trained with."""


@dataclass(frozen=True)
class PPOLearnerConfig:
    """What the PPO learner trains and how. ``model`` and ``ppo`` None: sized from the
    preset and the device (device.py); a given ``model`` overrides the preset."""

    preset: str = "auto"  # a name in model.PRESETS, or auto (the device manager picks one)
    model: ModelConfig | None = None  # the transformer; overrides the preset when given
    ppo: PPOConfig | None = None  # PPO's hyperparameters and batch sizes
    reward: RewardConfig = field(default_factory=RewardConfig)
    teacher: TeacherConfig | None = None  # a teacher to kickstart from (kickstart.py)
    start: StartConfig = field(default_factory=StartConfig)  # where training games begin
    precision: str = "auto"  # auto | fp32 | bf16 (autocast); auto: bf16 on CUDA that has it

    def __post_init__(self) -> None:
        if self.preset not in (*PRESETS, "auto"):
            raise ValueError(
                f"unknown preset {self.preset!r}; choose one of {', '.join([*PRESETS, 'auto'])}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.start.teacher_share > 0 and self.teacher is None:
            raise ValueError(
                "--start.teacher-share needs a teacher to play the games it starts from: "
                "add --teacher RUN_OR_CHECKPOINT"
            )


def config_from_flags(
    groups: dict[str, dict[str, Any]],
    preset: str | None,
    teacher: str | None,
    device: torch.device | str,
) -> PPOLearnerConfig:
    """The settings the command line asks for. ``groups``: {prefix: {field: value}} of the
    ``FLAGS`` given (each value already checked against its range); ``preset``: ``--preset``
    or None; ``teacher``: ``--teacher`` as a checkpoint path, or None; ``device``: where the
    run trains, which sizes ``auto`` and the batches when ``--model.*`` or ``--ppo.*`` fill
    in a preset's values. ValueError in one line for what only a whole dataclass can judge."""
    from ...device import ppo_sizes_for, resolve_preset, select_device

    if "teacher" in groups and teacher is None:
        raise ValueError("--teacher.* flags need --teacher RUN_OR_CHECKPOINT")
    preset = preset or "auto"
    settings: dict[str, Any] = {}
    if "model" in groups or "ppo" in groups:
        if isinstance(device, str):
            device = select_device(device)
        sized = resolve_preset(preset, device)
        if "model" in groups:
            settings["model"] = ModelConfig.from_preset(sized, **groups["model"])
        if "ppo" in groups:
            settings["ppo"] = replace(PPOConfig(**ppo_sizes_for(sized, device)), **groups["ppo"])
    if "reward" in groups:
        settings["reward"] = RewardConfig(**groups["reward"])
    if "start" in groups:
        settings["start"] = StartConfig(**groups["start"])
    if teacher is not None:
        settings["teacher"] = TeacherConfig(**{**groups.get("teacher", {}), "source": teacher})
    return PPOLearnerConfig(preset=preset, **settings)


def config_from_payload(payload: dict[str, Any]) -> PPOLearnerConfig:
    """The settings a PPO checkpoint was saved with (its flat ``*_config`` fields; a file from
    before kickstarting has no ``teacher_config``, one from before start states no
    ``start_config``). The precision is not saved: ``auto``."""
    teacher = payload.get("teacher_config")
    start = payload.get("start_config")
    return PPOLearnerConfig(
        start=StartConfig(**start) if start else StartConfig(),
        preset=payload["preset"] or "auto",
        model=ModelConfig(**payload["model_config"]),
        # a file from before the actor thread and the update's threads ran without them
        ppo=PPOConfig(**{**PPO_BEFORE_THREADS, **payload["ppo_config"]}),
        reward=RewardConfig(**payload["reward_config"]),
        teacher=TeacherConfig(**teacher) if teacher else None,
    )
