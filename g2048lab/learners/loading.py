"""Reading what a learner saved: a checkpoint checked field by field, and the one place
an ``Agent`` is built from a checkpoint (``eval``, ``play``, a teacher, notebooks).

``checkpoint.read_checkpoint`` knows the file and the run's fields; the learner named in
the file (``learners.get``) checks its own (``Learner.check_payload``) and builds its player
(``Learner.load_agent``). This module joins the two, one floor above both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import games
from ..checkpoint import CheckpointError, field_error, learner_name, read_checkpoint
from . import get
from .base import Agent

__all__ = ["LoadedAgent", "load_agent", "load_checkpoint"]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint (a file, or a run folder: its latest file) and check every field a
    reader uses: the run's (``read_checkpoint``), then its learner's. Raises
    ``CheckpointError`` in one line naming the file and what is wrong with it."""
    payload = read_checkpoint(path, map_location)
    try:
        learner = get(learner_name(payload))
    except KeyError as error:
        raise CheckpointError(
            f"{path} was written by a learner this g2048lab does not have ({error})"
        ) from None
    learner.check_payload(payload, field_error(path))
    return payload


@dataclass(frozen=True)
class LoadedAgent:
    """A player built from a checkpoint, with what the file says about it."""

    agent: Agent
    learner: str  # the learner that wrote it ("ppo", "ntuple", ...)
    game: games.Game  # the game it was trained on (2048 on 4x4 for files from before games)
    payload: dict[str, Any]  # the checkpoint's fields, as read


def load_agent(source: str | Path, device: torch.device | str = "cpu") -> LoadedAgent:
    """The agent saved at ``source`` (a checkpoint file or a run folder), on ``device``."""
    payload = load_checkpoint(source)
    name = learner_name(payload)
    try:
        game = games.get(payload.get("game") or games.DEFAULT)
    except KeyError as error:
        message = f"{source} is of a game this g2048lab does not have ({error})"
        raise CheckpointError(message) from None
    agent = get(name).load_agent(payload, torch.device(device))
    return LoadedAgent(agent=agent, learner=name, game=game, payload=payload)
