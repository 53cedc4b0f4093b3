"""The n-tuple network's compiled kernels on flat boards of any game: features, training
(``td``), values. ``network.NTupleNetwork`` uses them on every board but 4x4, where its
bit-packed kernels do the same work faster.

A board is one flat (R*C,) uint8 array of exponents in row-major order; moves, legality
and spawns are the engine's per-board kernels (``engine.rules``: ``move_one``,
``legal_one``, ``spawn_one``), given the board's lines (``rules.line_cells(R, C)``), the
game's spawn rule and its start tiles. The random numbers are ``engine.packed.uniform``'s
splitmix64, as on 4x4, so training resumes bit-exactly from a saved generator state.

How a feature is read: ``reads`` (F, 2 + L) int64 holds, per feature (image-major, then
tuple, as the packed kernels order them), the offset of its tuple's table in the flat
weights, the tuple's length n, then the n board cells that give its index digits (the
tuple's cells seen through the image's symmetry)::

    index_f = reads[f, 0] + sum_k board[reads[f, 2 + k]] << 4k      for k < reads[f, 1]

The tables hold 4-bit cells (``packed.EXPONENTS``): a move that would make the tile 2**16
ends a training game (counted like the packed kernels do) and is refused by the players.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...engine.packed import EXPONENTS, uniform
from ...engine.rules import FAST_LIMIT, legal_one, max_exponent, move_one, spawn_one
from .packed_kernels import LENGTH, PENDING, SCORE, START  # one layout of the game slots
from .td import learn_end, learn_move, prefetch, stage_of, weight_sum

__all__ = [
    "feature_reads",
    "features_kernel",
    "move_values_kernel",
    "train_kernel",
    "values_kernel",
]


def feature_reads(layout, perms: np.ndarray, table_size: int) -> np.ndarray:
    """(F, 2 + L) int64 ``reads`` (see the module docstring) of ``layout`` (tuples of flat
    cells) on the images ``perms`` (S, R*C) (``layouts.symmetries``), F = S * T, each
    tuple's table ``table_size`` weights long."""
    width = max(len(cells) for cells in layout)
    reads = np.zeros((len(perms) * len(layout), 2 + width), dtype=np.int64)
    for s, perm in enumerate(perms):
        for t, cells in enumerate(layout):
            row = reads[s * len(layout) + t]
            row[0] = t * table_size
            row[1] = len(cells)
            row[2 : 2 + len(cells)] = perm[list(cells)]
    return reads


@njit(inline="always")
def _stage(board, stage_masks):
    """The stage of a flat board (``td.stage_of``)."""
    present = np.int64(0)
    for i in range(board.shape[0]):
        present |= np.int64(1) << np.int64(board[i])
    return stage_of(present, stage_masks)


@njit(inline="always")
def _features(board, reads, out, stage_masks, stage_size):
    """Write the flat weight indices of a board's features into ``out`` (F,) int64, in the
    tables of the board's stage (``td.stage_of``: ``stage_masks`` (K,) int64, each stage's
    tables ``stage_size`` weights long; no masks, one stage)."""
    offset = np.int64(0)
    if stage_masks.shape[0] > 0:
        offset = _stage(board, stage_masks) * stage_size
    for f in range(reads.shape[0]):
        index = reads[f, 0] + offset
        for k in range(reads[f, 1]):
            index += np.int64(board[reads[f, 2 + k]]) << (4 * k)
        out[f] = index


@njit(inline="always")
def _spawn(board, rng, four_probability):
    """One tile on an empty cell of ``board``, from two ``uniform`` draws (cell, then value)."""
    u_cell = uniform(rng)
    u_value = uniform(rng)
    spawn_one(board, u_cell, u_value, four_probability)


@njit(inline="always")
def _expand(board, weights, reads, lines, move_table, afters, rewards, legal, features, stages):
    """The four moves of a board: fill ``afters`` (4, R*C) uint8, ``rewards`` (4,) int64,
    ``legal`` (4,) bool and, for the legal moves, ``features`` (4, F) int64, prefetching
    their weights. Returns False (and stops) if a move would create 2**16."""
    fast = max_exponent(board) < FAST_LIMIT
    for action in range(4):
        after = afters[action]
        rewards[action] = move_one(board, after, action, fast, move_table, lines)[0]
        if max_exponent(after) >= EXPONENTS:
            return False
        changed = False
        for i in range(board.shape[0]):
            if after[i] != board[i]:
                changed = True
                break
        legal[action] = changed
        if changed:
            _features(after, reads, features[action], stages[0], stages[1])
            for k in range(features.shape[1]):
                prefetch(weights, features[action, k])
    return True


@njit(inline="always")
def _greedy(weights, rewards, legal, features, stages):
    """``(action, reward + V(afterstate))`` of the best legal move after ``_expand``, the
    first on ties; ``(-1, -inf)`` if no move is legal."""
    best_action = -1
    best_value = np.float32(-np.inf)
    for action in range(4):
        if legal[action]:
            v = np.float32(rewards[action]) + weight_sum(
                weights, features[action], stages[1], stages[2]
            )
            if v > best_value:
                best_action = action
                best_value = v
    return best_action, best_value


@njit(nogil=True, cache=True)
def train_kernel(
    moves,
    boards,
    game,
    rng,
    weights,
    reads,
    step_size,
    lines,
    move_table,
    legal_table,
    four_probability,
    start_tiles,
    finished,
    stages,
    coherence,
    pending,
    returns,
    lam,
):
    """Play and learn for exactly ``moves`` moves; see ``NTupleNetwork.train``.

    ``boards`` (2, R*C) uint8 (the board, the newest afterstate), ``game`` (6,) uint64
    (``PENDING``, ``SCORE``, ``LENGTH``, ``START``), ``rng`` (1,) uint64 and the ring of
    afterstates waiting for their target (``pending`` (H + 1, F) int64, ``returns`` (H +
    1, 2) float64; ``td.learn_move``) are the resumable state, updated in place; ``lam``
    (H,) float64 weighs the returns. ``weights`` is the flat table. ``stages`` is
    ``(stage_masks (K,) int64, stage_size, init)`` and ``coherence`` the TC statistics or
    an empty array (``td``). ``finished`` (G, 4) int64 receives score, max tile, length
    and final stage of each game that ends. Returns ``(games finished, games ended at the
    table's range, sum of |TD error|, updates)``.
    """
    stage_masks = stages[0]
    learning = (lam, step_size, weights, stages, coherence)
    n_features = reads.shape[0]
    cells = boards.shape[1]
    afters = np.empty((4, cells), dtype=np.uint8)
    rewards = np.empty(4, dtype=np.int64)
    legal = np.empty(4, dtype=np.bool_)
    mask = np.empty(4, dtype=np.bool_)
    features = np.empty((4, n_features), dtype=np.int64)
    board = boards[0]
    prev = boards[1]
    count = np.int64(game[PENDING])
    start = np.int64(game[START])
    game_score = np.int64(game[SCORE])
    length = np.int64(game[LENGTH])
    n_finished = 0
    range_games = 0
    error_sum = 0.0
    updates = 0
    played = 0
    while played < moves:
        end = False
        if not _expand(
            board, weights, reads, lines, move_table, afters, rewards, legal, features, stages
        ):
            # a move could create 2**16, which the tables cannot index: the game ends
            # here, and its waiting afterstates keep their values (no target is known)
            range_games += 1
            end = True
        else:
            action, value = _greedy(weights, rewards, legal, features, stages)
            start, count, error, n = learn_move(
                pending, returns, start, count, features[action], rewards[action], value, learning
            )
            error_sum += error
            updates += n
            prev[:] = afters[action]
            game_score += rewards[action]
            length += 1
            played += 1
            board[:] = prev
            _spawn(board, rng, four_probability)
            fast = max_exponent(board) < FAST_LIMIT
            if legal_one(board, mask, fast, legal_table, lines) == 0:
                errors, n = learn_end(pending, returns, start, count, learning)
                error_sum += errors
                updates += n
                end = True
        if end:
            finished[n_finished, 0] = game_score
            finished[n_finished, 1] = np.int64(1) << np.int64(max_exponent(board))
            finished[n_finished, 2] = length
            finished[n_finished, 3] = _stage(board, stage_masks)
            n_finished += 1
            board[:] = 0
            for _ in range(start_tiles):
                _spawn(board, rng, four_probability)
            count = 0
            start = 0
            game_score = 0
            length = 0
    game[PENDING] = np.uint64(count)
    game[START] = np.uint64(start)
    game[SCORE] = np.uint64(game_score)
    game[LENGTH] = np.uint64(length)
    return n_finished, range_games, error_sum, updates


@njit(nogil=True, cache=True)
def features_kernel(boards, reads, out, stage_masks, stage_size):
    """Features (N, F) int64 of flat boards (N, R*C) uint8, as training indexes them."""
    for i in range(boards.shape[0]):
        _features(boards[i], reads, out[i], stage_masks, stage_size)


@njit(nogil=True, cache=True)
def values_kernel(boards, weights, reads, out, stages):
    """(N, R*C) boards -> fill (N,) float32 ``out`` with their values."""
    stage_masks, stage_size, init = stages
    features = np.empty(reads.shape[0], dtype=np.int64)
    for n in range(boards.shape[0]):
        _features(boards[n], reads, features, stage_masks, stage_size)
        out[n] = weight_sum(weights, features, stage_size, init)


@njit(nogil=True, cache=True)
def move_values_kernel(boards, weights, reads, lines, move_table, out, stages):
    """(N, R*C) boards -> fill (N, 4) float32 ``out`` with reward + V(afterstate), -inf
    where illegal. Returns the first board with a move that would create 2**16, or -1."""
    afters = np.empty((4, boards.shape[1]), dtype=np.uint8)
    rewards = np.empty(4, dtype=np.int64)
    legal = np.empty(4, dtype=np.bool_)
    features = np.empty((4, reads.shape[0]), dtype=np.int64)
    for n in range(boards.shape[0]):
        if not _expand(
            boards[n], weights, reads, lines, move_table, afters, rewards, legal, features, stages
        ):
            return n
        for action in range(4):
            if legal[action]:
                out[n, action] = np.float32(rewards[action]) + weight_sum(
                    weights, features[action], stages[1], stages[2]
                )
            else:
                out[n, action] = -np.inf
    return -1


@njit(cache=True)
def start_board(board, rng, start_tiles, four_probability):
    """Empty ``board`` (R*C,) uint8 and spawn ``start_tiles`` tiles on it from ``rng``."""
    board[:] = 0
    for _ in range(start_tiles):
        _spawn(board, rng, four_probability)
