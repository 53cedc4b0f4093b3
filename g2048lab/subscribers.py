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

if TYPE_CHECKING:
    from .recording import GameRecord
    from .trainer import Trainer

__all__ = ["Subscriber", "TrainingContext", "UpdateQueue"]


@dataclass
class TrainingContext:
    """What a subscriber may know of the run, besides the message itself."""

    trainer: Trainer
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
