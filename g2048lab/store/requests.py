"""Control requests: a viewer asks a run's training process to pause, resume, stop or
checkpoint; the process (``RunRecorder``) serves each and acknowledges it with what came of
it."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..status import Control
from .connection import StoreConnection
from .errors import StoreError
from .names import check_choice

ACTIONS = tuple(c.value for c in Control if c is not Control.START)


_SELECT_REQUESTS = (
    "SELECT requests.id, runs.name, action, requests.created_at, acknowledged_at, result"
    " FROM requests JOIN runs ON runs.id = requests.run_id"
)


@dataclass(frozen=True)
class ControlRequest:
    """A viewer's request to a run, and what the training process made of it."""

    id: int
    run: str  # run name
    action: str  # one of ACTIONS
    created_at: float  # Unix s
    acknowledged_at: float | None  # None while pending
    result: str | None  # "done", "ignored: ..." or "error: ..."; for checkpoint, its answer


class ControlRequests(StoreConnection):
    """RunStore's part that keeps the runs' control requests."""

    def request(self, name: str, action: str) -> int:
        """Ask the run's training process to pause, resume, stop or checkpoint; returns the
        request's id (``request_state`` tells when it was served and how)."""
        check_choice("action", action, ACTIONS)
        with self._write() as db:
            return db.execute(
                "INSERT INTO requests (run_id, action, created_at) VALUES (?, ?, ?)",
                (self._run_id(name), action, time.time()),
            ).lastrowid

    def pending_requests(self, name: str) -> list[ControlRequest]:
        """The run's unacknowledged requests, oldest first."""
        rows = self._db().execute(
            f"{_SELECT_REQUESTS} WHERE requests.run_id = ? AND acknowledged_at IS NULL"
            " ORDER BY requests.id",
            (self._run_id(name),),
        )
        return [ControlRequest(*row) for row in rows]

    def acknowledge(self, request_id: int, result: str = "done") -> None:
        """Mark a request served, with what came of it. A second acknowledgement is ignored."""
        with self._write() as db:
            served = db.execute(
                "UPDATE requests SET acknowledged_at = ?, result = ?"
                " WHERE id = ? AND acknowledged_at IS NULL",
                (time.time(), result, request_id),
            ).rowcount
        if not served:
            self.request_state(request_id)  # raises for an unknown id

    def request_state(self, request_id: int) -> ControlRequest:
        row = self._db().execute(f"{_SELECT_REQUESTS} WHERE requests.id = ?", (request_id,))
        row = row.fetchone()
        if row is None:
            raise StoreError(f"no control request {request_id} in {self.path}")
        return ControlRequest(*row)
