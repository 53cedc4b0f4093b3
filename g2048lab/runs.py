"""The run store: every run in one SQLite database, written by a trainer, read by many viewers.

``RunStore(root)`` keeps ``root/runs.sqlite`` and, beside it, one folder of
checkpoint files per run (``root/<run name>/``). The database holds, per run:

- the run: name, status, config, device, times (Unix s), error, progress counters;
- metrics: one row per PPO iteration (the trainer's ``on_iteration`` rows);
- training updates: the latest in full, and a thinned history (``put_update``);
- recorded games: the best and the most recent few, for replay;
- control requests (pause, resume, stop, checkpoint) that viewers leave and the
  training process serves and acknowledges;
- events: what happened to the run, in words (checkpoints, resumes, take-overs, renames);
- its writer: the one process allowed to write the run (``claim``);
- tags and a note, a person's labels to find and compare runs by (``set_tags``, ``set_note``).

A run can be renamed (``rename_run``: its row and its folder) and deleted (``delete_run``:
its rows in every table and its folder), each refused while a process writes the run;
each docstring says why a kill -9 at any point leaves a usable store.

One run has one writer. ``claim(name)`` takes an exclusive ``flock`` on
``root/<name>/.writer.lock``, held for as long as the writer's process lives (the kernel
releases it on kill -9 too), and records the writer (pid, host, since) in the store.
A second process is refused with ``RunBusy`` naming the first. Readers find a writer that
died without a word (its lock is free, or, on another host, it has been silent for
``STALE_AFTER_S``) and mark its run "killed"; the next ``claim`` takes the run over.

The database runs in WAL mode: one writer and any number of readers, in any
processes, go on at once; readers never wait for the writer, nor it for them, and
writers queue for up to ``BUSY_TIMEOUT_S`` instead of failing with "database is
locked". Each write is one short transaction; with ``synchronous=NORMAL`` a commit
does not fsync (a power cut may lose the last commits, never the database). WAL
needs a local disk: keep the runs folder off network file systems.

Readers open a store with ``RunStore(root, create=False)``: a missing folder is a
StoreError, and a folder without ``runs.sqlite`` reads as an empty store until a writer
makes one there; nothing is created. Every public method raises StoreError, never
sqlite3's errors, and tells a full disk (``DiskFull``: nothing stored is lost; free space
and try again) from a damaged store (``StoreDamaged``): ``check_store`` says what is
damaged, ``recover_store`` copies what can be read into a new store (``g2048lab runs
check``, ``g2048lab runs recover``).

The trainer knows nothing of the store: ``RunRecorder`` is the subscriber that
writes a run into it and serves the run's control requests.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import io
import json
import os
import re
import shutil
import socket
import sqlite3
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .messages import TrainingUpdate
from .recording import GameRecord, GameRecorder
from .status import LIVE, Control, Status
from .subscribers import RunHandle, Subscriber, TrainingContext

__all__ = [
    "ACTIONS",
    "ControlRequest",
    "DiskFull",
    "GameSummary",
    "RunInfo",
    "RunBusy",
    "RunClaim",
    "RunNotFound",
    "RunRecorder",
    "RunSize",
    "RunStore",
    "GAME_KINDS",
    "Recovery",
    "SCHEMA_VERSION",
    "STATUSES",
    "StoreCheck",
    "StoreDamaged",
    "StoreError",
    "Writer",
    "check_store",
    "recover_store",
]

SCHEMA_VERSION = 4
DATABASE_NAME = "runs.sqlite"
RECOVERED_NAME = "recovered.sqlite"  # recover_store writes what it saves here, beside it
LOST_RUN = (
    "its own record was damaged: g2048lab runs recover kept its other records under this "
    "name; its name, settings and counters are lost (its checkpoint folder keeps the old name)"
)
BUSY_TIMEOUT_S = 10.0  # how long a writer waits for another writer before giving up
HISTORY_INTERVAL_S = 10.0  # at most one history message per this many seconds of a run
HISTORY_LIMIT = 1000  # history messages kept per run, before thinning
STALE_AFTER_S = 120.0  # a writer on another host silent this long is taken for dead
LOCK_NAME = ".writer.lock"  # in the run's folder: flock-ed by its writer
# room kept on the disk for the last word on a run: freed when the disk is full, so that a
# run that failed there can still be marked failed, with its error
RESERVE_NAME, RESERVE_BYTES = ".runs.reserve", 1 << 20
STATUSES = tuple(Status)
ACTIONS = tuple(c.value for c in Control if c is not Control.START)
GAME_KINDS = ("best", "recent")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_TAG = re.compile(r"[A-Za-z0-9_.:-]{1,32}")
NOTE_LIMIT = 2000  # characters
TRASH_PREFIX = ".deleted-"  # root/.deleted-<name>-<hex>: a deleted run's folder, until removed
_RUN_TABLES = ("metrics", "latest_updates", "update_history", "games", "requests", "events")

# _MIGRATIONS[v] takes a store from schema v to v + 1 (v = 0: an empty file). A comment goes
# before a statement, never after its last word: SQLite keeps an added column's text, a
# trailing comment and all, in the table's schema, which then no longer parses.
_MIGRATIONS = (
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        config TEXT NOT NULL,  -- JSON
        device TEXT NOT NULL,
        created_at REAL NOT NULL,  -- Unix s
        updated_at REAL NOT NULL,  -- Unix s, the last write about the run
        error TEXT,
        iteration INTEGER NOT NULL DEFAULT 0,
        env_steps INTEGER NOT NULL DEFAULT 0,
        episodes INTEGER NOT NULL DEFAULT 0,
        best_score INTEGER NOT NULL DEFAULT 0,
        max_tile INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE metrics (
        run_id INTEGER NOT NULL REFERENCES runs (id),
        iteration INTEGER NOT NULL,
        row TEXT NOT NULL,  -- JSON
        PRIMARY KEY (run_id, iteration)
    );
    CREATE TABLE latest_updates (
        run_id INTEGER PRIMARY KEY REFERENCES runs (id),
        message TEXT NOT NULL  -- TrainingUpdate.to_json()
    );
    CREATE TABLE update_history (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id),
        timestamp REAL NOT NULL,  -- the message's, Unix s
        status TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX update_history_by_run ON update_history (run_id, timestamp);
    CREATE TABLE games (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id),
        best INTEGER NOT NULL,  -- 1 while among the run's best games
        recent INTEGER NOT NULL,  -- 1 while among its most recent
        score INTEGER NOT NULL,
        max_tile INTEGER NOT NULL,
        length INTEGER NOT NULL,  -- moves
        env_steps INTEGER NOT NULL,
        iteration INTEGER NOT NULL,
        timestamp REAL NOT NULL,
        arrays BLOB NOT NULL  -- .npz of the GameRecord arrays
    );
    CREATE INDEX games_by_run ON games (run_id, score);
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id),
        action TEXT NOT NULL,
        created_at REAL NOT NULL,
        acknowledged_at REAL,
        result TEXT
    );
    CREATE INDEX requests_by_run ON requests (run_id, acknowledged_at)
    """,
    """
    ALTER TABLE runs ADD COLUMN writer_pid INTEGER;  -- the process writing the run, if any
    ALTER TABLE runs ADD COLUMN writer_host TEXT;
    ALTER TABLE runs ADD COLUMN writer_since REAL;  -- Unix s
    ALTER TABLE runs ADD COLUMN writer_token TEXT;  -- unique per claim
    ALTER TABLE runs ADD COLUMN rewinds INTEGER NOT NULL DEFAULT 0;  -- resumes that forgot
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id),
        timestamp REAL NOT NULL,  -- Unix s
        text TEXT NOT NULL
    );
    CREATE INDEX events_by_run ON events (run_id, id)
    """,
    """
    ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';  -- JSON list, sorted
    ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT '';
    -- the run's old name while a rename moves its folder (rename_run)
    ALTER TABLE runs ADD COLUMN renamed_from TEXT
    """,
    """
    CREATE TABLE sweeps (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        spec TEXT NOT NULL,  -- JSON, sweeps/spec.py SweepSpec
        status TEXT NOT NULL,  -- running, stopping, stopped, finished
        created_at REAL NOT NULL,  -- Unix s
        updated_at REAL NOT NULL,
        driver_pid INTEGER,  -- the process driving it, if any
        driver_host TEXT
    );
    CREATE TABLE trials (
        id INTEGER PRIMARY KEY,
        sweep_id INTEGER NOT NULL REFERENCES sweeps (id),
        number INTEGER NOT NULL,  -- 0, 1, ... in the order they run
        group_key TEXT NOT NULL,  -- sweeps/spec.py group_key(setting)
        setting TEXT NOT NULL,  -- JSON {flag: value}, the seed apart
        seed INTEGER NOT NULL,
        run_name TEXT NOT NULL,  -- the run it trains, named when the trial is planned
        run_id INTEGER REFERENCES runs (id),  -- once the run exists (it follows renames)
        state TEXT NOT NULL,  -- queued, running, finished, failed, pruned
        error TEXT,
        result TEXT,  -- JSON: the evaluation of a finished trial, if any
        attempts INTEGER NOT NULL DEFAULT 0,  -- processes started for it
        started_at REAL,
        ended_at REAL,
        UNIQUE (sweep_id, number)
    );
    CREATE INDEX trials_by_run ON trials (run_id)
    """,
)
assert len(_MIGRATIONS) == SCHEMA_VERSION

_RUN_COLUMNS = (
    "id, name, status, config, device, created_at, updated_at, error, "
    "iteration, env_steps, episodes, best_score, max_tile, "
    "rewinds, tags, note, writer_pid, writer_host, writer_since, writer_token"
)  # writer_token last: _checked reads it as row[-1]
_GAME_COLUMNS = "id, score, max_tile, length, best, recent, timestamp, env_steps"
_SELECT_REQUESTS = (
    "SELECT requests.id, runs.name, action, requests.created_at, acknowledged_at, result"
    " FROM requests JOIN runs ON runs.id = requests.run_id"
)


class StoreError(ValueError):
    """A run store that cannot be used as asked; the message says why and what to do."""


class RunNotFound(StoreError):
    """No run of that name in the store; the message names some that exist."""


class RunBusy(StoreError):
    """Another live process writes the run; the message names it and what to do."""


class DiskFull(StoreError):
    """The disk holding the store is full: what failed was not written, and nothing
    stored before is lost."""


class StoreDamaged(StoreError):
    """Part of the store's file is damaged; the message names it and what to do."""


@dataclass(frozen=True)
class Writer:
    """The process that writes a run."""

    pid: int
    host: str
    since: float  # Unix s, when it claimed the run

    def __str__(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid} on {self.host} since {since}"


@dataclass(frozen=True)
class RunInfo:
    """One run as the store knows it. Times are Unix seconds."""

    id: int
    name: str
    status: str  # one of STATUSES
    config: dict
    device: str
    created_at: float
    updated_at: float  # the last write about the run: a live run's is seconds old
    error: str | None  # why a failed run failed
    iteration: int  # PPO updates done
    env_steps: int  # moves played, all envs
    episodes: int  # games finished
    best_score: int
    max_tile: int
    rewinds: int = 0  # times it was resumed from a checkpoint, forgetting what came after
    writer: Writer | None = None  # the live process writing it, if any
    tags: tuple[str, ...] = ()  # sorted
    note: str = ""

    @property
    def learner(self) -> str:
        """The learner that trains it (runs from before learners: "ppo")."""
        return self.config.get("learner", "ppo")


@dataclass(frozen=True)
class RunSize:
    """What a run takes up (``run_size``) or took up (``delete_run``). The store's file does
    not shrink when rows go: SQLite reuses their pages for new rows."""

    checkpoint_files: int  # .pt files in its folder
    folder_bytes: int  # all the files in its folder
    metric_rows: int
    rows: int  # in all the store's tables, its own row included


@dataclass(frozen=True)
class GameSummary:
    """A recorded game without its moves (``RunStore.load_game(id)`` has them)."""

    id: int
    score: int
    max_tile: int
    length: int  # moves
    kinds: frozenset[str]  # "best", "recent" or both
    timestamp: float  # Unix s when the game ended
    env_steps: int  # training env steps when the game ended


@dataclass(frozen=True)
class ControlRequest:
    """A viewer's request to a run, and what the training process made of it."""

    id: int
    run: str  # run name
    action: str  # one of ACTIONS
    created_at: float  # Unix s
    acknowledged_at: float | None  # None while pending
    result: str | None  # "done", "ignored: ..." or "error: ..."; for checkpoint, its answer


@dataclass(frozen=True)
class StoreCheck:
    """What ``check_store`` found in a runs folder."""

    path: Path  # the store's file
    exists: bool  # False: the folder holds no store yet, so nothing was checked
    problems: tuple[str, ...]  # SQLite's quick_check findings, then damaged games; () if none
    runs: int  # runs in the store (0 when its damage stopped the count)
    games: int  # games whose moves read back whole


@dataclass(frozen=True)
class Recovery:
    """What ``recover_store`` saved from a damaged store."""

    path: Path  # the new store, beside the damaged one
    saved: dict[str, int]  # rows copied, by table
    skipped: dict[str, int]  # stretches of rows skipped as unreadable, by table
    renamed: tuple[str, ...]  # runs whose own row was lost, named recovered-<id> to keep the rest


# --- what a failed SQLite call means for the store -------------------------------------------

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# SQLite says "disk I/O error", not "database or disk is full", where it cannot grow its
# shared-memory file (-shm): on a disk with less room than this, that is a full disk
_FULL_BELOW_BYTES = 1 << 20


def _store_error(error: sqlite3.Error | OSError, path: Path, doing: str) -> StoreError:
    """``error``, met while ``doing`` ("open", "read", "write to", "create") the store at
    ``path``, as one line saying what happened and what to do: DiskFull, StoreDamaged, or a
    plain StoreError (busy, no permission, anything else)."""
    code = getattr(error, "sqlite_errorcode", None)
    kind = None if code is None else code & 0xFF  # the primary code of an extended one
    detail = (error.strerror or str(error)) if isinstance(error, OSError) else str(error)
    check = f"g2048lab runs check --runs-dir {path.parent}"
    if kind == sqlite3.SQLITE_CORRUPT:
        return StoreDamaged(
            f"the run store {path} is damaged ({detail}): {check} says what is damaged "
            "and how to save the rest"
        )
    if kind == sqlite3.SQLITE_NOTADB:
        return StoreDamaged(
            f"{path} is not a usable run store ({detail}): its first page is damaged or it "
            f"is another kind of file; {check} says more"
        )
    full = kind == sqlite3.SQLITE_FULL or getattr(error, "errno", None) in _NO_SPACE
    if full or (kind == sqlite3.SQLITE_IOERR and _disk_full(path.parent)):
        return DiskFull(
            f"cannot {doing} the run store {path}: the disk is full ({detail}); nothing "
            "stored is lost: free some space on that disk and try again"
        )
    if kind == sqlite3.SQLITE_IOERR:
        return StoreError(
            f"cannot {doing} the run store {path}: a disk I/O error "
            f"({error.sqlite_errorname}) on a disk with room; the store is likely intact: "
            f"check the disk (dmesg) and try again; if it persists, run {check}"
        )
    if kind in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreError(
            f"cannot {doing} the run store {path}: other processes held it for over "
            f"{BUSY_TIMEOUT_S:.0f} s ({detail}); try again"
        )
    if kind in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM):
        return StoreError(
            f"cannot {doing} the run store {path} ({detail}): check that you may read "
            f"and write {path.parent}"
        )
    return StoreError(f"cannot {doing} the run store {path}: {detail}")


def _disk_full(folder: Path) -> bool:
    """Whether the disk holding ``folder`` has (almost) no room or no inodes left."""
    try:
        disk = os.statvfs(folder)
    except OSError:
        return False
    no_inodes = disk.f_files > 0 and disk.f_favail == 0  # some file systems count none
    return disk.f_bavail * disk.f_frsize < _FULL_BELOW_BYTES or no_inodes


def _store_errors_only(cls: type) -> type:
    """Make the constructor and every public method of ``cls`` raise ``_store_error``
    where sqlite3 raised. Damage is met where a damaged page is read: in any query."""

    def translating(method: Callable) -> Callable:
        @functools.wraps(method)
        def translated(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except sqlite3.Error as error:
                raise _store_error(error, self.path, "read") from None

        return translated

    for name, member in list(vars(cls).items()):
        if callable(member) and (name == "__init__" or not name.startswith("_")):
            setattr(cls, name, translating(member))
    return cls


@_store_errors_only
class RunStore:
    """The runs folder: ``runs.sqlite`` and one checkpoint folder per run; see the module doc.

    ``create``: make the folder and the store if missing (writers); with False (readers)
    nothing is made: a missing folder is a StoreError, a folder without a store reads as
    an empty one (a store made there later is read from then on), and a write there is a
    StoreError. Safe to use from several threads (each gets its own connection) and
    processes. Its public methods raise StoreError, never sqlite3's errors.
    """

    def __init__(self, root: str | Path = "checkpoints", *, create: bool = True):
        self.root = Path(root)
        self.path = self.root / DATABASE_NAME
        self.create = create
        if create:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(
                    f"cannot create the runs folder {self.root}: {error.strerror}; "
                    "choose a folder you can write to"
                ) from None
        else:
            _check_folder(self.root)
        if not self.path.exists():
            if create:
                self._create()
        elif _lost_its_contents(self.path):
            raise StoreError(
                f"{self.path} is empty (0 bytes): a run store that lost its contents? Move it "
                "away (or delete it if you know it held nothing) and try again"
            )
        if create:
            _keep_reserve(self.root / RESERVE_NAME)
        self._local = threading.local()
        self._migrate()
        # a read-only store is still read, its writers finish these; a damaged one is read
        # as far as it can be (a damaged page is met again by whoever reads it)
        with suppress(StoreError, sqlite3.DatabaseError):
            self._finish_renames()
            self._empty_trash()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    # --- runs ----------------------------------------------------------------------------

    def create_run(self, name: str | None = None, *, config: dict, device: str) -> RunInfo:
        """Add a run with status idle. ``name``: letters, digits, - and _; None picks a fresh
        one from the time (``run-20261124-031500``, then ``-2``, ``-3``... if taken, in the
        store or as a folder beside it). Processes that pick names at once each get their
        own: a name is taken by the insert of its row, which the name's unique index
        settles one transaction at a time."""
        if name is not None:
            check_run_name(name)
        now = time.time()
        base = time.strftime("run-%Y%m%d-%H%M%S", time.localtime(now))
        candidate, attempt = name or base, 1
        while True:
            if name is None and (self.root / candidate).exists():  # a stray folder: not ours
                attempt += 1
                candidate = f"{base}-{attempt}"
                continue
            try:
                with self._write() as db:
                    db.execute(
                        "INSERT INTO runs (name, status, config, device, created_at, updated_at)"
                        " VALUES (?, 'idle', ?, ?, ?, ?)",
                        (candidate, json.dumps(config), device, now, now),
                    )
                return self.get_run(candidate)
            except sqlite3.IntegrityError:
                if name is not None:
                    raise StoreError(
                        f"a run named {name!r} exists in {self.path}: choose another name"
                    ) from None
                attempt += 1
                candidate = f"{base}-{attempt}"

    def get_run(self, name: str) -> RunInfo:
        """The run as the store knows it; a live run whose writer died reads "killed"."""
        row = self._db().execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE name = ?", (name,))
        row = row.fetchone()
        if row is None:
            raise self._not_found(name)
        return self._checked(row)

    def list_runs(self) -> list[RunInfo]:
        """All runs, newest (by creation) first."""
        rows = (
            self._db()
            .execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY created_at DESC, id DESC")
            .fetchall()
        )
        return [self._checked(row) for row in rows]

    def latest_run(self) -> RunInfo | None:
        """The run written to most recently (the one most likely live), or None."""
        rows = self._db().execute(
            f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY updated_at DESC, id DESC LIMIT 1"
        )
        row = rows.fetchone()
        return None if row is None else self._checked(row)

    # --- tags, notes, renames, deletes ----------------------------------------------------

    def set_tags(self, name: str, tags: Iterable[str]) -> tuple[str, ...]:
        """Replace the run's tags: each 1-32 letters, digits, -, _, . and :; kept
        deduplicated and sorted (returned). Allowed while the run trains: its writer never
        writes tags or notes, and each write here is one statement on those columns alone."""
        tags = check_tags(tags)
        self._set_label(name, "tags", json.dumps(tags))
        return tags

    def set_note(self, name: str, note: str) -> None:
        """Replace the run's note (a person's words on it; "" clears it), stored as given, at
        most NOTE_LIMIT characters. Allowed while the run trains, as ``set_tags``."""
        if len(note) > NOTE_LIMIT:
            raise StoreError(
                f"a note holds at most {NOTE_LIMIT:,} characters, this one has {len(note):,}: "
                "shorten it"
            )
        self._set_label(name, "note", note)

    def set_config(self, name: str, config: dict) -> None:
        """Replace the run's recorded settings: a resumed run's budget, or the new place of
        its teacher (``train --resume RUN --teacher NEW``), as its trainer now has them."""
        self._set_label(name, "config", json.dumps(config))

    def _set_label(self, name: str, column: str, value: str) -> None:
        # not updated_at: it tells the liveness of writers on other hosts, and which run is
        # most likely live (latest_run); a label says nothing of either
        with self._write() as db:
            db.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, self._run_id(name)))

    def rename_run(self, old: str, new: str) -> RunInfo:
        """Give a run a new name; its folder ``root/OLD`` becomes ``root/NEW``. Checkpoints
        hold no folder path, and ``train --resume NEW`` runs them under the store's name
        (not the one they were saved under). Refused with RunBusy while a process writes
        the run, StoreError if NEW is taken or not a valid name. Adds the event "renamed
        from OLD".

        Crash safety. Holding the run's writer flock (no process can claim the run
        meanwhile), it (1) renames the row, noting OLD in ``renamed_from``, in one
        transaction; (2) moves the folder; (3) clears ``renamed_from``. A crash before (1)
        commits changes nothing. After it, the store knows the run as NEW and where its
        folder may still be: the next ``RunStore`` opened on the folder, or ``run_dir`` of
        either name, finishes (2) and (3) once the flock is free (the kernel frees it when a
        process dies); while it is held, ``run_dir`` of either name refuses, so no one makes
        an empty NEW folder or takes OLD's meanwhile.
        """
        check_run_name(new)
        self.get_run(old)  # RunNotFound; a dead writer's run is marked killed
        source, target = self.root / old, self.root / new
        if self._db().execute("SELECT 1 FROM runs WHERE name = ?", (new,)).fetchone():
            raise StoreError(f"a run named {new!r} exists in {self.path}: choose another name")
        if target.exists():
            raise StoreError(f"{target} exists: move it away or choose another name")
        fd = self._lock(old, "rename")
        try:
            with self._write() as db:
                run = self._locked_run(old, "rename")
                try:
                    self._rename_row(db, run.id, old, new, moving=old)
                except sqlite3.IntegrityError:
                    raise StoreError(
                        f"a run named {new!r} exists in {self.path}: choose another name"
                    ) from None
                self._add_event(db, run.id, f"renamed from {old}")
            try:
                source.rename(target)
            except OSError as error:  # nothing moved: the run keeps its old name
                with self._write() as db:
                    self._rename_row(db, run.id, new, old, moving=None)
                    self._add_event(db, run.id, f"not renamed to {new}: {error.strerror}")
                raise StoreError(f"cannot move {source} to {target}: {error.strerror}") from None
            with self._write() as db:
                db.execute("UPDATE runs SET renamed_from = NULL WHERE id = ?", (run.id,))
        finally:
            os.close(fd)
        return self.get_run(new)

    def _rename_row(
        self, db: sqlite3.Connection, run_id: int, old: str, new: str, moving: str | None
    ) -> None:
        # a killed run's error tells how to resume it, by name
        db.execute(
            "UPDATE runs SET name = ?, renamed_from = ?,"
            " error = replace(error, '--resume ' || ?, '--resume ' || ?) WHERE id = ?",
            (new, moving, old, new, run_id),
        )

    def run_size(self, name: str) -> RunSize:
        """What the run takes up: checkpoint files and bytes in its folder, rows in the store
        (what ``delete_run`` would free)."""
        run_id = self._run_id(name)
        db = self._db()
        counts = {
            table: db.execute(
                f"SELECT count(*) FROM {table} WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            for table in _RUN_TABLES
        }
        return RunSize(*_folder_size(self.root / name), counts["metrics"], sum(counts.values()) + 1)

    def delete_run(self, name: str) -> RunSize:
        """Delete the run: its rows in every table and its folder (checkpoint files, log).
        Refused with RunBusy while a process writes it. Returns what it took up. A new run
        may take the name afterwards.

        Crash safety. Holding the run's writer flock, it (1) moves the run's folder to a
        hidden trash folder, ``root/.deleted-<name>-<hex>``; (2) deletes the rows in one
        transaction; (3) removes the trash. A crash before (2) commits leaves the run in the
        store without its folder, to delete again; trash left by a crash is removed by the
        next delete or ``RunStore`` opened on the folder (not trash whose flock a live
        delete holds). If (2) fails (a full disk, a store busy too long), the folder is
        moved back and the run stays whole.
        """
        self.get_run(name)  # RunNotFound; a dead writer's run is marked killed
        fd = self._lock(name, "delete")
        try:
            self._locked_run(name, "delete")
            folder = self.root / name
            files, size = _folder_size(folder)
            trash = self.root / f"{TRASH_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
            try:
                folder.rename(trash)
            except OSError as error:
                raise StoreError(f"cannot move {folder} away: {error.strerror}") from None
            try:
                with self._write() as db:
                    run_id = self._locked_run(name, "delete").id
                    rows = {
                        table: db.execute(
                            f"DELETE FROM {table} WHERE run_id = ?", (run_id,)
                        ).rowcount
                        for table in _RUN_TABLES
                    }
                    db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
                    db.execute("UPDATE trials SET run_id = NULL WHERE run_id = ?", (run_id,))
            except StoreError:
                trash.rename(folder)
                raise
            shutil.rmtree(trash, ignore_errors=True)
        finally:
            os.close(fd)
        self._empty_trash()
        return RunSize(files, size, rows["metrics"], sum(rows.values()) + 1)

    # --- the writer ----------------------------------------------------------------------

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
        fd = _try_flock(self.run_dir(name) / LOCK_NAME)
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
        row = self._db().execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE name = ?", (name,))
        row = row.fetchone()
        if row is None:
            raise self._not_found(name)
        run, host = _run_info(row), socket.gethostname()
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
        run = _run_info(row)
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
            return _pid_alive(writer.pid)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False  # nobody holds it: the writer is gone
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also drops the probe's own lock

    # --- events --------------------------------------------------------------------------

    def add_event(self, name: str, text: str) -> None:
        """Record what happened to the run, in words."""
        with self._write() as db:
            self._add_event(db, self._run_id(name), text)

    def _add_event(self, db: sqlite3.Connection, run_id: int, text: str) -> None:
        db.execute(
            "INSERT INTO events (run_id, timestamp, text) VALUES (?, ?, ?)",
            (run_id, time.time(), text),
        )

    def events(self, name: str) -> list[tuple[float, str]]:
        """The run's events as (Unix s, text), oldest first."""
        rows = self._db().execute(
            "SELECT timestamp, text FROM events WHERE run_id = ? ORDER BY id",
            (self._run_id(name),),
        )
        return [tuple(row) for row in rows]

    def rewind(
        self, name: str, iteration: int, env_steps: int, checkpoint_row: dict | None = None
    ) -> int:
        """Forget what the run recorded after ``iteration`` / ``env_steps`` (a checkpoint's
        counters): metric rows, messages, games; the run's counters go back to them and its
        ``rewinds`` count goes up (viewers then read its history again). For a run resumed
        from its last checkpoint. ``checkpoint_row``: the checkpoint's own metrics row, stored
        (again) in the same transaction: a process killed between saving the checkpoint and
        recording that row left a gap. Returns the env steps that were lost (recorded past
        the checkpoint)."""
        with self._write() as db:
            run_id = self._run_id(name)
            if checkpoint_row:
                db.execute(
                    "INSERT OR REPLACE INTO metrics (run_id, iteration, row) VALUES (?, ?, ?)",
                    (run_id, int(checkpoint_row["iteration"]), json.dumps(checkpoint_row)),
                )
            (recorded,) = db.execute(
                "SELECT env_steps FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            forgotten = sum(
                db.execute(statement, (run_id, after)).rowcount
                for statement, after in (
                    ("DELETE FROM metrics WHERE run_id = ? AND iteration > ?", iteration),
                    (
                        "DELETE FROM update_history WHERE run_id = ?"
                        " AND json_extract(message, '$.env_steps') > ?",
                        env_steps,
                    ),
                    (
                        "DELETE FROM latest_updates WHERE run_id = ?"
                        " AND json_extract(message, '$.env_steps') > ?",
                        env_steps,
                    ),
                    ("DELETE FROM games WHERE run_id = ? AND env_steps > ?", env_steps),
                )
            )
            db.execute(
                "UPDATE runs SET iteration = ?, env_steps = ?, updated_at = ?,"
                " rewinds = rewinds + ? WHERE id = ?",
                (iteration, env_steps, time.time(), int(forgotten > 0), run_id),
            )
        return max(0, recorded - env_steps)

    def set_status(
        self, name: str, status: str, error: str | None = None, claim: RunClaim | None = None
    ) -> None:
        """Set a run's status (one of STATUSES) and error text (None clears it). With
        ``claim``, only while that claim is the run's writer."""
        _check_choice("status", status, STATUSES)
        token = claim and claim.token
        for attempt in range(2):
            try:
                with self._write() as db:
                    db.execute(
                        "UPDATE runs SET status = ?, error = ?, updated_at = ? WHERE id = ?"
                        " AND (? IS NULL OR writer_token = ?)",
                        (status, error, time.time(), self._run_id(name), token, token),
                    )
                return
            except DiskFull:
                reserve = self.root / RESERVE_NAME
                if attempt or not reserve.exists():
                    raise
                reserve.unlink()  # the reserve makes room for this last word

    def run_dir(self, name: str) -> Path:
        """The run's folder for checkpoint files, ``root/<name>``; created if missing. A move
        of that folder that a rename left half done (``rename_run``) is finished first."""
        self._run_id(name)
        self._finish_renames(name)
        folder = self.root / name
        try:
            folder.mkdir(exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create the run folder {folder}: {error.strerror}") from None
        return folder

    # --- metrics -------------------------------------------------------------------------

    def add_metrics(self, name: str, row: dict) -> None:
        """Store one iteration's metrics row (it must hold ``iteration``). A row for an
        iteration already stored replaces it, so a run resumed from a checkpoint rewrites
        the iterations it repeats."""
        self.add_metrics_batch(name, [row])

    def add_metrics_batch(self, name: str, rows: Iterable[dict]) -> None:
        """``add_metrics`` for many rows in one transaction (imports, benchmarks)."""
        with self._write() as db:
            run_id = self._run_id(name)
            db.executemany(
                "INSERT OR REPLACE INTO metrics (run_id, iteration, row) VALUES (?, ?, ?)",
                [(run_id, int(row["iteration"]), json.dumps(row)) for row in rows],
            )

    def metrics(self, name: str, since_iteration: int = -1) -> list[dict]:
        """Rows of iterations after ``since_iteration``, in iteration order."""
        rows = self._db().execute(
            "SELECT row FROM metrics WHERE run_id = ? AND iteration > ? ORDER BY iteration",
            (self._run_id(name), since_iteration),
        )
        return [json.loads(row) for (row,) in rows]

    def last_metrics(self) -> dict[str, dict]:
        """Every run's last metric row (of its highest iteration), by run name, in one query
        (for lists of many runs); runs without rows are left out."""
        rows = self._db().execute(  # SQLite takes the bare column `row` from the max's row
            "SELECT runs.name, metrics.row, max(metrics.iteration) FROM metrics"
            " JOIN runs ON runs.id = metrics.run_id GROUP BY metrics.run_id"
        )
        return {name: json.loads(row) for name, row, _ in rows}

    # --- training updates ----------------------------------------------------------------

    def put_update(self, name: str, update: TrainingUpdate, claim: RunClaim | None = None) -> None:
        """Store ``update`` as the run's latest message, its events as the run's events, and
        copy its status and counters onto the run. With ``claim``, raise ``RunBusy`` instead
        if another process has taken the run over.

        The history gets a copy when the message is at least ``HISTORY_INTERVAL_S`` newer
        (by its own timestamp) than the last copy, or its status differs. Past
        ``HISTORY_LIMIT`` copies, every second one of the older half is dropped: the history
        spans the whole run, densest near the present, in bounded space.
        """
        _check_choice("status", update.status, STATUSES)
        message = update.to_json()
        with self._write() as db:
            run_id = self._run_id(name)
            db.execute(
                "INSERT OR REPLACE INTO latest_updates (run_id, message) VALUES (?, ?)",
                (run_id, message),
            )
            written = db.execute(
                "UPDATE runs SET status = ?, updated_at = ?, iteration = ?, env_steps = ?,"
                " episodes = ?, best_score = ?, max_tile = ? WHERE id = ?"
                " AND (? IS NULL OR writer_token = ?)",
                (
                    update.status,
                    time.time(),
                    update.iteration,
                    update.env_steps,
                    update.episode,
                    update.best_score,
                    update.max_tile,
                    run_id,
                    claim and claim.token,
                    claim and claim.token,
                ),
            ).rowcount
            if not written:  # rolls the transaction back
                raise RunBusy(
                    f"run {name!r} was taken over by another process: this one stops writing it"
                )
            for event in update.events:
                self._add_event(db, run_id, event)
            last = db.execute(
                "SELECT timestamp, status FROM update_history WHERE run_id = ?"
                " ORDER BY timestamp DESC LIMIT 1",
                (run_id,),
            ).fetchone()
            if (
                last is None
                or update.timestamp - last[0] >= HISTORY_INTERVAL_S
                or update.status != last[1]
            ):
                db.execute(
                    "INSERT INTO update_history (run_id, timestamp, status, message)"
                    " VALUES (?, ?, ?, ?)",
                    (run_id, update.timestamp, update.status, message),
                )
                _thin_history(db, run_id)

    def latest_update(self, name: str) -> TrainingUpdate | None:
        """The run's last message, or None before its first."""
        row = self._db().execute(
            "SELECT message FROM latest_updates WHERE run_id = ?", (self._run_id(name),)
        )
        row = row.fetchone()
        return None if row is None else TrainingUpdate.from_json(row[0])

    def update_history(self, name: str, since_timestamp: float = 0.0) -> list[TrainingUpdate]:
        """History messages newer than ``since_timestamp`` (Unix s), oldest first."""
        rows = self._db().execute(
            "SELECT message FROM update_history WHERE run_id = ? AND timestamp > ?"
            " ORDER BY timestamp",
            (self._run_id(name), since_timestamp),
        )
        return [TrainingUpdate.from_json(message) for (message,) in rows]

    # --- games ---------------------------------------------------------------------------

    def add_game(
        self,
        name: str,
        game: GameRecord,
        kinds: Iterable[str] = GAME_KINDS,
        keep_best: int = 5,
        keep_recent: int = 5,
    ) -> int:
        """Store a finished game as one or more ``kinds`` ("best", "recent"); return its id.

        The run then keeps its ``keep_best`` highest-scoring "best" games (the earlier wins a
        tie) and its ``keep_recent`` latest "recent" ones; a game in neither list is deleted.
        """
        kinds = set(kinds)
        for kind in kinds:
            _check_choice("game kind", kind, GAME_KINDS)
        arrays = io.BytesIO()
        np.savez(arrays, **{field: getattr(game, field) for field in GameRecorder.FIELDS})
        with self._write() as db:
            run_id = self._run_id(name)
            game_id = db.execute(
                "INSERT INTO games (run_id, best, recent, score, max_tile, length, env_steps,"
                " iteration, timestamp, arrays) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    "best" in kinds,
                    "recent" in kinds,
                    game.score,
                    game.max_tile,
                    game.length,
                    game.env_steps,
                    game.iteration,
                    game.timestamp,
                    arrays.getvalue(),
                ),
            ).lastrowid
            db.execute(
                "UPDATE games SET best = 0 WHERE run_id = ? AND best AND id NOT IN"
                " (SELECT id FROM games WHERE run_id = ? AND best"
                " ORDER BY score DESC, id LIMIT ?)",
                (run_id, run_id, keep_best),
            )
            db.execute(
                "UPDATE games SET recent = 0 WHERE run_id = ? AND recent AND id NOT IN"
                " (SELECT id FROM games WHERE run_id = ? AND recent ORDER BY id DESC LIMIT ?)",
                (run_id, run_id, keep_recent),
            )
            db.execute("DELETE FROM games WHERE run_id = ? AND NOT best AND NOT recent", (run_id,))
        return game_id

    def games(self, name: str) -> list[GameSummary]:
        """The run's kept games, best first (the earlier first among equal scores)."""
        rows = self._db().execute(
            f"SELECT {_GAME_COLUMNS} FROM games WHERE run_id = ? ORDER BY score DESC, id",
            (self._run_id(name),),
        )
        return [
            GameSummary(
                id=game_id,
                score=score,
                max_tile=max_tile,
                length=length,
                kinds=frozenset(kind for kind, on in zip(GAME_KINDS, (best, recent)) if on),
                timestamp=timestamp,
                env_steps=env_steps,
            )
            for game_id, score, max_tile, length, best, recent, timestamp, env_steps in rows
        ]

    def load_game(self, game_id: int) -> GameRecord:
        """The whole game (ids from ``games()``); StoreError if it has been pruned since,
        StoreDamaged (naming the run and the game) if its moves cannot be read back."""
        row = (
            self._db()
            .execute(
                "SELECT arrays, score, games.max_tile, games.env_steps, games.iteration,"
                " timestamp, runs.name FROM games JOIN runs ON runs.id = games.run_id"
                " WHERE games.id = ?",
                (game_id,),
            )
            .fetchone()
        )
        if row is None:
            raise StoreError(f"no game {game_id} in {self.path}: it may have been pruned")
        arrays, score, max_tile, env_steps, iteration, timestamp, run = row
        try:
            fields = _game_arrays(arrays)
        except _DAMAGED_GAME as error:
            raise StoreDamaged(
                f"game {game_id} of run {run!r} in {self.path} is damaged ({_why(error)}): "
                "choose another of its games; the run's other records are unaffected; "
                f"g2048lab runs check --runs-dir {self.root} lists every damaged game"
            ) from None
        return GameRecord(
            **fields,
            score=score,
            max_tile=max_tile,
            env_steps=env_steps,
            iteration=iteration,
            timestamp=timestamp,
        )

    # --- control requests ----------------------------------------------------------------

    def request(self, name: str, action: str) -> int:
        """Ask the run's training process to pause, resume, stop or checkpoint; returns the
        request's id (``request_state`` tells when it was served and how)."""
        _check_choice("action", action, ACTIONS)
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

    # --- for the store's other tables (sweeps/store.py) ---------------------------------

    def reader(self) -> sqlite3.Connection:
        """This thread's connection, for reads by the modules that own the other tables."""
        return self._db()

    def transaction(self):
        """A write transaction (a context manager giving the connection), as ``_write``."""
        return self._write()

    # --- plumbing ------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections must not cross threads or forks).
        A reader (``create`` False) of a folder without a store file gets an empty stand-in
        in memory, until a writer makes the file."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid() or (local.stand_in and self.path.exists()):
            local.stand_in = not self.create and not self.path.exists()
            local.db = _empty_store() if local.stand_in else self._connect()
            local.pid = os.getpid()
        return local.db

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; _write() opens its own. A reader's
        # connection (mode=rw) never makes a file, should the store go meanwhile
        db = None
        try:
            if self.create:
                db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            else:
                db = _open_existing(self.path)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as error:
            if db is not None:
                db.close()
            raise _store_error(error, self.path, "open") from None
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. IMMEDIATE takes the write lock at BEGIN, where a busy store
        is waited for; a read that turned into a write later would fail at once instead."""
        db = self._db()
        if self._local.stand_in:
            raise StoreError(
                f"no run store in {self.root} yet (no {DATABASE_NAME}): train a run first"
            )
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # also after a failed COMMIT (a full disk)
                    with suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise
        except sqlite3.IntegrityError:
            raise  # a name taken: the caller says so
        except sqlite3.Error as error:  # full disk, busy past the timeout, damage...
            raise _store_error(error, self.path, "write to") from None

    def _create(self) -> None:
        """Make a new store beside its place and link it there, so that no process ever sees
        a half-made one (sqlite3.connect leaves an empty file until the first write). If
        another process made it meanwhile, theirs is kept."""
        temporary = self.root / f".{DATABASE_NAME}.{uuid.uuid4().hex}.tmp"
        try:
            db = sqlite3.connect(temporary, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode = WAL")
                _make_tables(db, from_version=0)
            finally:
                db.close()  # folds the WAL into the file
            os.link(temporary, self.path)
        except FileExistsError:
            pass
        except sqlite3.Error as error:  # a full disk, a folder we may not write to
            raise _store_error(error, self.path, "create") from None
        except OSError as error:
            if error.errno in _NO_SPACE:
                raise _store_error(error, self.path, "create") from None
            # a folder without hard links: _migrate makes it in place
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{temporary}{suffix}").unlink(missing_ok=True)

    def _finish_renames(self, name: str | None = None) -> None:
        """Finish the folder moves of renames whose process died between renaming the row
        and moving the folder (``rename_run``). With ``name``: only the moves to or from
        ``root/<name>``, and StoreError if one of them is under way or cannot be finished;
        without: all that can be."""
        pending = self._db().execute(
            "SELECT id, name, renamed_from FROM runs WHERE renamed_from IS NOT NULL"
        )
        for run_id, new, old in pending.fetchall():
            if name is None:
                with suppress(StoreError):
                    self._finish_rename(run_id, old, new)
            elif name in (old, new):
                self._finish_rename(run_id, old, new)

    def _finish_rename(self, run_id: int, old: str, new: str) -> None:
        source, target = self.root / old, self.root / new
        if source.is_dir():  # else it has moved already
            fd = _try_flock(source / LOCK_NAME)
            if fd is None:  # the renaming process lives: its move comes in a moment
                raise StoreError(f"run {new!r} is being renamed from {old!r}: try again")
            try:
                if target.exists():
                    raise StoreError(
                        f"run {new!r} has its files in {source}, but {target} exists too: "
                        f"move {target} away"
                    )
                source.rename(target)
            except OSError as error:
                raise StoreError(f"cannot move {source} to {target}: {error.strerror}") from None
            finally:
                os.close(fd)
        with self._write() as db:
            db.execute(
                "UPDATE runs SET renamed_from = NULL WHERE id = ? AND renamed_from = ?",
                (run_id, old),
            )

    def _empty_trash(self) -> None:
        """Remove deleted runs' folders left in the trash by a delete that did not finish
        (its process died); not those whose flock a live delete holds. One folder listing."""
        with suppress(OSError):
            for entry in os.scandir(self.root):
                if not (entry.name.startswith(TRASH_PREFIX) and entry.is_dir()):
                    continue
                with suppress(StoreError):
                    fd = _try_flock(Path(entry.path) / LOCK_NAME)
                    if fd is not None:
                        shutil.rmtree(entry.path, ignore_errors=True)
                        os.close(fd)

    def _migrate(self) -> None:
        """Create the tables of an empty store, or bring an older one up to SCHEMA_VERSION."""
        if self._schema_version(self._db()) == SCHEMA_VERSION:
            return
        with self._write() as db:
            # another process may have migrated meanwhile
            _make_tables(db, from_version=self._schema_version(db))

    def _schema_version(self, db: sqlite3.Connection) -> int:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer g2048lab (store schema {version}, this "
                f"one reads up to {SCHEMA_VERSION}): upgrade g2048lab"
            )
        return version

    def _run_id(self, name: str) -> int:
        """The run's id, looked up each time (on the name's unique index: microseconds), as a
        rename or delete in any process changes what a name means. Inside ``_write()`` the
        lookup is part of the transaction, so the write goes to the run of that name."""
        row = self._db().execute("SELECT id FROM runs WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise self._not_found(name)
        return row[0]

    def _not_found(self, name: str) -> RunNotFound:
        names = [n for (n,) in self._db().execute("SELECT name FROM runs ORDER BY id DESC")]
        if not names:
            return RunNotFound(f"no run {name!r} in {self.path}: the store holds no runs yet")
        known = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        return RunNotFound(f"no run {name!r} in {self.path}; runs there: {known}")


class RunClaim:
    """This process's hold on one run as its only writer (``RunStore.claim``)."""

    def __init__(self, store: RunStore, name: str, token: str, fd: int):
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


def check_store(root: str | Path) -> StoreCheck:
    """Check the store in the runs folder ``root`` as far as it can be read: SQLite's
    ``PRAGMA quick_check`` (every page, record and index well formed; it reads the whole
    file), then every kept game's moves read back. Creates nothing. StoreError for a missing
    folder, or a store it cannot read for another reason than damage (a full disk, say)."""
    root = Path(root)
    path = root / DATABASE_NAME
    _check_folder(root)
    if not path.exists():
        return StoreCheck(path, exists=False, problems=(), runs=0, games=0)
    problems, runs, games = [], 0, 0
    db = None
    try:
        db = _open_existing(path)
        try:
            found = [text for (text,) in db.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError:  # sqlite3 drops the rows read before an error: the
            found = [text for (text,) in db.execute("PRAGMA quick_check(1)")]  # first alone
        if found != ["ok"]:  # a line "*** in database main ***", then one per problem
            problems += [line for text in found for line in text.splitlines()[1:]]
        else:
            (runs,) = db.execute("SELECT count(*) FROM runs").fetchone()
            stored = db.execute(
                "SELECT games.id, runs.name, arrays FROM games"
                " JOIN runs ON runs.id = games.run_id ORDER BY games.id"
            )
            for game_id, run, arrays in stored:
                try:
                    _game_arrays(arrays)
                    games += 1
                except _DAMAGED_GAME as error:
                    problems.append(f"game {game_id} of run {run!r}: {_why(error)}")
    except sqlite3.Error as error:
        meaning = _store_error(error, path, "read")
        if not isinstance(meaning, StoreDamaged):
            raise meaning from None
        problems.append(str(error))
    finally:
        if db is not None:
            db.close()
    return StoreCheck(path, exists=True, problems=tuple(problems), runs=runs, games=games)


def recover_store(root: str | Path) -> Recovery:
    """Copy every row that can be read from the store in the runs folder ``root`` into a
    new store, ``root/recovered.sqlite`` (StoreError if that exists), table by table in
    rowid order, skipping the rows that damaged pages hide; indexes are built anew. The
    damaged store is only read: putting the new one in its place is left to a person, once
    no process uses the store (``g2048lab runs recover`` says how). Games whose moves are
    damaged are left out; ``skipped`` counts each as a stretch."""
    root = Path(root)
    path, target = root / DATABASE_NAME, root / RECOVERED_NAME
    _check_folder(root)
    if not path.exists():
        raise StoreError(
            f"no run store in {root} ({DATABASE_NAME} is not there): nothing to recover"
        )
    if target.exists():
        raise StoreError(f"{target} exists (an earlier recovery?): move it away and try again")
    temporary = root / f".{RECOVERED_NAME}.{uuid.uuid4().hex}.tmp"
    saved, skipped = {}, {}
    source = new = None
    try:
        try:
            source = _open_existing(path)
            source.execute("SELECT name FROM sqlite_master").fetchall()
        except sqlite3.DatabaseError as error:
            raise StoreDamaged(
                f"nothing can be recovered from {path} ({error}): its first page, which "
                "lists its tables, cannot be read"
            ) from None
        new = sqlite3.connect(temporary, isolation_level=None)
        new.execute("PRAGMA journal_mode = WAL")
        _make_tables(new, from_version=0)
        new.execute("BEGIN")
        for table in ("runs", *_RUN_TABLES, "sweeps", "trials"):
            saved[table] = skipped[table] = 0
            try:
                have = {row[1] for row in source.execute(f"PRAGMA table_info({table})")}
            except sqlite3.DatabaseError as error:
                _raise_unless_damage(error)
                have = set()
            # the columns of the store's schema, as far as the old store had them
            names = [row[1] for row in new.execute(f"PRAGMA table_info({table})") if row[1] in have]
            if not names:
                continue
            insert = (
                f"INSERT OR IGNORE INTO {table} (rowid, {', '.join(names)})"
                f" VALUES ({', '.join('?' * (len(names) + 1))})"
            )
            arrays = 1 + names.index("arrays") if table == "games" else None
            for row in _readable_rows(source, table, names):
                if row is None or (arrays and not _readable_game(row[arrays])):
                    skipped[table] += 1
                else:
                    saved[table] += new.execute(insert, row).rowcount
        renamed = _adopt_orphans(new)
        new.execute("COMMIT")
        new.close()  # folds the WAL into the file
        new = None
        os.link(temporary, target)  # never over a file made meanwhile
    except (sqlite3.Error, OSError) as error:  # a full disk, say: damage is skipped above
        raise _store_error(error, path, "recover") from None
    finally:
        for db in (source, new):
            if db is not None:
                db.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{temporary}{suffix}").unlink(missing_ok=True)
    return Recovery(target, saved, skipped, renamed)


def _adopt_orphans(db: sqlite3.Connection) -> tuple[str, ...]:
    """Give the records (metrics, games...) of runs whose own row was lost a run again:
    ``recovered-<id>``, failed, its error saying what was lost. Returns their names."""
    lost = sorted(
        {run_id for table in _RUN_TABLES for (run_id,) in db.execute(
            f"SELECT DISTINCT run_id FROM {table} WHERE run_id NOT IN (SELECT id FROM runs)"
        )}
    )  # fmt: skip
    now, names = time.time(), []
    for run_id in lost:
        names.append(f"recovered-{run_id}")
        db.execute(
            "INSERT INTO runs (id, name, status, config, device, created_at, updated_at, error)"
            " VALUES (?, ?, ?, '{}', 'unknown', ?, ?, ?)",
            (run_id, names[-1], Status.FAILED, now, now, LOST_RUN),
        )
    return tuple(names)


def _readable_rows(
    db: sqlite3.Connection, table: str, columns: list[str]
) -> Iterator[tuple | None]:
    """The rows of ``table`` (rowid, then ``columns``) that can be read, in rowid order;
    None for each stretch of rows skipped as unreadable."""
    query = f"SELECT rowid, {', '.join(columns)} FROM {table} WHERE rowid >= ? ORDER BY rowid"
    start = -(2**63)
    while True:
        try:
            for row in db.execute(query, (start,)):
                yield row
                start = row[0] + 1
            return
        except sqlite3.DatabaseError as error:
            _raise_unless_damage(error)  # near a damaged page; sqlite3 drops the row before
        try:  # one row alone: a query that stops after it never reads on
            row = db.execute(f"{query} LIMIT 1", (start,)).fetchone()
        except sqlite3.DatabaseError as error:
            _raise_unless_damage(error)
            yield None
            start = _past_damage(db, f"{query} LIMIT 1", start)
            if start is None:
                return
            continue
        if row is None:
            return
        yield row
        start = row[0] + 1


def _past_damage(db: sqlite3.Connection, query: str, start: int) -> int | None:
    """The least rowid past ``start`` (where ``query``, a read of one row from a rowid on,
    fails) from which it reads: found by doubling steps, then bisection (a damaged page
    hides a stretch of rowids). None if none does."""

    def readable(rowid: int) -> bool:
        try:
            db.execute(query, (rowid,)).fetchone()
        except sqlite3.DatabaseError as error:
            _raise_unless_damage(error)
            return False
        return True

    bad, step = start, 1
    while not readable(bad + step):
        bad += step
        step *= 2
        if bad + step >= 2**63:
            return None
    good = bad + step
    while good - bad > 1:
        middle = (bad + good) // 2
        if readable(middle):
            good = middle
        else:
            bad = middle
    return good


def _raise_unless_damage(error: sqlite3.DatabaseError) -> None:
    """Raise ``error`` again unless it says a page is damaged (not a full disk, say)."""
    code = getattr(error, "sqlite_errorcode", None) or 0
    if code & 0xFF not in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        raise error


def _open_existing(path: Path) -> sqlite3.Connection:
    """A connection to the store file ``path``, which never creates it (``mode=rw``)."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True,
                           timeout=BUSY_TIMEOUT_S, isolation_level=None)  # fmt: skip


def _check_folder(root: Path) -> None:
    """StoreError unless ``root`` is a folder, for readers (who never make one)."""
    if not root.is_dir():
        what = "a file, not a folder" if root.exists() else "not there"
        raise StoreError(
            f"no runs folder {root}: it is {what}; check --runs-dir, or train a run first"
        )


def _make_tables(db: sqlite3.Connection, from_version: int) -> None:
    """Bring the store of ``db`` from schema ``from_version`` (0: empty) to SCHEMA_VERSION."""
    for script in _MIGRATIONS[from_version:]:
        for statement in script.split(";"):
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _empty_store() -> sqlite3.Connection:
    """An empty store in memory: what a reader reads in a folder without one."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    _make_tables(db, from_version=0)
    return db


# what reading a damaged game's .npz may raise: zipfile's CRC check, numpy's header parse,
# and RuntimeError where zipfile reads a damaged header's flags, version or compression
_DAMAGED_GAME = (zipfile.BadZipFile, ValueError, OSError, KeyError, EOFError, RuntimeError)


def _game_arrays(blob: bytes) -> dict[str, np.ndarray]:
    """A game's arrays from its stored .npz (``add_game``); one of _DAMAGED_GAME if damaged."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as stored:
        return {field: stored[field] for field in GameRecorder.FIELDS}


def _readable_game(blob: bytes) -> bool:
    try:
        _game_arrays(blob)
    except _DAMAGED_GAME:
        return False
    return True


def _why(error: Exception) -> str:
    """``KeyError('boards') -> "KeyError: 'boards'"``: an error's first line, with its kind."""
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _run_info(row: tuple) -> RunInfo:
    values = list(row[:14])
    values[3] = json.loads(values[3])  # config
    tags, note, pid, host, since, _token = row[14:]
    writer = Writer(pid, host, since) if pid is not None else None
    return RunInfo(*values, writer=writer, tags=tuple(json.loads(tags)), note=note)


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


def _try_flock(path: Path) -> int | None:
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


def _folder_size(folder: Path) -> tuple[int, int]:
    """(checkpoint files, bytes of all files) in ``folder`` and below; (0, 0) if missing."""
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    return sum(p.suffix == ".pt" for p in files), sum(p.stat().st_size for p in files)


def check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """``tags`` deduplicated and sorted, if each can be a tag; else StoreError saying what can.

    ``["b", "a", "b"] -> ("a", "b")``
    """
    if isinstance(tags, str):
        raise StoreError(f"tags are a list of tags, not the one string {tags!r}")
    tags = list(tags)
    for tag in tags:
        if not isinstance(tag, str) or not _TAG.fullmatch(tag):
            raise StoreError(
                f"tag {tag!r} is not allowed: use 1 to 32 letters, digits, -, _, . and :"
            )
    return tuple(sorted(set(tags)))


def _lost_its_contents(path: Path) -> bool:
    """An empty database file without a WAL holding its pages (SQLite writes the header at
    once when it makes a store, so only a damaged or truncated one stays at 0 bytes)."""
    wal = path.with_name(path.name + "-wal")
    try:
        return path.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size > 0)
    except FileNotFoundError:
        return False


def _keep_reserve(path: Path) -> None:
    """Write the reserve file if it is missing and the disk has room for it."""
    if path.exists():
        return
    try:
        with path.open("wb") as file:
            file.write(bytes(RESERVE_BYTES))
    except OSError:  # no room, or a read-only folder: go on without
        with suppress(OSError):
            path.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        return True
    return True


def check_run_name(name: str) -> str:
    """``name`` if it can name a run (and a folder); else StoreError saying what can."""
    if not _NAME.fullmatch(name):
        what = "an empty run name" if not name else f"run name {name!r}"
        raise StoreError(
            f"{what} is not allowed: use up to 64 letters, digits, - and _, "
            "starting with a letter or digit"
        )
    return name


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise StoreError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")


def _thin_history(db: sqlite3.Connection, run_id: int) -> None:
    """Past HISTORY_LIMIT messages, drop every second one of the older half (never the first)."""
    (count,) = db.execute(
        "SELECT count(*) FROM update_history WHERE run_id = ?", (run_id,)
    ).fetchone()
    if count > HISTORY_LIMIT:
        db.execute(
            "DELETE FROM update_history WHERE id IN (SELECT id FROM"
            " (SELECT id, row_number() OVER (ORDER BY timestamp) AS n"
            "  FROM update_history WHERE run_id = ?) WHERE n % 2 = 0 AND n <= ?)",
            (run_id, count // 2),
        )


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
