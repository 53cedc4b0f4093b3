"""``RunRecorder``: the subscriber that writes a training run into a RunStore and serves the
run's control requests. The trainer knows nothing of the store."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..messages import TrainingUpdate
from ..recording import GameRecord
from ..status import Status
from ..subscribers import RunHandle, Subscriber, TrainingContext
from .claims import RunClaim
from .run_store import RunStore


class RunRecorder(Subscriber):
    """Writes a training run into a RunStore and serves the control requests left there.

    Every message goes to ``put_update`` (so the run's status and counters follow the
    trainer), every iteration's metrics to ``add_metrics``, every recorded game to
    ``add_game``. With each message, at most every ``POLL_INTERVAL_S``, it serves the run's
    pending requests: pause, resume and stop go to the trainer; checkpoint calls
    ``checkpoint()``, whose returned text (a path, or what will happen) becomes the
    request's result. The trainer sends a message at least every 2 s, also while paused,
    so a request is served within about 2 s.

    Requests left pending from before the recorder was made (say, by a process that was
    killed) are acknowledged as ignored, so a resumed run does not obey stale ones.

    The recorder is the run's one writer: it claims the run when made (``RunBusy`` if
    another process writes it; pass ``claim`` if the caller claimed it already) and lets go
    when the run ends.
    """

    POLL_INTERVAL_S = 0.5

    def __init__(
        self,
        store: RunStore,
        run_name: str,
        checkpoint: Callable[[], str] | None = None,
        claim: RunClaim | None = None,
    ):
        self.store = store
        self.run_name = run_name
        self.checkpoint = checkpoint
        self.claim = claim or store.claim(run_name)  # also: RunNotFound before training
        self._last_poll = float("-inf")  # time.monotonic() s
        for stale in store.pending_requests(run_name):
            store.acknowledge(stale.id, "ignored: made before the run's current process")

    def on_update(self, update: TrainingUpdate, context: TrainingContext) -> None:
        self.store.put_update(self.run_name, update, self.claim)
        now = time.monotonic()
        if now - self._last_poll >= self.POLL_INTERVAL_S:
            self._last_poll = now
            for request in self.store.pending_requests(self.run_name):
                self.store.acknowledge(request.id, self._serve(request.action, context.run))

    def on_iteration(self, metrics: dict[str, float], context: TrainingContext) -> None:
        self.store.add_metrics(self.run_name, metrics)

    def on_game(self, game: GameRecord, context: TrainingContext) -> None:
        config = context.run.config
        self.store.add_game(
            self.run_name,
            game,
            keep_best=config.keep_best_games,
            keep_recent=config.keep_recent_games,
        )

    def on_end(self, context: TrainingContext) -> None:
        run = context.run
        try:
            self.store.set_status(self.run_name, run.status, run.error, self.claim)
            for request in self.store.pending_requests(self.run_name):
                self.store.acknowledge(request.id, "ignored: the run has ended")
        finally:
            self.claim.release()

    def _serve(self, action: str, run: RunHandle) -> str:
        """Carry out one request; returns the result to acknowledge it with."""
        if action == "checkpoint":
            if self.checkpoint is None:
                return "error: this run was started without checkpoints"
            try:
                return self.checkpoint()
            except Exception as error:  # the requester hears of it; training goes on
                return f"error: {error}"
        run.request(action)
        wanted = {
            "pause": (Status.PAUSING, Status.PAUSED),
            "resume": (Status.RUNNING,),
            "stop": (Status.STOPPING,),
        }[action]
        return "done" if run.status in wanted else f"ignored: the run is {run.status}"
