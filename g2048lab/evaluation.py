"""Play whole games with any batched policy and summarise them.

A policy is a function ``(obs) -> actions``: ``obs`` is VecEnv's observation dict
(``board`` (N, R, C) uint8 of the game played, ``action_mask`` (N, 4) bool), ``actions``
(N,) ints in ``Action`` order. ``game`` (a ``games.Game`` or its name) picks the game;
None is ``games.get()``, 2048 on 4x4. Each of N games is the first game played in its slot of a
VecEnv, so no slot's short games are over-counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import games as game_registry
from .engine.env import Policy, VecEnv
from .engine.rules import Action, sample_legal
from .games import Game

__all__ = [
    "EvalResult",
    "TILE_THRESHOLDS",
    "corner_policy",
    "evaluate",
    "random_policy",
    "record_game",
]

if TYPE_CHECKING:
    from .recording import GameRecord


TILE_THRESHOLDS = game_registry.get().eval_tiles
"""Tiles whose share of games reached is reported on 4x4 (another game's: ``game.eval_tiles``)."""


@dataclass(frozen=True)
class EvalResult:
    """Per-game results of an evaluation of ``game``, each an (n_games,) int64 array."""

    scores: np.ndarray  # raw game score
    max_tiles: np.ndarray  # value of the largest tile reached
    lengths: np.ndarray  # moves played
    game: Game = field(default_factory=game_registry.get)
    ended_early: int = 0  # games the player ended where it could not value the board (-1)

    def summary(self) -> dict:
        """``game`` (its name), ``mean_score``, ``median_score``, ``max_score``,
        ``max_tile`` (the best tile of any game), ``mean_length``, ``games``,
        ``tile_share`` {tile: share of games reaching it, for the game's ``eval_tiles`` and
        every larger tile some game reached (16384 and 32768 for a strong 4x4 player)},
        and their 95% intervals (``confidence``): ``mean_score_ci`` [low, high] by
        bootstrap over the games (None for a single game), ``tile_share_ci`` {tile: [low,
        high]} by Wilson."""
        from . import stats

        games = len(self.scores)
        tiles = list(self.game.eval_tiles)
        while tiles and 2 * tiles[-1] <= self.max_tiles.max():
            tiles.append(2 * tiles[-1])
        reached = {t: int((self.max_tiles >= t).sum()) for t in tiles}
        mean_ci = stats.mean_interval(self.scores) if games >= 2 else None
        return {
            "game": self.game.name,
            "games": games,
            "mean_score": float(self.scores.mean()),
            "median_score": float(np.median(self.scores)),
            "max_score": int(self.scores.max()),
            "max_tile": int(self.max_tiles.max()),
            "mean_length": float(self.lengths.mean()),
            "tile_share": {t: k / games for t, k in reached.items()},
            "mean_score_ci": mean_ci.bounds() if mean_ci else None,
            "tile_share_ci": {
                t: stats.wilson_interval(k, games).bounds() for t, k in reached.items()
            },
            "confidence": stats.CONFIDENCE,
            "ended_early": self.ended_early,
        }


def evaluate(
    policy: Policy,
    games: int,
    seed: int = 0,
    max_moves: int = 200_000,
    game: Game | str | None = None,
) -> EvalResult:
    """Play ``games`` games of ``game`` to the end with ``policy``; the same seed gives the
    same games for a deterministic policy. Raises RuntimeError if games outlast ``max_moves``.

    A policy answers -1 for a board it cannot play (an n-tuple network's board a move of
    which would make a tile beyond its tables): that game ends there, with its score so
    far, and is counted in ``EvalResult.ended_early``."""
    game = game_registry.get(game)
    env = VecEnv(games, seed=seed, game=game)
    obs, info = env.reset()
    done = np.zeros(games, dtype=np.bool_)
    early = np.zeros(games, dtype=np.bool_)
    scores = np.zeros(games, dtype=np.int64)
    max_tiles = np.zeros(games, dtype=np.int64)
    lengths = np.zeros(games, dtype=np.int64)

    def finish(ended: np.ndarray, results: dict) -> None:
        scores[ended] = results["score"][ended]
        max_tiles[ended] = results["max_tile"][ended]
        lengths[ended] = results["length"][ended]
        done[ended] = True

    for _ in range(max_moves):
        actions = np.array(policy(obs), dtype=np.int64).reshape(-1)
        stuck = actions < 0
        if stuck.any():  # the player ends these games here; their slots play on, uncounted
            ended = stuck & ~done
            early |= ended
            finish(ended, info)
            actions[stuck] = np.argmax(obs["action_mask"][stuck], axis=1)
        # slots whose first game is over keep playing (one batched call is cheaper than
        # slicing), but only their first game counts
        obs, _, terminated, _, info = env.step(actions)
        finish(terminated & ~done, info["episode"])
        if done.all():
            return EvalResult(scores, max_tiles, lengths, game, int(early.sum()))
    raise RuntimeError(f"{(~done).sum()} games were still running after {max_moves} moves")


def record_game(
    policy: Policy,
    seed: int = 0,
    move_values: Callable[[np.ndarray], np.ndarray] | None = None,
    max_moves: int = 200_000,
    game: Game | str | None = None,
) -> GameRecord:
    """Play one whole game of ``game`` with ``policy`` and record it for the replay viewer
    (``ReplayViewer([record_game(...)])``): any player, greedy or with search.

    ``probs`` holds the move taken with certainty (a policy gives actions, not
    probabilities); ``values`` the chosen move's value from ``move_values`` ((1, R, C)
    board -> (1, 4) values, as ``NTupleNetwork.move_values``), else NaN; ``rewards`` the
    raw score of each move.
    """
    from .recording import GameRecord

    env = VecEnv(1, seed=seed, game=game)
    obs, _ = env.reset()
    boards, actions, values, gains = [], [], [], []
    for _ in range(max_moves):
        action = int(policy(obs)[0])
        boards.append(obs["board"][0])
        actions.append(action)
        values.append(float(move_values(obs["board"])[0][action]) if move_values else np.nan)
        obs, _, terminated, _, info = env.step(np.array([action]))
        gains.append(int(info["score_gain"][0]))
        if terminated[0]:
            episode = info["episode"]
            return GameRecord(
                boards=np.stack([*boards, info["final_board"][0]]).astype(np.uint8),
                actions=np.asarray(actions, dtype=np.int64),
                probs=np.eye(4, dtype=np.float32)[actions],
                values=np.asarray(values, dtype=np.float32),
                rewards=np.asarray(gains, dtype=np.float32),
                score_gains=np.asarray(gains, dtype=np.int64),
                score=int(episode["score"][0]),
                max_tile=int(episode["max_tile"][0]),
            )
    raise RuntimeError(f"the game was still running after {max_moves} moves")


def random_policy(seed: int = 0) -> Policy:
    """Uniform over legal moves."""
    rng = np.random.default_rng(seed)
    return lambda obs: sample_legal(obs["action_mask"], rng)


CORNER_PREFERENCE = (Action.LEFT, Action.DOWN, Action.RIGHT, Action.UP)


def corner_policy(obs: dict[str, np.ndarray]) -> np.ndarray:
    """Keep the big tiles in the bottom-left corner: the first legal move of LEFT, DOWN,
    RIGHT, UP."""
    mask = obs["action_mask"][:, list(CORNER_PREFERENCE)]
    first = np.argmax(mask, axis=1)
    return np.asarray(CORNER_PREFERENCE, dtype=np.int64)[first]
