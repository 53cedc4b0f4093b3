"""The store's database file: its name, its tables, the migrations that bring a store of any
older schema up to ``SCHEMA_VERSION``, and how a process opens one that exists.

Every table but ``runs`` holds rows of one run by ``run_id`` (``RUN_TABLES``), except
``sweeps`` and ``trials``, which ``sweeps/sweep_store.py`` owns and reaches through
``RunStore.reader`` and ``RunStore.transaction``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = 4
DATABASE_NAME = "runs.sqlite"
BUSY_TIMEOUT_S = 10.0  # how long a writer waits for another writer before giving up
# the tables that hold a run's rows, by run_id
RUN_TABLES = ("metrics", "latest_updates", "update_history", "games", "requests", "events")


# MIGRATIONS[v] takes a store from schema v to v + 1 (v = 0: an empty file). A comment goes
# before a statement, never after its last word: SQLite keeps an added column's text, a
# trailing comment and all, in the table's schema, which then no longer parses.
MIGRATIONS = (
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
assert len(MIGRATIONS) == SCHEMA_VERSION


def open_existing(path: Path) -> sqlite3.Connection:
    """A connection to the store file ``path``, which never creates it (``mode=rw``)."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True,
                           timeout=BUSY_TIMEOUT_S, isolation_level=None)  # fmt: skip


def make_tables(db: sqlite3.Connection, from_version: int) -> None:
    """Bring the store of ``db`` from schema ``from_version`` (0: empty) to SCHEMA_VERSION."""
    for script in MIGRATIONS[from_version:]:
        for statement in script.split(";"):
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def empty_store() -> sqlite3.Connection:
    """An empty store in memory: what a reader reads in a folder without one."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    make_tables(db, from_version=0)
    return db
