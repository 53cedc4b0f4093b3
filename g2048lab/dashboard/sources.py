"""Where a dashboard's data comes from, and where its buttons go.

Two sources with one small API (``Source``):

- ``TrainerSource(trainer)``: a ``Trainer`` in this kernel. It subscribes its own
  ``UpdateQueue``, reads ``trainer.metrics`` incrementally and calls the trainer's
  methods; "checkpoint" asks the trainer's ``Checkpointer`` subscriber, if it has one.
- ``StoreSource(store, run_name)``: a run in a ``RunStore``, trained by this or another
  process, live or finished. Each poll reads the run, its new metric rows and its new
  messages; controls leave requests in the store, which the training process serves. A run
  deleted or renamed meanwhile (by any process) ends the source with ``Snapshot.gone``.

Neither touches a widget: ``poll()`` returns a ``Snapshot`` and the dashboard draws it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .. import games
from ..messages import TrainingUpdate
from ..recording import GameRecord
from ..status import ENDED, LIVE, Status
from ..store import RunNotFound, RunStore, StoreError
from ..subscribers import TrainingContext, UpdateQueue

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = [
    "ACTIONS",
    "Budget",
    "Gone",
    "Snapshot",
    "Source",
    "StoreSource",
    "TrainerSource",
    "ENDED",
]

ACTIONS = ("start", "pause", "resume", "stop", "checkpoint")
SILENT_AFTER_S = 10.0  # a live run sends a message at least every 2 s


@dataclass(frozen=True)
class Budget:
    """A run's limits, None where it has none."""

    total_env_steps: int | None = None
    max_seconds: float | None = None  # wall time spent running, pauses excluded

    def remaining_s(self, env_steps: int, elapsed_s: float, steps_per_s: float) -> float | None:
        """Seconds until the first limit is reached at the current speed; None if unknown."""
        left = []
        if self.max_seconds is not None:
            left.append(self.max_seconds - elapsed_s)
        if self.total_env_steps is not None and steps_per_s > 0:
            left.append((self.total_env_steps - env_steps) / steps_per_s)
        return max(0.0, min(left)) if left else None


@dataclass(frozen=True)
class Gone:
    """A run that has left the store under the name a view follows."""

    name: str
    renamed_to: str | None = None  # None: deleted

    def __str__(self) -> str:
        if self.renamed_to is not None:
            return f"run {self.name} was renamed to {self.renamed_to}"
        return f"run {self.name} was deleted: its records and checkpoints are gone"


@dataclass
class Snapshot:
    """What changed since the previous ``poll()``."""

    updates: list[TrainingUpdate]  # new messages, oldest first
    metrics: list[dict]  # new per-iteration rows, in iteration order
    status: Status
    error: str | None = None  # why a failed run failed
    final: bool = False  # the run has ended and this snapshot holds the last of its data
    notes: list[str] = field(default_factory=list)  # outcomes of controls, run events
    silent_s: float | None = None  # seconds since a live run last wrote (store only)
    reset: bool = False  # the run was rewound (resumed from a checkpoint): this snapshot
    # holds its whole history again, and what was shown before is to be dropped
    gone: Gone | None = None  # the run was deleted or renamed: nothing more will come


class Source(Protocol):
    """What a dashboard reads and controls; see the module docstring."""

    name: str  # run name
    game: str  # the name of the game it plays ("2048-5x5")
    device: str
    budget: Budget
    params_m: float | None  # parameters, millions; None until known
    # whether a view keeps reading the run after it has ended: another process can resume,
    # rename or delete a run in a store; a trainer in this kernel ends for good
    read_after_end: bool

    def poll(self) -> Snapshot: ...

    def can(self, action: str) -> bool:
        """Whether ``action`` (one of ACTIONS) makes sense now and is not already pending."""
        ...

    def control(self, action: str) -> str:
        """Carry out or request ``action``; returns a line saying what happened."""
        ...

    def all_metrics(self) -> list[dict]:
        """Every metric row of the run (for the CSV download)."""
        ...

    def best_game(self) -> GameRecord | None:
        """The run's highest-scoring recorded game so far, if any."""
        ...

    def close(self) -> None:
        """Stop receiving from the run (a trainer source unsubscribes)."""
        ...


class _EndingQueue(UpdateQueue):
    """An UpdateQueue that also notes when the run has ended (after its last message)."""

    def __init__(self, maxlen: int):
        super().__init__(maxlen)
        self.ended = threading.Event()

    def on_end(self, context: TrainingContext) -> None:
        self.ended.set()


class TrainerSource:
    """A ``Trainer`` in this kernel (see the module docstring)."""

    read_after_end = False

    def __init__(self, trainer: Trainer, queue_size: int = 256):
        from ..checkpoint import Checkpointer  # imports torch, as the trainer already did

        self.trainer = trainer
        self.name = trainer.run_id
        self.game = trainer.game.name
        self.device = str(trainer.device)
        self.budget = Budget(trainer.config.total_env_steps, trainer.config.max_seconds)
        self.params_m = None  # from the messages (a learner's view is the training thread's)
        self.learner = trainer.learner.name
        self.checkpointer = next(
            (s for s in trainer.subscribers if isinstance(s, Checkpointer)), None
        )
        self._queue = _EndingQueue(queue_size)
        if trainer.state in ENDED:  # it will send nothing more: start from its last message
            self._queue.ended.set()
        trainer.subscribe(self._queue)
        self._seed = trainer.updates.latest()  # what it sent before we subscribed
        self._metrics_read = -1  # the last iteration whose metrics row was read
        self._pending: dict[str, object] = {}  # action -> the trainer's state (or saves) when asked
        self._lock = threading.Lock()

    def poll(self) -> Snapshot:
        trainer = self.trainer
        ended = self._queue.ended.is_set()  # before reading, so nothing sent after is missed
        state = trainer.state
        updates = self._queue.drain()
        if self._seed is not None:
            if not updates:
                updates = [self._seed]
            self._seed = None
        rows = [row for row in list(trainer.metrics) if row["iteration"] > self._metrics_read]
        if rows:
            self._metrics_read = rows[-1]["iteration"]
        notes = [event for update in updates for event in update.events]
        with self._lock:
            for action, before in list(self._pending.items()):
                if action == "checkpoint":
                    done = trainer.handle.checkpoints_saved != before or state in ENDED
                else:
                    done = state != before
                if done:
                    del self._pending[action]
                    if action != "checkpoint":
                        notes.append(f"{action}: done, the run is {state}")
        error = None
        if trainer.error is not None:
            error = f"{type(trainer.error).__name__}: {trainer.error}"
        return Snapshot(updates, rows, state, error, final=ended and state in ENDED, notes=notes)

    def can(self, action: str) -> bool:
        _check_action(action)
        state = self.trainer.state
        with self._lock:
            if action in self._pending:
                return False
        if action == "checkpoint":
            return self.checkpointer is not None and state in _CAN_SAVE
        return state in _ALLOWED[action]

    def control(self, action: str) -> str:
        if not self.can(action):
            return f"{action}: not possible now (the run is {self.trainer.state})"
        with self._lock:
            saves = self.trainer.handle.checkpoints_saved
            self._pending[action] = saves if action == "checkpoint" else self.trainer.state
        try:
            if action == "checkpoint":
                return f"checkpoint: {self.checkpointer.request()}"
            getattr(self.trainer, action)()
        except Exception as error:  # e.g. start() racing another start(): say so, carry on
            with self._lock:
                self._pending.pop(action, None)
            return f"{action} failed: {error}"
        return f"{action} requested…"

    def all_metrics(self) -> list[dict]:
        return list(self.trainer.metrics)

    def best_game(self) -> GameRecord | None:
        best = list(self.trainer.recorder.best)
        return max(best, key=lambda game: game.score) if best else None

    def close(self) -> None:
        if self._queue in self.trainer.subscribers:
            self.trainer.subscribers.remove(self._queue)


class StoreSource:
    """A run in a ``RunStore``; ``run_name=None`` follows the run written most recently
    (chosen once, when the source is made). See the module docstring."""

    read_after_end = True  # until it is gone

    def __init__(self, store: RunStore | str, run_name: str | None = None):
        self.store = store if isinstance(store, RunStore) else RunStore(store, create=False)
        if run_name is None:
            latest = self.store.latest_run()
            if latest is None:
                raise StoreError(
                    f"no runs in {self.store.path} yet: start one (g2048lab train, or a "
                    "Trainer with a RunRecorder) and attach again"
                )
            run_name = latest.name
        run = self.store.get_run(run_name)  # RunNotFound names the runs there
        self.name = run.name
        self.gone: Gone | None = None
        # which run this is, whatever its name: a rename keeps both; a new run under a
        # deleted one's name may get its id (SQLite reuses the highest), not its creation time
        self._identity = (run.id, run.created_at)
        self.game = run.config.get("game", games.DEFAULT)  # a run from before games: 4x4
        self.device = run.device
        self.config = run.config
        self.budget = Budget(run.config.get("total_env_steps"), run.config.get("max_seconds"))
        self.params_m: float | None = None
        self._status = run.status
        self._rewinds = run.rewinds
        self._last_iteration = -1
        self._last_timestamp: float | None = None  # of the newest message read
        self._pending: dict[str, int] = {}  # action -> request id
        self._lock = threading.Lock()

    def poll(self) -> Snapshot:
        store, name = self.store, self.name
        try:
            run = store.get_run(name)  # first: rows and messages read after it are as new
        except RunNotFound:
            run = None
        if self.gone is None and (run is None or (run.id, run.created_at) != self._identity):
            self.gone = Gone(name, self._new_name())
        if self.gone is not None:
            return Snapshot([], [], self._status, final=True, gone=self.gone)
        reset = run.rewinds != self._rewinds
        if reset:  # what was read past the checkpoint is gone: read it all again
            self._rewinds, self._last_iteration, self._last_timestamp = run.rewinds, -1, None
        rows = store.metrics(name, self._last_iteration)
        if rows:
            self._last_iteration = int(rows[-1]["iteration"])
        since = self._last_timestamp if self._last_timestamp is not None else 0.0
        updates = store.update_history(name, since)
        latest = store.latest_update(name)
        newest = updates[-1].timestamp if updates else since
        if latest is not None and latest.timestamp > newest:
            updates.append(latest)
        if updates:
            self._last_timestamp = updates[-1].timestamp
            self.params_m = updates[-1].model_params
        self._status = run.status
        notes = [event for update in updates for event in update.events]
        with self._lock:
            for action, request_id in list(self._pending.items()):
                request = store.request_state(request_id)
                if request.acknowledged_at is not None:
                    del self._pending[action]
                    notes.append(f"{action}: {request.result}")
        silent = time.time() - run.updated_at if run.status in LIVE else None
        return Snapshot(
            updates, rows, run.status, run.error, run.status in ENDED, notes, silent, reset
        )

    def _new_name(self) -> str | None:
        """The run's name now, if it was renamed; None if it was deleted."""
        return next(
            (r.name for r in self.store.list_runs() if (r.id, r.created_at) == self._identity),
            None,
        )

    def can(self, action: str) -> bool:
        _check_action(action)
        with self._lock:
            if action in self._pending:
                return False
        if action == "start" or self.gone is not None:  # a run in a store is started by
            return False  # its own process; a gone one is controlled by nobody
        if action == "checkpoint":
            return self._status in _CAN_SAVE
        return self._status in _ALLOWED[action]

    def control(self, action: str) -> str:
        if self.gone is not None:
            return f"{action}: not possible, {self.gone}"
        if not self.can(action):
            return f"{action}: not possible now (the run is {self._status})"
        try:
            request_id = self.store.request(self.name, action)
        except RunNotFound:  # deleted or renamed since the last poll, which will say so
            return f"{action}: not possible, run {self.name} is no longer in the store"
        with self._lock:
            self._pending[action] = request_id
        return f"{action} requested… (the training process answers within about 2 s)"

    def all_metrics(self) -> list[dict]:
        return self.store.metrics(self.name)

    def best_game(self) -> GameRecord | None:
        games = self.store.games(self.name)  # best first
        return self.store.load_game(games[0].id) if games else None

    def close(self) -> None:
        return None  # nothing held: each read opens what it needs


_ALLOWED = {
    "start": (Status.IDLE,),
    "pause": (Status.RUNNING,),
    "resume": (Status.PAUSING, Status.PAUSED),
    "stop": (Status.RUNNING, Status.PAUSING, Status.PAUSED),
}
_CAN_SAVE = (Status.RUNNING, Status.PAUSING, Status.PAUSED)


def _check_action(action: str) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: choose one of {', '.join(ACTIONS)}")
