"""A JSON-lines log of a run: one line per PPO iteration, plus the run's events."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .messages import TrainingUpdate
from .subscribers import Subscriber, TrainingContext


class JsonLinesLog(Subscriber):
    """Appends ``{"type": "iteration", ...metrics}`` and ``{"type": "event", ...}`` lines to
    ``path`` (created with its folder); each line is flushed, so ``tail -f`` follows a run."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def _write(self, record: dict) -> None:
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()
        }
        self._file.write(json.dumps(clean) + "\n")
        self._file.flush()

    def on_iteration(self, metrics: dict, context: TrainingContext) -> None:
        self._write({"type": "iteration", "run": context.run_id, **metrics})

    def on_update(self, update: TrainingUpdate, context: TrainingContext) -> None:
        for event in update.events:
            self._write(
                {"type": "event", "run": context.run_id, "time": update.timestamp, "event": event}
            )

    def on_end(self, context: TrainingContext) -> None:
        self._write(
            {
                "type": "end",
                "run": context.run_id,
                "status": context.run.status,
                "error": context.run.error,
                "env_steps": context.env_steps,
                "iteration": context.iteration,
            }
        )
        self._file.close()
