"""Whole games recorded during training, for replay: the best so far and the most recent.

The trainer records the games of the first few env slots (recording all of them
would cost memory for nothing a person looks at). Each rollout hands the
recorder (T, S) arrays; games that ended are cut out of them and kept.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

__all__ = ["GameRecord", "GameRecorder"]


@dataclass
class GameRecord:
    """One whole game. L moves; boards hold L + 1 positions (the last is the final board)
    of the game's (R, C) board."""

    boards: np.ndarray  # (L + 1, R, C) uint8 exponents
    actions: np.ndarray  # (L,) int64, Action order
    probs: np.ndarray  # (L, 4) float32 policy probabilities before each move
    values: np.ndarray  # (L,) float32 value estimates before each move, in return units
    rewards: np.ndarray  # (L,) float32 shaped rewards
    score_gains: np.ndarray  # (L,) int64 raw game score of each move
    score: int  # raw game score
    max_tile: int  # value of the largest tile
    env_steps: int = 0  # training env steps when the game ended
    iteration: int = 0  # PPO updates done when the game ended
    timestamp: float = field(default_factory=time.time)

    @property
    def length(self) -> int:
        return len(self.actions)

    @property
    def shape(self) -> tuple[int, int]:
        """(R, C) of the game's board."""
        rows, cols = self.boards.shape[1:]
        return (rows, cols)

    def to_dict(self) -> dict:
        """Plain lists and numbers (JSON-ready); ``shape`` [R, C] is the board's."""
        return {
            "shape": list(self.shape),
            "boards": self.boards.tolist(),
            "actions": self.actions.tolist(),
            "probs": np.round(self.probs, 4).tolist(),
            "values": np.round(self.values, 4).tolist(),
            "rewards": np.round(self.rewards, 4).tolist(),
            "score_gains": self.score_gains.tolist(),
            "score": self.score,
            "max_tile": self.max_tile,
            "env_steps": self.env_steps,
            "iteration": self.iteration,
            "timestamp": self.timestamp,
        }

    @classmethod
    def from_dict(cls, data: dict) -> GameRecord:
        """The game of ``to_dict``; a dict without ``shape`` (written before games) is 4x4."""
        rows, cols = data.get("shape", (4, 4))
        return cls(
            boards=np.asarray(data["boards"], dtype=np.uint8).reshape(-1, rows, cols),
            actions=np.asarray(data["actions"], dtype=np.int64),
            probs=np.asarray(data["probs"], dtype=np.float32).reshape(-1, 4),
            values=np.asarray(data["values"], dtype=np.float32),
            rewards=np.asarray(data["rewards"], dtype=np.float32),
            score_gains=np.asarray(data["score_gains"], dtype=np.int64),
            score=int(data["score"]),
            max_tile=int(data["max_tile"]),
            env_steps=int(data.get("env_steps", 0)),
            iteration=int(data.get("iteration", 0)),
            timestamp=float(data.get("timestamp", 0.0)),
        )


class GameRecorder:
    """Cuts finished games out of rollouts of S recorded slots; keeps the best and the latest."""

    FIELDS = ("boards", "actions", "probs", "values", "rewards", "score_gains")

    def __init__(self, slots: int, keep_best: int = 5, keep_recent: int = 5):
        self.slots = slots
        self.keep_best = keep_best
        self._open: list[dict[str, list[np.ndarray]]] = [self._empty() for _ in range(slots)]
        self._best: list[tuple[int, int, GameRecord]] = []  # min-heap of (score, serial, game)
        self._serial = 0
        self.recent: deque[GameRecord] = deque(maxlen=keep_recent)

    def _empty(self) -> dict[str, list[np.ndarray]]:
        return {name: [] for name in self.FIELDS}

    @property
    def best(self) -> list[GameRecord]:
        """The best recorded games, best first."""
        return [game for _, _, game in sorted(self._best, key=lambda item: (-item[0], item[1]))]

    def add_rollout(
        self,
        boards: np.ndarray,
        actions: np.ndarray,
        probs: np.ndarray,
        values: np.ndarray,
        rewards: np.ndarray,
        score_gains: np.ndarray,
        dones: np.ndarray,
        final_boards: dict[tuple[int, int], np.ndarray],
        env_steps: int = 0,
        iteration: int = 0,
    ) -> list[GameRecord]:
        """Take one rollout of the recorded slots; return the games that ended in it.

        Args:
            boards: (T, S, R, C) boards before each move; actions, values, rewards,
                score_gains, dones: (T, S); probs: (T, S, 4).
            final_boards: {(t, slot): (R, C) board} where the move at t ended the game.
        """
        finished = []
        arrays = dict(zip(self.FIELDS, (boards, actions, probs, values, rewards, score_gains)))
        for slot in range(self.slots):
            start = 0
            for t in np.flatnonzero(dones[:, slot]):
                for name, array in arrays.items():
                    self._open[slot][name].append(array[start : t + 1, slot])
                game = self._close(slot, final_boards[(int(t), slot)], env_steps, iteration)
                finished.append(game)
                start = t + 1
            for name, array in arrays.items():
                self._open[slot][name].append(array[start:, slot])
        return finished

    def _close(self, slot: int, final_board: np.ndarray, env_steps: int, iteration: int):
        parts = {name: np.concatenate(chunks) for name, chunks in self._open[slot].items()}
        self._open[slot] = self._empty()
        gains = parts["score_gains"].astype(np.int64)
        boards = np.concatenate([parts["boards"], final_board[None]]).astype(np.uint8)
        game = GameRecord(
            boards=boards,
            actions=parts["actions"].astype(np.int64),
            probs=parts["probs"].astype(np.float32),
            values=parts["values"].astype(np.float32),
            rewards=parts["rewards"].astype(np.float32),
            score_gains=gains,
            score=int(gains.sum()),
            max_tile=int(2 ** int(boards.max())),
            env_steps=env_steps,
            iteration=iteration,
        )
        return self.add_game(game)

    def add_game(self, game: GameRecord) -> GameRecord:
        """Keep a whole game recorded elsewhere (``evaluation.record_game``); returns it."""
        self.recent.append(game)
        self._serial += 1
        entry = (game.score, self._serial, game)
        if len(self._best) < self.keep_best:
            heapq.heappush(self._best, entry)
        elif game.score > self._best[0][0]:
            heapq.heapreplace(self._best, entry)
        return game
