"""Which recorded game to export (``best``, ``recent``/``latest`` or an id), and the facts
about a game that both of its exports (HTML page, GIF) show."""

from __future__ import annotations

import numpy as np

from ..recording import GameRecord
from ..store import GameSummary, RunStore

__all__ = ["GAME_CHOICES", "game_title", "has_policy", "load_game", "pick_game", "score_before"]

GAME_CHOICES = ("best", "recent", "latest")  # or a game id; recent and latest are one choice


def pick_game(summaries: list[GameSummary], which: str | int, run: str) -> GameSummary:
    """The game ``which`` names among a run's kept games (``RunStore.games``).

    "best": the highest score (the earlier game among equals); "recent" or "latest": the
    one that ended last; an int: the game with that id. ValueError, one line, when the run
    has no games or none with that id.
    """
    if not summaries:
        raise ValueError(
            f"run {run!r} has no recorded games yet: games are kept as training finishes "
            "them, so train it longer (g2048lab train --resume RUN) or choose another run"
        )
    if which == "best":
        return min(summaries, key=lambda s: (-s.score, s.id))
    if which in ("recent", "latest"):
        return max(summaries, key=lambda s: (s.timestamp, s.id))
    if isinstance(which, str):
        raise ValueError(f"unknown game {which!r}: choose {', '.join(GAME_CHOICES)} or a game id")
    for summary in summaries:
        if summary.id == which:
            return summary
    kept = ", ".join(
        f"{s.id} ({' & '.join(sorted(s.kinds))}: score {s.score:,})" for s in summaries
    )
    raise ValueError(f"no game {which} in run {run!r}; its games: {kept}")


def load_game(store: RunStore, run: str, which: str | int) -> tuple[GameSummary, GameRecord]:
    """The summary and the whole game ``which`` names in ``run`` (see ``pick_game``)."""
    summary = pick_game(store.games(run), which, run)
    return summary, store.load_game(summary.id)


def game_title(run: str, record: GameRecord) -> str:
    """``game_title("t1", record) -> "t1 · score 9,120 · max tile 512"``"""
    return f"{run} · score {record.score:,} · max tile {record.max_tile:,}"


def score_before(record: GameRecord) -> np.ndarray:
    """(L + 1,) int64 game score before each move; the last entry is the final score.

    ``score_gains [0, 4, 8] -> [0, 0, 4, 12]``
    """
    return np.concatenate([[0], np.cumsum(record.score_gains, dtype=np.int64)])


def has_policy(record: GameRecord) -> bool:
    """Whether ``probs`` holds a policy's probabilities. A player without one (a greedy
    n-tuple or search game, ``evaluation.record_game``) records the move it took, with
    probability 1: the exports then say "move taken" instead of showing bars as a policy."""
    if record.length == 0:
        return False
    taken = np.zeros_like(record.probs)
    taken[np.arange(record.length), record.actions] = 1.0
    return not np.array_equal(record.probs, taken)
