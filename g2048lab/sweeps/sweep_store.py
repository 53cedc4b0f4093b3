"""Sweeps in the run store: the ``sweeps`` and ``trials`` tables of ``runs.sqlite``.

A sweep's row holds its spec and status; a trial's row its setting, seed, the run it trains
(named when planned, ``SWEEP-000``; followed by id once the run exists, so renames keep
it), its state and, once evaluated, its result. Every trial is an ordinary run besides:
tagged ``sweep:NAME`` and ``group:KEY`` by the driver, so ``g2048lab runs`` shows it.

One driver per sweep: it holds the flock of ``ROOT/.sweeps/NAME/driver.lock`` while it
lives (a dead one's is free), and records its pid; a sweep whose status says it runs but
whose driver is gone reads ``interrupted`` (``g2048lab sweep resume NAME`` goes on).

    trial: queued -> running -> finished | failed | pruned      (running -> queued: stopped
                                                                 or killed, to resume)
    sweep: running -> stopping -> stopped -> (resume) running -> finished
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..store import RunStore, StoreError
from .spec import SweepSpec, check_sweep_name, group_key

__all__ = [
    "SWEEP_STATUSES",
    "TRIAL_STATES",
    "SweepBusy",
    "SweepInfo",
    "SweepNotFound",
    "SweepStore",
    "Trial",
]

TRIAL_STATES = ("queued", "running", "finished", "failed", "pruned")
SWEEP_STATUSES = ("running", "stopping", "stopped", "finished", "interrupted")
SWEEPS_FOLDER = ".sweeps"  # ROOT/.sweeps/NAME: the driver's lock and the trials' logs
STARTING_S = 30.0  # a sweep without a driver this young is still starting, not interrupted


class SweepNotFound(StoreError):
    pass


class SweepBusy(StoreError):
    pass


@dataclass(frozen=True)
class Trial:
    """One setting with one seed: one run."""

    id: int
    sweep: str
    number: int
    group: str  # the setting's key (spec.group_key)
    setting: dict  # {flag: value}, the seed apart
    seed: int
    run_name: str  # the run's name now (it follows renames once the run exists)
    run_id: int | None
    state: str  # one of TRIAL_STATES
    error: str | None
    result: dict | None  # the evaluation of a finished trial (eval --json), if any
    attempts: int  # processes started for it
    started_at: float | None  # Unix s
    ended_at: float | None


@dataclass(frozen=True)
class SweepInfo:
    id: int
    name: str
    spec: SweepSpec
    status: str  # one of SWEEP_STATUSES; "interrupted": its driver died
    created_at: float
    updated_at: float
    driver_pid: int | None
    driver_host: str | None


_TRIAL_COLUMNS = (
    "trials.id, sweeps.name, number, group_key, setting, seed, "
    "COALESCE(runs.name, trials.run_name), trials.run_id, state, trials.error, result, "
    "attempts, started_at, ended_at"
)
_TRIALS_FROM = (
    "trials JOIN sweeps ON sweeps.id = trials.sweep_id LEFT JOIN runs ON runs.id = trials.run_id"
)
_SWEEP_COLUMNS = "id, name, spec, status, created_at, updated_at, driver_pid, driver_host"


class SweepStore:
    """The sweeps of a run store; errors are StoreErrors (one line, what to do)."""

    def __init__(self, runs: RunStore):
        self.runs = runs
        self.root = runs.root

    # --- sweeps --------------------------------------------------------------------------

    def create_sweep(self, name: str, spec: SweepSpec, settings: list[dict]) -> SweepInfo:
        """Add a sweep, status running, with a queued trial per setting and seed, seeds
        outermost (every setting's first seed runs before any second seed), and no driver
        yet. Refused if the name, or a trial's run name, is taken."""
        check_sweep_name(name)
        trials = [(s, seed) for seed in spec.seed_list() for s in settings]
        now = time.time()
        try:
            with self.runs.transaction() as db:
                cursor = db.execute(
                    "INSERT INTO sweeps (name, spec, status, created_at, updated_at)"
                    " VALUES (?, ?, 'running', ?, ?)",
                    (name, spec.to_json(), now, now),
                )
                self._insert_trials(db, cursor.lastrowid, name, 0, trials)
        except sqlite3.IntegrityError:
            raise StoreError(
                f"a sweep named {name!r} exists in {self.runs.path}: choose another name, "
                f"or go on with it: g2048lab sweep resume {name}"
            ) from None
        return self.get_sweep(name)

    def add_trials(self, name: str, settings: list[dict]) -> list[Trial]:
        """Queue a trial per setting and seed (a drawn setting's seeds), numbered on."""
        sweep = self.get_sweep(name)
        with self.runs.transaction() as db:
            (start,) = db.execute(
                "SELECT COUNT(*) FROM trials WHERE sweep_id = ?", (sweep.id,)
            ).fetchone()
            pairs = [(s, seed) for s in settings for seed in sweep.spec.seed_list()]
            self._insert_trials(db, sweep.id, name, start, pairs)
        return self.trials(name)[start:]

    def _insert_trials(self, db, sweep_id: int, name: str, start: int, pairs) -> None:
        for number, (setting, seed) in enumerate(pairs, start):
            run_name = trial_run_name(name, number)
            taken = db.execute("SELECT 1 FROM runs WHERE name = ?", (run_name,)).fetchone()
            if taken or (self.root / run_name).exists():
                raise StoreError(
                    f"a run named {run_name!r} exists in {self.root}, and sweep {name!r} names "
                    "its trials so: choose another sweep name"
                )
            db.execute(
                "INSERT INTO trials (sweep_id, number, group_key, setting, seed, run_name,"
                " state) VALUES (?, ?, ?, ?, ?, ?, 'queued')",
                (sweep_id, number, group_key(setting), json.dumps(setting), seed, run_name),
            )

    def get_sweep(self, name: str) -> SweepInfo:
        row = self.runs.reader().execute(
            f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE name = ?", (name,)
        )
        row = row.fetchone()
        if row is None:
            known = [s.name for s in self.list_sweeps()]
            listed = f"; the sweeps are: {', '.join(known[:10])}" if known else "; none yet"
            raise SweepNotFound(f"no sweep named {name!r} in {self.root}{listed}")
        return self._checked(row)

    def list_sweeps(self) -> list[SweepInfo]:
        """All sweeps, newest first."""
        rows = self.runs.reader().execute(
            f"SELECT {_SWEEP_COLUMNS} FROM sweeps ORDER BY created_at DESC, id DESC"
        )
        return [self._checked(row) for row in rows.fetchall()]

    def set_status(self, name: str, status: str, *, only_if: tuple[str, ...] = ()) -> bool:
        """Set the sweep's status (only if it is one of ``only_if``, when given)."""
        if status not in SWEEP_STATUSES[:-1]:
            raise ValueError(f"unknown sweep status {status!r}")
        guard = f" AND status IN ({', '.join('?' * len(only_if))})" if only_if else ""
        with self.runs.transaction() as db:
            changed = db.execute(
                f"UPDATE sweeps SET status = ?, updated_at = ? WHERE name = ?{guard}",
                (status, time.time(), name, *only_if),
            ).rowcount
        return bool(changed)

    def set_spec(self, name: str, spec: SweepSpec) -> None:
        with self.runs.transaction() as db:
            db.execute("UPDATE sweeps SET spec = ? WHERE name = ?", (spec.to_json(), name))

    # --- trials --------------------------------------------------------------------------

    def trials(self, name: str) -> list[Trial]:
        sweep = self.get_sweep(name)
        rows = self.runs.reader().execute(
            f"SELECT {_TRIAL_COLUMNS} FROM {_TRIALS_FROM} WHERE sweep_id = ? ORDER BY number",
            (sweep.id,),
        )
        return [_trial(row) for row in rows.fetchall()]

    def trial_of_run(self, run_id: int) -> Trial | None:
        """The trial a run trains, or None for a run of no sweep."""
        row = self.runs.reader().execute(
            f"SELECT {_TRIAL_COLUMNS} FROM {_TRIALS_FROM} WHERE trials.run_id = ?", (run_id,)
        )
        row = row.fetchone()
        return _trial(row) if row else None

    def update_trial(self, trial: Trial, **changes) -> Trial:
        """Write ``changes`` (state, error, result, run_id, attempts, started_at, ended_at)."""
        allowed = {"state", "error", "result", "run_id", "attempts", "started_at", "ended_at"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"a trial has no {sorted(unknown)[0]!r}")
        if changes.get("state", TRIAL_STATES[0]) not in TRIAL_STATES:
            raise ValueError(f"unknown trial state {changes['state']!r}")
        values = {
            k: json.dumps(v) if k == "result" and v is not None else v for k, v in changes.items()
        }
        with self.runs.transaction() as db:
            db.execute(
                f"UPDATE trials SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                (*values.values(), trial.id),
            )
            db.execute(
                "UPDATE sweeps SET updated_at = ? WHERE name = ?", (time.time(), trial.sweep)
            )
        return replace(trial, **changes)

    # --- the driver ----------------------------------------------------------------------

    def folder(self, name: str) -> Path:
        """ROOT/.sweeps/NAME: the driver's lock and the trials' logs (made if missing)."""
        folder = self.root / SWEEPS_FOLDER / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def claim_driver(self, name: str) -> int:
        """Become the sweep's driver: an fd holding its flock (closing it lets go). SweepBusy
        naming the live driver if there is one."""
        sweep = self.get_sweep(name)
        fd = os.open(self.folder(name) / "driver.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SweepBusy(
                f"sweep {name!r} has a live driver (pid {sweep.driver_pid} on "
                f"{sweep.driver_host}): watch it with g2048lab sweep status {name}, or stop it "
                f"with g2048lab sweep stop {name}"
            ) from None
        with self.runs.transaction() as db:
            db.execute(
                "UPDATE sweeps SET driver_pid = ?, driver_host = ?, updated_at = ? WHERE id = ?",
                (os.getpid(), socket.gethostname(), time.time(), sweep.id),
            )
        return fd

    def release_driver(self, name: str, fd: int) -> None:
        try:
            with self.runs.transaction() as db:
                db.execute(
                    "UPDATE sweeps SET driver_pid = NULL, driver_host = NULL WHERE name = ?"
                    " AND driver_pid = ?",
                    (name, os.getpid()),
                )
        finally:
            os.close(fd)

    def driver_alive(self, sweep: SweepInfo) -> bool:
        """Whether a process drives ``sweep``: its lock is held (this host), or its pid
        lives (a host we cannot probe: taken as alive)."""
        if sweep.driver_pid is None:
            return False
        if sweep.driver_host != socket.gethostname():
            return True
        path = self.root / SWEEPS_FOLDER / sweep.name / "driver.lock"
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def _checked(self, row: tuple) -> SweepInfo:
        sweep = SweepInfo(*row[:2], SweepSpec.from_json(row[2]), *row[3:])
        if sweep.status in ("running", "stopping") and not self.driver_alive(sweep):
            young = sweep.driver_pid is None and time.time() - sweep.updated_at < STARTING_S
            if not young:
                return replace(sweep, status="interrupted")
        return sweep


def trial_run_name(sweep: str, number: int) -> str:
    return f"{sweep}-{number:03d}"


def _trial(row: tuple) -> Trial:
    values = list(row)
    values[4] = json.loads(values[4])
    values[10] = json.loads(values[10]) if values[10] else None
    return Trial(*values)
