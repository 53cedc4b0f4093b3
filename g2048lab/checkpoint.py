"""Checkpoint files: written atomically, read without executing pickled code.

A checkpoint is one ``torch.save`` file holding plain containers and tensors
(``Trainer.state_dict()``: weights, optimiser, RNG states, configs, counters,
versions). ``save_checkpoint`` writes a temporary file beside the target, fsyncs
it and renames it over the target, so a crash leaves either the old file or the
new one, never half a file. ``load_checkpoint`` uses ``torch.load(weights_only=True)``
and turns every way a file can be wrong into one ``CheckpointError`` line.

``CheckpointManager`` keeps a run folder's files: ``ckpt-<iteration>.pt`` (the
last K) and ``best.pt``. ``Checkpointer`` is the trainer subscriber that saves
every N games and/or M minutes, on request, and when the run ends.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from .subscribers import Subscriber, TrainingContext

__all__ = [
    "CheckpointError",
    "CheckpointManager",
    "Checkpointer",
    "FORMAT",
    "FORMAT_VERSION",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT = "g2048lab-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why and what to do, in one line."""


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise CheckpointError(
            f"cannot write a checkpoint in {path.parent}: {error.strerror}"
        ) from None
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **payload}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform can open a folder; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``; raise ``CheckpointError`` if it is
    missing, truncated, corrupt, foreign or from a newer g2048lab."""
    path = Path(path)
    if path.is_dir():
        latest = CheckpointManager(path).latest()
        if latest is None:
            raise CheckpointError(f"no checkpoint files in {path}")
        path = latest
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        reason = (
            str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__
        )
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or corrupt: {reason}); "
            "use an earlier checkpoint of the run"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a g2048lab checkpoint")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer g2048lab (format {payload['format_version']}); "
            "upgrade g2048lab to read it"
        )
    return payload


class CheckpointManager:
    """The checkpoint files of one run folder: the last ``keep_last`` and the best."""

    PATTERN = re.compile(r"ckpt-(\d+)\.pt$")

    def __init__(self, folder: str | Path, keep_last: int = 3):
        self.folder = Path(folder)
        self.keep_last = keep_last
        self._best: float | None = None  # score of best.pt, read from the file once

    def saved(self) -> list[Path]:
        """Numbered checkpoints, oldest first."""
        if not self.folder.is_dir():
            return []
        found = [
            (int(m.group(1)), p) for p in self.folder.iterdir() if (m := self.PATTERN.match(p.name))
        ]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        saved = self.saved()
        return saved[-1] if saved else None

    @property
    def best_path(self) -> Path:
        return self.folder / "best.pt"

    def save(self, payload: dict[str, Any], score: float | None = None) -> Path:
        """Write ``ckpt-<iteration>.pt``; also ``best.pt`` when ``score`` beats the best so far.

        Older numbered files beyond ``keep_last`` are deleted after the new one is safe.
        """
        for stale in self.folder.glob(".*.tmp") if self.folder.is_dir() else []:
            stale.unlink(missing_ok=True)  # left by a writer that was killed mid-write
        path = save_checkpoint(payload, self.folder / f"ckpt-{payload['iteration']:07d}.pt")
        if score is not None and score > self._best_score():
            save_checkpoint({**payload, "best_score_of_file": score}, self.best_path)
            self._best = score
        for old in self.saved()[: -self.keep_last]:
            old.unlink(missing_ok=True)
        return path

    def _best_score(self) -> float:
        if self._best is None:
            self._best = float("-inf")
            if self.best_path.is_file():
                try:
                    payload = load_checkpoint(self.best_path)
                    self._best = float(payload.get("best_score_of_file", float("-inf")))
                except CheckpointError:
                    pass  # a broken best.pt is replaced by the next good one
        return self._best


class Checkpointer(Subscriber):
    """Saves the trainer's state every ``every_episodes`` games and/or ``every_minutes``,
    when ``request()`` is called, and when the run ends (stop, budget, failure).

    Saves happen in the training thread at the end of a PPO iteration, so a
    checkpoint always holds a consistent state; a request is served within one
    iteration. The score used for ``best.pt`` is the mean score of recent games.
    """

    def __init__(
        self,
        manager: CheckpointManager,
        every_episodes: int | None = None,
        every_minutes: float | None = 10.0,
    ):
        self.manager = manager
        self.every_episodes = every_episodes
        self.every_minutes = every_minutes
        self.last_path: Path | None = None
        self._requested = False
        self._last_episodes = 0
        self._last_time = time.monotonic()

    def request(self) -> str:
        """Ask for a checkpoint at the end of the current iteration (thread-safe)."""
        self._requested = True
        return "a checkpoint will be saved at the end of the current iteration"

    def on_iteration(self, metrics: dict, context: TrainingContext) -> None:
        due_games = (
            self.every_episodes and context.episodes - self._last_episodes >= self.every_episodes
        )
        due_time = (
            self.every_minutes and time.monotonic() - self._last_time >= 60 * self.every_minutes
        )
        if self._requested or due_games or due_time:
            self.save(context)

    def on_end(self, context: TrainingContext) -> None:
        if context.iteration > 0 or context.env_steps > 0:
            self.save(context)

    def save(self, context: TrainingContext) -> Path:
        trainer = context.trainer
        self._requested = False
        self._last_episodes = context.episodes
        self._last_time = time.monotonic()
        score = (
            float(sum(trainer.recent_scores) / len(trainer.recent_scores))
            if trainer.recent_scores
            else None
        )
        self.last_path = self.manager.save(trainer.state_dict(), score)
        trainer.note(f"checkpoint saved: {self.last_path}")
        return self.last_path
