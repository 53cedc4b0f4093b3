"""Checking a store for damage (``check_store``, ``g2048lab runs check``) and copying what can
be read of a damaged one into a new store (``recover_store``, ``g2048lab runs recover``)."""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..status import Status
from .connection import check_folder
from .errors import StoreDamaged, StoreError, store_error
from .run_records import DAMAGED_GAME, error_summary, game_arrays, readable_game
from .schema import DATABASE_NAME, RUN_TABLES, make_tables, open_existing

RECOVERED_NAME = "recovered.sqlite"  # recover_store writes what it saves here, beside it
LOST_RUN = (
    "its own record was damaged: g2048lab runs recover kept its other records under this "
    "name; its name, settings and counters are lost (its checkpoint folder keeps the old name)"
)


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


def check_store(root: str | Path) -> StoreCheck:
    """Check the store in the runs folder ``root`` as far as it can be read: SQLite's
    ``PRAGMA quick_check`` (every page, record and index well formed; it reads the whole
    file), then every kept game's moves read back. Creates nothing. StoreError for a missing
    folder, or a store it cannot read for another reason than damage (a full disk, say)."""
    root = Path(root)
    path = root / DATABASE_NAME
    check_folder(root)
    if not path.exists():
        return StoreCheck(path, exists=False, problems=(), runs=0, games=0)
    problems, runs, games = [], 0, 0
    db = None
    try:
        db = open_existing(path)
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
                    game_arrays(arrays)
                    games += 1
                except DAMAGED_GAME as error:
                    problems.append(f"game {game_id} of run {run!r}: {error_summary(error)}")
    except sqlite3.Error as error:
        meaning = store_error(error, path, "read")
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
    check_folder(root)
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
            source = open_existing(path)
            source.execute("SELECT name FROM sqlite_master").fetchall()
        except sqlite3.DatabaseError as error:
            raise StoreDamaged(
                f"nothing can be recovered from {path} ({error}): its first page, which "
                "lists its tables, cannot be read"
            ) from None
        new = sqlite3.connect(temporary, isolation_level=None)
        new.execute("PRAGMA journal_mode = WAL")
        make_tables(new, from_version=0)
        new.execute("BEGIN")
        for table in ("runs", *RUN_TABLES, "sweeps", "trials"):
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
                if row is None or (arrays and not readable_game(row[arrays])):
                    skipped[table] += 1
                else:
                    saved[table] += new.execute(insert, row).rowcount
        renamed = _adopt_orphans(new)
        new.execute("COMMIT")
        new.close()  # folds the WAL into the file
        new = None
        os.link(temporary, target)  # never over a file made meanwhile
    except (sqlite3.Error, OSError) as error:  # a full disk, say: damage is skipped above
        raise store_error(error, path, "recover") from None
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
        {run_id for table in RUN_TABLES for (run_id,) in db.execute(
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
