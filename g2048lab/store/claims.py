"""One writer per run: ``RunStore.claim`` and the ``RunClaim`` it hands out.

``claim(name)`` takes an exclusive ``flock`` on ``root/<name>/.writer.lock``, held for as long
as the writer's process lives (the kernel releases it on kill -9 too), and records the writer
(pid, host, since) in the store. A second process is refused with ``RunBusy`` naming the
first. Readers find a writer that died without a word (its lock is free, or, on another host,
it has been silent for ``STALE_AFTER_S``) and mark its run "killed"; the next ``claim`` takes
the run over. ``rename_run`` and ``delete_run`` hold the same flock while they work.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
import uuid
from dataclasses import replace
from pathlib import Path

from ..status import LIVE, Status
from .connection import StoreConnection
from .errors import RunBusy, StoreError
from .run_info import RUN_COLUMNS, RunInfo, Writer

STALE_AFTER_S = 120.0  # a writer on another host silent this long is taken for dead
LOCK_NAME = ".writer.lock"  # in the run's folder: flock-ed by its writer


class WriterClaims(StoreConnection):
    """RunStore's part that claims runs and tells live writers from dead ones. It takes the
    run's folder from ``run_dir`` and a busy run's writer from ``get_run``, RunStore's."""

    def claim(self, name: str) -> RunClaim:
        """Become the run's only writer, for as long as this process lives or until
        ``RunClaim.release()``. Raises ``RunBusy`` naming the live writer, if there is one;
        takes over from one that died (and records that as an event)."""
        fd = self._lock(name, "")
        try:
            return self._record_claim(name, fd)
        except BaseException:
            os.close(fd)  # closing releases the flock
            raise

    def _lock(self, name: str, doing: str) -> int:
        """An fd holding the run's writer flock (``claim`` keeps it; ``rename_run`` and
        ``delete_run`` hold it while they work, so that no process claims the run meanwhile).
        RunBusy if a process holds it, saying what it stops: ``doing`` ("rename", "delete";
        "" for a claim)."""
        fd = try_flock(self.run_dir(name) / LOCK_NAME)
        if fd is None:
            raise _busy(name, self.get_run(name).writer, doing)
        return fd

    def _record_claim(self, name: str, fd: int) -> RunClaim:
        host, now, token = socket.gethostname(), time.time(), uuid.uuid4().hex
        with self._write() as db:
            old = self._locked_run(name, "")
            if old.writer is not None:
                self._add_event(db, old.id, f"taken over from {old.writer}, which had died")
            db.execute(
                "UPDATE runs SET writer_pid = ?, writer_host = ?, writer_since = ?,"
                " writer_token = ?, updated_at = ? WHERE id = ?",
                (os.getpid(), host, now, token, now, old.id),
            )
        return RunClaim(self, name, token, fd)

    def _locked_run(self, name: str, doing: str) -> RunInfo:
        """The run as stored, for a caller that holds its flock (so a writer recorded on this
        host is dead); RunBusy if a writer on another host wrote it within STALE_AFTER_S."""
        row = self._db().execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE name = ?", (name,))
        row = row.fetchone()
        if row is None:
            raise self._not_found(name)
        run, host = RunInfo.from_row(row), socket.gethostname()
        if run.writer and run.writer.host != host and time.time() - run.updated_at < STALE_AFTER_S:
            raise _busy(name, run.writer, doing, heard=time.time() - run.updated_at)
        return run

    def _release(self, claim: RunClaim) -> None:
        with self._write() as db:  # tokens are unique: no need for the run's name
            db.execute(
                "UPDATE runs SET writer_pid = NULL, writer_host = NULL, writer_since = NULL,"
                " writer_token = NULL WHERE writer_token = ?",
                (claim.token,),
            )

    def _checked(self, row: tuple) -> RunInfo:
        """The run of ``row``; a live one whose writer is dead is marked killed first."""
        run = RunInfo.from_row(row)
        if (run.status not in LIVE and run.writer is None) or self._writer_alive(run):
            return run
        if run.status not in LIVE:  # it ended (failed on a full disk, say) but kept its claim
            return replace(run, writer=None)
        who = str(run.writer) if run.writer else "its training process"
        error = (
            f"{who} ended without a word (kill -9, out of memory, power loss?); continue it "
            f"with g2048lab train --resume {run.name}"
        )
        try:
            with self._write() as db:  # guarded: a new writer may have claimed it meanwhile
                marked = db.execute(
                    "UPDATE runs SET status = ?, error = ?, writer_pid = NULL,"
                    " writer_host = NULL, writer_since = NULL, writer_token = NULL"
                    " WHERE id = ? AND status = ? AND writer_token IS ?",
                    (Status.KILLED, error, run.id, run.status, row[-1]),
                ).rowcount
                if marked:
                    self._add_event(db, run.id, f"killed: {error}")
        except StoreError:
            pass  # a read-only or full store: say it, even if it cannot be written down
        return replace(run, status=Status.KILLED, error=error, writer=None)

    def _writer_alive(self, run: RunInfo) -> bool:
        """Whether the process writing ``run`` lives: its lock is held (this host), or it
        wrote within ``STALE_AFTER_S`` (another host, or a run without a recorded writer)."""
        writer = run.writer
        if writer is None or writer.host != socket.gethostname():
            return time.time() - run.updated_at < STALE_AFTER_S
        try:
            fd = os.open(self.root / run.name / LOCK_NAME, os.O_RDONLY)
        except OSError:
            return pid_alive(writer.pid)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False  # nobody holds it: the writer is gone
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also drops the probe's own lock


class RunClaim:
    """This process's hold on one run as its only writer (``RunStore.claim``)."""

    def __init__(self, store: WriterClaims, name: str, token: str, fd: int):
        self.store, self.name, self.token = store, name, token
        self._fd: int | None = fd  # holds the flock

    def release(self) -> None:
        """Stop being the writer (once; later calls do nothing)."""
        if self._fd is None:
            return
        try:
            self.store._release(self)
        finally:
            os.close(self._fd)
            self._fd = None


def _busy(name: str, writer: Writer | None, doing: str, heard: float | None = None) -> RunBusy:
    """RunBusy for a run that ``writer`` writes: for a claim (``doing`` ""), or for what
    ``doing`` would do to it ("rename", "delete"); ``heard``: s since the writer wrote."""
    who = str(writer or "another process")
    if heard is not None:
        who += f" (heard from {heard:.0f} s ago)"
    if not doing:
        return RunBusy(
            f"run {name!r} is being written by {who}: stop that process first (Ctrl-C, or "
            "stop in the dashboard) or wait for it to end"
        )
    return RunBusy(
        f"cannot {doing} run {name!r} while {who} writes it: stop it first (Ctrl-C, or stop "
        "in the dashboard)"
    )


def try_flock(path: Path) -> int | None:
    """An fd holding an exclusive flock on ``path`` (made if missing), or None if another
    holds it. StoreError if it cannot be opened, or if its folder was moved away (renamed or
    deleted) while it was being locked: the lock then guards nothing."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise StoreError(f"cannot open {path}: {error.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if not os.path.samestat(os.fstat(fd), os.stat(path)):
            raise FileNotFoundError(path)
    except BlockingIOError:
        os.close(fd)
        return None
    except FileNotFoundError:
        os.close(fd)
        raise StoreError(f"{path.parent} was just renamed or deleted: try again") from None
    return fd


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (signal 0 probes it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        return True
    return True
