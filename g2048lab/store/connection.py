"""How a RunStore talks to its database: one connection per thread and process, short write
transactions, the file made whole or not at all, and its schema brought up to date.

The database runs in WAL mode: one writer and any number of readers, in any processes, go on
at once; readers never wait for the writer, nor it for them, and writers queue for up to
``BUSY_TIMEOUT_S`` instead of failing with "database is locked". Each write is one short
transaction; with ``synchronous=NORMAL`` a commit does not fsync (a power cut may lose the
last commits, never the database). WAL needs a local disk: keep the runs folder off network
file systems.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from .errors import NO_SPACE, RunNotFound, StoreError, store_error
from .schema import (
    BUSY_TIMEOUT_S,
    DATABASE_NAME,
    SCHEMA_VERSION,
    empty_store,
    make_tables,
    open_existing,
)


class StoreConnection:
    """The database plumbing that RunStore's parts share: ``_db`` (this thread's connection),
    ``_write`` (one write transaction), ``_run_id`` and ``_add_event``. RunStore's
    constructor sets ``root``, ``path``, ``create`` and ``_local``, then calls ``_create``
    and ``_migrate``."""

    root: Path  # the runs folder
    path: Path  # root / DATABASE_NAME
    create: bool  # whether this store may make its folder and file (writers)
    _local: threading.local  # this thread's connection, and the pid that made it

    # --- for the store's other tables (sweeps/sweep_store.py) ----------------------------

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
            local.db = empty_store() if local.stand_in else self._connect()
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
                db = open_existing(self.path)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as error:
            if db is not None:
                db.close()
            raise store_error(error, self.path, "open") from None
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
            raise store_error(error, self.path, "write to") from None

    def _create(self) -> None:
        """Make a new store beside its place and link it there, so that no process ever sees
        a half-made one (sqlite3.connect leaves an empty file until the first write). If
        another process made it meanwhile, theirs is kept."""
        temporary = self.root / f".{DATABASE_NAME}.{uuid.uuid4().hex}.tmp"
        try:
            db = sqlite3.connect(temporary, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode = WAL")
                make_tables(db, from_version=0)
            finally:
                db.close()  # folds the WAL into the file
            os.link(temporary, self.path)
        except FileExistsError:
            pass
        except sqlite3.Error as error:  # a full disk, a folder we may not write to
            raise store_error(error, self.path, "create") from None
        except OSError as error:
            if error.errno in NO_SPACE:
                raise store_error(error, self.path, "create") from None
            # a folder without hard links: _migrate makes it in place
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{temporary}{suffix}").unlink(missing_ok=True)

    def _migrate(self) -> None:
        """Create the tables of an empty store, or bring an older one up to SCHEMA_VERSION."""
        if self._schema_version(self._db()) == SCHEMA_VERSION:
            return
        with self._write() as db:
            # another process may have migrated meanwhile
            make_tables(db, from_version=self._schema_version(db))

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

    def _add_event(self, db: sqlite3.Connection, run_id: int, text: str) -> None:
        db.execute(
            "INSERT INTO events (run_id, timestamp, text) VALUES (?, ?, ?)",
            (run_id, time.time(), text),
        )


def check_folder(root: Path) -> None:
    """StoreError unless ``root`` is a folder, for readers (who never make one)."""
    if not root.is_dir():
        what = "a file, not a folder" if root.exists() else "not there"
        raise StoreError(
            f"no runs folder {root}: it is {what}; check --runs-dir, or train a run first"
        )
