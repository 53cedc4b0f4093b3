"""What a training run records as it goes: a metrics row per iteration, its training updates
(the latest in full, and a thinned history), and recorded games (the best and the most recent
few, for replay); and ``rewind``, which forgets what came after a checkpoint."""

from __future__ import annotations

import io
import json
import sqlite3
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..messages import TrainingUpdate
from ..recording import GameRecord, GameRecorder
from .claims import RunClaim
from .connection import StoreConnection
from .errors import RunBusy, StoreDamaged, StoreError
from .names import STATUSES, check_choice

HISTORY_INTERVAL_S = 10.0  # at most one history message per this many seconds of a run
HISTORY_LIMIT = 1000  # history messages kept per run, before thinning
GAME_KINDS = ("best", "recent")
_GAME_COLUMNS = "id, score, max_tile, length, best, recent, timestamp, env_steps"


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


class RunRecords(StoreConnection):
    """RunStore's part that keeps what runs record as they train."""

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
        check_choice("status", update.status, STATUSES)
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
            check_choice("game kind", kind, GAME_KINDS)
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
            fields = game_arrays(arrays)
        except DAMAGED_GAME as error:
            raise StoreDamaged(
                f"game {game_id} of run {run!r} in {self.path} is damaged"
                f" ({error_summary(error)}): "
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


# what reading a damaged game's .npz may raise: zipfile's CRC check, numpy's header parse,
# and RuntimeError where zipfile reads a damaged header's flags, version or compression
DAMAGED_GAME = (zipfile.BadZipFile, ValueError, OSError, KeyError, EOFError, RuntimeError)


def game_arrays(blob: bytes) -> dict[str, np.ndarray]:
    """A game's arrays from its stored .npz (``add_game``); one of DAMAGED_GAME if damaged."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as stored:
        return {field: stored[field] for field in GameRecorder.FIELDS}


def readable_game(blob: bytes) -> bool:
    try:
        game_arrays(blob)
    except DAMAGED_GAME:
        return False
    return True


def error_summary(error: Exception) -> str:
    """``KeyError('boards') -> "KeyError: 'boards'"``: an error's first line, with its kind."""
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
