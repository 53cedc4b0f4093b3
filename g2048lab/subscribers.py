"""What the trainer emits, and to whom: subscribers in the style of Stable-Baselines3's
callbacks, with a typed context instead of the loop's locals.

This module imports no torch, so viewers that only read a run stay light.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .messages import TrainingUpdate
from .status import Control, Status

if TYPE_CHECKING:
    from .recording import GameRecord

__all__ = ["RunHandle", "Subscriber", "TrainingContext", "UpdateQueue"]


class RunHandle:
    """What a subscriber may see and ask of the run it listens to, and nothing more: its
    status and error, control requests, events, the recent score, and a checkpoint's
    payload for the ``Checkpointer``. Thread-safe where the run's methods are."""

    def __init__(self, run):
        self._run = run  # a trainer.Trainer; private, so subscribers cannot reach past this
        self.checkpoints_saved = 0  # counts Checkpointer saves (viewers wait on it)
        self.last_checkpoint: str | None = None

    @property
    def run_id(self) -> str:
        return self._run.run_id

    @property
    def learner(self) -> str:
        return self._run.learner.name

    @property
    def config(self):
        """The run's ``TrainerConfig`` (frozen)."""
        return self._run.config

    @property
    def status(self) -> Status:
        return self._run.state

    @property
    def error(self) -> str | None:
        """ "TypeName: message" of the error that failed the run, else None."""
        error = self._run.error
        return None if error is None else f"{type(error).__name__}: {error}"

    @property
    def recent_mean_score(self) -> float | None:
        """Mean raw score of the last 100 finished games, None before the first."""
        scores = list(self._run.recent_scores)
        return sum(scores) / len(scores) if scores else None

    def request(self, control: Control | str) -> None:
        """Pause, resume or stop the run (checkpoints go through the ``Checkpointer``)."""
        control = Control(control)
        if control not in (Control.PAUSE, Control.RESUME, Control.STOP):
            raise ValueError(f"a run handle cannot {control}: pause, resume or stop")
        getattr(self._run, control.value)()

    def note(self, event: str) -> None:
        """A line for the ``events`` of the run's next message."""
        self._run.note(event)

    def checkpoint_payload(self) -> dict:
        """The run's full state for a checkpoint file (``Trainer.state_dict``); call it from
        the training thread (in ``on_iteration`` or ``on_end``) for a consistent state."""
        return self._run.state_dict()

    def checkpoint_saved(self, path) -> None:
        """Tell the run and its viewers that a checkpoint was written to ``path``."""
        self.last_checkpoint = str(path)
        self.checkpoints_saved += 1
        self._run.note(f"checkpoint saved: {path}")


@dataclass
class TrainingContext:
    """What a subscriber may know of the run, besides the message itself."""

    run: RunHandle
    run_id: str
    iteration: int
    env_steps: int
    episodes: int
    elapsed_s: float


class Subscriber:
    """Receives what the trainer emits. Return False from a method to stop training."""

    def on_update(self, update: TrainingUpdate, context: TrainingContext) -> bool | None:
        return None

    def on_iteration(self, metrics: dict[str, float], context: TrainingContext) -> bool | None:
        return None

    def on_game(self, game: GameRecord, context: TrainingContext) -> bool | None:
        return None

    def on_end(self, context: TrainingContext) -> None:
        return None


class UpdateQueue(Subscriber):
    """A bounded queue of messages that drops the oldest: the default subscriber for UIs."""

    def __init__(self, maxlen: int = 64):
        self._items: deque[TrainingUpdate] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.dropped = 0

    def on_update(self, update: TrainingUpdate, context: TrainingContext) -> None:
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(update)

    def drain(self) -> list[TrainingUpdate]:
        """All queued messages, oldest first; empties the queue."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items

    def latest(self) -> TrainingUpdate | None:
        with self._lock:
            return self._items[-1] if self._items else None
