"""``RunStore``, the one object callers use, made of the store's parts: claims.py (one writer
per run), folders.py (run folders, renames, deletes), requests.py (control requests) and
run_records.py (metrics, training updates, games), each over connection.py. This module
holds the runs themselves: making and reading them, their labels, events and status, and
the disk space kept in reserve for a run's last word.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

from .claims import RunClaim, WriterClaims
from .connection import check_folder
from .errors import DiskFull, StoreError, store_errors_only
from .folders import RunFolders
from .names import NOTE_LIMIT, STATUSES, check_choice, check_run_name, check_tags
from .requests import ControlRequests
from .run_info import RUN_COLUMNS, RunInfo
from .run_records import RunRecords
from .schema import DATABASE_NAME

# room kept on the disk for the last word on a run: freed when the disk is full, so that a
# run that failed there can still be marked failed, with its error
RESERVE_NAME, RESERVE_BYTES = ".runs.reserve", 1 << 20


@store_errors_only
class RunStore(WriterClaims, RunFolders, ControlRequests, RunRecords):
    """The runs folder: ``runs.sqlite`` and one checkpoint folder per run; see ``g2048lab.store``.

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
            check_folder(self.root)
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
        row = self._db().execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE name = ?", (name,))
        row = row.fetchone()
        if row is None:
            raise self._not_found(name)
        return self._checked(row)

    def list_runs(self) -> list[RunInfo]:
        """All runs, newest (by creation) first."""
        rows = (
            self._db()
            .execute(f"SELECT {RUN_COLUMNS} FROM runs ORDER BY created_at DESC, id DESC")
            .fetchall()
        )
        return [self._checked(row) for row in rows]

    def latest_run(self) -> RunInfo | None:
        """The run written to most recently (the one most likely live), or None."""
        rows = self._db().execute(
            f"SELECT {RUN_COLUMNS} FROM runs ORDER BY updated_at DESC, id DESC LIMIT 1"
        )
        row = rows.fetchone()
        return None if row is None else self._checked(row)

    # --- tags, notes, settings ------------------------------------------------------------

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

    # --- events and status -----------------------------------------------------------------

    def add_event(self, name: str, text: str) -> None:
        """Record what happened to the run, in words."""
        with self._write() as db:
            self._add_event(db, self._run_id(name), text)

    def events(self, name: str) -> list[tuple[float, str]]:
        """The run's events as (Unix s, text), oldest first."""
        rows = self._db().execute(
            "SELECT timestamp, text FROM events WHERE run_id = ? ORDER BY id",
            (self._run_id(name),),
        )
        return [tuple(row) for row in rows]

    def set_status(
        self, name: str, status: str, error: str | None = None, claim: RunClaim | None = None
    ) -> None:
        """Set a run's status (one of STATUSES) and error text (None clears it). With
        ``claim``, only while that claim is the run's writer."""
        check_choice("status", status, STATUSES)
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
