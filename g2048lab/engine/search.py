"""Expectimax at play time over any learner's value function, batched over boards.

A learner that has a value function hands search a ``ValueModel``: a batched
``values(boards)`` and whether those values score *afterstates* (the board right
after a move, before the new tile: n-tuple TD networks) or *states* (the board
after the new tile, the player to move: an actor-critic's value head). Search then
looks ``depth`` plies ahead, a ply being one move and the tile spawned after it::

    Q_d(s, a) = r(s, a) + discount * C_d(after(s, a))       (-inf if a is illegal in s)
    C_1(x)    = V(x)                                        afterstate models
    C_1(x)    = E_spawn[ W(s') ],  W(s') = V(s')            state models
    C_d(x)    = E_spawn[ W(s') ],  W(s') = max_a' Q_{d-1}(s', a')    d > 1
    W(s')     = terminal_value (0 by default) where s' has no legal move

``E_spawn`` weighs every empty cell of ``x`` equally, a 2 with probability 0.9 and
a 4 with 0.1 (``game.SPAWN_FOUR_PROBABILITY``). Depth 1 is one move: greedy over
afterstate values, or over the expected value of the states the spawn makes.

The tree is expanded one level at a time over the whole batch: every board's four
moves in one ``slide`` call, every spawn of every afterstate in one NumPy
expression, and identical boards within a level merged (a transposition cache
keyed by the board packed into a uint64), so each distinct leaf is scored once, in
one call to ``values`` per slice of the last level (a torch model sees thousands of
boards at a time). Levels wider than ``max_boards`` spawned boards are
processed in slices, which bounds memory at about ``500 bytes * max_boards`` per
ply below the root (some 33 MB per ply at the default, ~100 MB for depth 3), plus
~500 bytes per root board, plus what ``values`` needs for one call, which gets at
most ``4 * max_boards`` boards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from .env import RewardConfig
from .rules import SPAWN_FOUR_PROBABILITY, legal_mask, slide

if TYPE_CHECKING:
    from ..evaluation import Policy
    from ..model import GameTransformer

__all__ = [
    "MAX_BOARDS",
    "MAX_DEPTH",
    "ValueModel",
    "check_play_depth",
    "expectimax_actions",
    "expectimax_values",
    "search_policy",
    "shaped_reward",
    "transformer_value_model",
]

MAX_BOARDS = 1 << 16
"""Default number of spawned boards one slice of a search level may hold."""

MAX_DEPTH = 3
"""The deepest search whole games are played with (``search_policy``, ``g2048lab eval
--search``). Each move deeper costs some 30 times more: on one CPU thread a move at depth
3 takes about 0.1-0.5 s per board for the tiny transformer, tens of ms for the n-tuple
network's compiled search; at depth 4 seconds, so hours for one game. ``expectimax_values``
itself takes any depth, for looking at a few boards."""

RewardFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ValueModel:
    """What search needs of a learner: a batched value function and its units.

    values: (N, 4, 4) uint8 boards -> (N,) float values. Search only asks it about
        boards with a legal move (``of="state"``) or about afterstates
        (``of="afterstate"``).
    of: ``"afterstate"`` if ``values`` scores boards right after a move, before the
        spawn; ``"state"`` if it scores boards after the spawn, the player to move.
    discount: applied per move to everything that follows the move's reward.
    reward: ``(boards, afterstates, scores) -> (N,) float`` the reward of each move in
        the units of ``values``, from the (N, 4, 4) boards before the move, the (N, 4, 4)
        afterstates and the (N,) int64 game score of the move; None: the game score.
    terminal_value: ``W`` of a spawned board with no legal move. A reward paid on the
        move that ends the game (``RewardConfig.game_over_penalty``) goes here, divided
        by ``discount``, since the move's reward does not know the spawn yet.
    """

    values: Callable[[np.ndarray], np.ndarray]
    of: Literal["afterstate", "state"]
    discount: float = 1.0
    reward: RewardFn | None = None
    terminal_value: float = 0.0

    def __post_init__(self) -> None:
        if self.of not in ("afterstate", "state"):
            raise ValueError(f"ValueModel.of must be 'afterstate' or 'state', got {self.of!r}")
        if not 0 < self.discount <= 1:
            raise ValueError(f"ValueModel.discount must be in (0, 1], got {self.discount}")


def expectimax_values(
    boards: np.ndarray, model: ValueModel, depth: int, max_boards: int = MAX_BOARDS
) -> np.ndarray:
    """(N, 4, 4) uint8 boards -> (N, 4) float64 ``Q_depth`` of each move in ``Action``
    order, ``-inf`` for illegal moves (all four on a board with no legal move).

    ``depth`` >= 1 plies (see the module docstring); ``max_boards`` bounds memory.
    """
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"depth must be an int >= 1 (plies; 1 is greedy), got {depth!r}")
    if max_boards < 30:
        raise ValueError(
            f"max_boards must be at least 30 (one afterstate's spawns), got {max_boards}"
        )
    boards = np.asarray(boards)
    if boards.ndim != 3 or boards.shape[1:] != (4, 4) or boards.dtype != np.uint8:
        raise ValueError(
            f"boards must be (N, 4, 4) uint8 exponents, got {boards.dtype} {boards.shape}; "
            "use board[None] for one board"
        )
    return _q_values(np.ascontiguousarray(boards).reshape(-1, 16), model, int(depth), max_boards)


def expectimax_actions(
    boards: np.ndarray, model: ValueModel, depth: int, max_boards: int = MAX_BOARDS
) -> np.ndarray:
    """(N, 4, 4) uint8 boards -> (N,) int64 move of highest ``Q_depth``, the first in
    ``Action`` order on a tie; -1 for a board with no legal move."""
    q = expectimax_values(boards, model, depth, max_boards)
    actions = q.argmax(axis=1)
    actions[np.isneginf(q).all(axis=1)] = -1
    return actions


def search_policy(model: ValueModel, depth: int, max_boards: int = MAX_BOARDS) -> Policy:
    """A policy for ``evaluation.evaluate`` that plays ``expectimax_actions``; ``depth``
    at most ``MAX_DEPTH``."""
    check_play_depth(depth)
    return lambda obs: expectimax_actions(obs["board"], model, depth, max_boards)


def check_play_depth(depth: int) -> None:
    """ValueError saying why not, unless whole games can be played ``depth`` moves deep
    (1 to ``MAX_DEPTH``)."""
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"search depth must be a whole number of moves, at least 1, got {depth!r}")
    if depth > MAX_DEPTH:
        raise ValueError(
            f"search depth {depth} is too deep: use 1 to {MAX_DEPTH} (each move deeper costs "
            "some 30 times more; at depth 4 a move takes seconds, a game hours)"
        )


# --- the tree, one level at a time ----------------------------------------------------------

ACTIONS = np.arange(4, dtype=np.int64)
SPAWN_TILES = np.array([1, 2], dtype=np.uint8)  # exponents of the tiles 2 and 4
SPAWN_PROBS = np.array([1 - SPAWN_FOUR_PROBABILITY, SPAWN_FOUR_PROBABILITY])
NIBBLE_SHIFTS = np.arange(0, 64, 4, dtype=np.uint64)  # (16,) cell i -> bits 4i..4i+3


def _q_values(boards: np.ndarray, model: ValueModel, depth: int, max_boards: int) -> np.ndarray:
    """(n, 16) flat boards -> (n, 4) Q_depth, -inf for illegal moves."""
    n = boards.shape[0]
    after, scores, moved = slide(
        np.repeat(boards, 4, axis=0).reshape(-1, 4, 4), np.tile(ACTIONS, n)
    )
    q = np.full(4 * n, -np.inf)
    legal = np.flatnonzero(moved)  # (m,) indices into the n*4 (board, move) pairs
    if legal.size:
        after = after.reshape(-1, 16)[legal]  # (m, 16)
        rewards = _rewards(model, boards[legal // 4], after, scores[legal])
        distinct, inverse = _unique_boards(after)
        q[legal] = (
            rewards + model.discount * _chance_values(distinct, model, depth, max_boards)[inverse]
        )
    return q.reshape(n, 4)


def _chance_values(after: np.ndarray, model: ValueModel, depth: int, max_boards: int) -> np.ndarray:
    """(m, 16) distinct afterstates -> (m,) C_depth, in slices of at most ``max_boards`` spawns."""
    if depth == 1 and model.of == "afterstate":
        return _call_values(model, after)
    spawns = np.cumsum(2 * (after == 0).sum(axis=1))  # (m,) spawned boards up to each afterstate
    out = np.empty(after.shape[0])
    start = 0
    while start < after.shape[0]:
        before = spawns[start - 1] if start else 0
        stop = max(int(np.searchsorted(spawns, before + max_boards, side="right")), start + 1)
        out[start:stop] = _chance_slice(after[start:stop], model, depth, max_boards)
        start = stop
    return out


def _chance_slice(after: np.ndarray, model: ValueModel, depth: int, max_boards: int) -> np.ndarray:
    """(m, 16) afterstates -> (m,) expectation over their spawns of W (see the module docstring)."""
    children, probs, parents = _spawns(after)
    distinct, inverse = _unique_boards(children)
    alive = legal_mask(distinct.reshape(-1, 4, 4)).any(axis=1)
    w = np.full(distinct.shape[0], model.terminal_value)
    if depth == 1:
        w[alive] = _call_values(model, distinct[alive])
    else:
        w[alive] = _q_values(distinct[alive], model, depth - 1, max_boards).max(axis=1)
    return np.bincount(parents, weights=probs * w[inverse], minlength=after.shape[0])


def _spawns(after: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every board one spawn can make from each of (m, 16) afterstates.

    Returns ``(children (k, 16) uint8, probs (k,) float64, parents (k,) int64)``; the
    probabilities of each parent's children sum to 1 (a parent with no empty cell has
    no children).
    """
    parent_of_cell, cell = np.nonzero(after == 0)  # (e,) each empty cell of each board
    empty = np.bincount(parent_of_cell, minlength=after.shape[0])  # (m,)
    parents = np.repeat(parent_of_cell, 2)  # (k,) = (2e,): a 2 then a 4 on each cell
    children = after[parents]
    children[np.arange(parents.size), np.repeat(cell, 2)] = np.tile(SPAWN_TILES, cell.size)
    probs = np.tile(SPAWN_PROBS, cell.size) / empty[parents]
    return children, probs, parents


def _unique_boards(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 16) boards -> (distinct boards (u, 16), inverse (n,)) with ``distinct[inverse] == flat``.

    Boards whose exponents all fit a nibble are keyed by one uint64 (fast sort);
    beyond the tile 32768 the rows themselves are compared.
    """
    if flat.shape[0] == 0:
        return flat, np.zeros(0, dtype=np.int64)
    if flat.max() <= 15:
        keys = (flat.astype(np.uint64) << NIBBLE_SHIFTS).sum(axis=1, dtype=np.uint64)  # (n,)
        _, index, inverse = np.unique(keys, return_index=True, return_inverse=True)
    else:
        _, index, inverse = np.unique(flat, axis=0, return_index=True, return_inverse=True)
    return flat[index], inverse.reshape(-1)


def _rewards(
    model: ValueModel, boards: np.ndarray, after: np.ndarray, scores: np.ndarray
) -> np.ndarray:
    if model.reward is None:
        return scores.astype(np.float64)
    rewards = model.reward(boards.reshape(-1, 4, 4), after.reshape(-1, 4, 4), scores)
    return _as_column(rewards, scores.shape[0], "reward")


def _call_values(model: ValueModel, flat: np.ndarray) -> np.ndarray:
    if flat.shape[0] == 0:
        return np.zeros(0)
    return _as_column(model.values(flat.reshape(-1, 4, 4)), flat.shape[0], "values")


def _as_column(x, n: int, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (n,):
        raise ValueError(
            f"ValueModel.{name} must return shape ({n},) for {n} boards, got {x.shape}"
        )
    return x


# --- the PPO transformer as a value model ---------------------------------------------------


def shaped_reward(config: RewardConfig) -> RewardFn:
    """The reward of ``VecEnv(reward=config)`` for a move, as a ``ValueModel.reward``.

    Exact for every field but ``game_over_penalty``, which depends on the spawn (see
    ``ValueModel.terminal_value``), and ``illegal_penalty`` (search never plays an
    illegal move). The move's merge count and merged exponents follow from the boards:
    a merge of two tiles ``e`` removes one tile and lowers the exponent sum by ``e - 1``,
    so ``merges = tiles before - tiles after`` and the log score, the sum of the
    created exponents ``e + 1``, is ``2 merges + exponent sum before - after``.
    """

    def reward(boards: np.ndarray, after: np.ndarray, scores: np.ndarray) -> np.ndarray:
        merges = np.count_nonzero(boards, axis=(1, 2)) - np.count_nonzero(after, axis=(1, 2))
        if config.log_score:
            total = boards.sum(axis=(1, 2), dtype=np.int64) - after.sum(axis=(1, 2), dtype=np.int64)
            gain = 2 * merges + total
        else:
            gain = scores
        return config.score_weight * gain + config.survival_bonus + config.merge_bonus * merges

    return reward


def transformer_value_model(
    model: GameTransformer,
    *,
    gamma: float,
    return_mean: float = 0.0,
    return_std: float = 1.0,
    reward: RewardConfig | None = None,
    batch_size: int = 4096,
) -> ValueModel:
    """A ``"state"`` ValueModel from a PPO-trained ``GameTransformer``'s value head.

    The head predicts the discounted return of the shaped reward, normalised by the
    trainer's running return statistics; search un-normalises it (``value * return_std
    + return_mean``: pass the trainer's ``return_stats.mean`` and ``.std``, or 0 and 1
    if it ran with ``normalize_values=False``) and adds the shaped reward of
    ``reward`` (the run's ``RewardConfig``, default ``RewardConfig()``) along the path,
    discounted by ``gamma`` (the run's ``PPOConfig.gamma``), so search maximises what
    PPO was trained to maximise. The model runs on its own device under
    ``torch.inference_mode`` in batches of ``batch_size`` boards; put it in ``eval()``
    mode first, or dropout makes the values noisy.
    """
    import torch

    config = reward or RewardConfig()
    device = next(model.parameters()).device

    def values(boards: np.ndarray) -> np.ndarray:
        masks = legal_mask(boards)
        out = np.empty(boards.shape[0])
        with torch.inference_mode():
            for start in range(0, boards.shape[0], batch_size):
                stop = start + batch_size
                b = torch.from_numpy(np.ascontiguousarray(boards[start:stop])).to(device)
                m = torch.from_numpy(np.ascontiguousarray(masks[start:stop])).to(device)
                out[start:stop] = model(b, m).value.float().cpu().numpy()  # (B,) normalised
        return out * return_std + return_mean

    return ValueModel(
        values=values,
        of="state",
        discount=gamma,
        reward=shaped_reward(config),
        terminal_value=-config.game_over_penalty / gamma,
    )
