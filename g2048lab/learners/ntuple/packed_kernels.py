"""The n-tuple network's compiled kernels on 4x4 boards packed in a uint64: features,
training (``td``), values. ``network.NTupleNetwork`` uses them on 4x4, where they are
faster than ``flat_kernels`` (which play every board).

A tuple is read off a packed board with a few shifts and masks (``layout_runs``); moves,
legality and spawns are ``engine.packed``'s bit arithmetic and tables, with the game's
spawn rule. The random numbers are ``engine.packed.uniform``'s splitmix64 generator,
whose whole state is one uint64: training resumes bit-exactly from a saved state.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...engine.packed import (
    EXPONENTS,
    NIBBLE,
    flip,
    has_move,
    max_exponent,
    mirror,
    move,
    new_game,
    spawn,
    transpose,
)
from .td import learn_end, learn_move, prefetch, stage_of, weight_sum

__all__ = [
    "BOARD",
    "LENGTH",
    "PENDING",
    "PREV",
    "SCORE",
    "START",
    "features_kernel",
    "layout_runs",
    "move_values_kernel",
    "start_board",
    "train_kernel",
    "values_kernel",
]


# --- packed boards: how the kernels read a tuple off a uint64 board -----------------------


def layout_runs(layout: tuple[tuple[int, ...], ...]) -> tuple[tuple[np.uint64, ...], ...]:
    """How the kernels read each tuple's weight off a packed board: one tuple per tuple,
    ``(offset, shift, mask, shift, mask, ...)`` uint64.

    Digit k of a tuple's index is the exponent on its k-th cell, so the index is
    ``sum_k ((board >> 4 * cell_k) & 15) << 4k``. Neighbouring digits whose cells are
    neighbours too come out of the packed board with one shift and one mask, so
    ``index = OR_j (board >> shift_j) & mask_j``, and ``offset = t * 16**L`` places
    tuple t's table in the flat weights. Every tuple gets as many runs as the longest
    (a mask of 0 adds nothing); a tuple is a fixed-length numba tuple, so the kernels'
    loops over it unroll.
    """
    per_tuple: list[list[tuple[int, int]]] = []
    for cells in layout:
        if list(cells) != sorted(cells) or len(set(cells)) != len(cells):
            raise ValueError(f"tuple cells must be distinct and ascending, got {cells}")
        runs: dict[int, int] = {}
        for k, cell in enumerate(cells):
            runs[4 * (cell - k)] = runs.get(4 * (cell - k), 0) | (15 << (4 * k))
        per_tuple.append(sorted(runs.items()))
    width = max(len(runs) for runs in per_tuple)
    table = EXPONENTS ** max(len(cells) for cells in layout)
    return tuple(
        tuple(
            np.uint64(x)
            for x in [t * table]
            + [v for shift, mask in runs + [(0, 0)] * (width - len(runs)) for v in (shift, mask)]
        )
        for t, runs in enumerate(per_tuple)
    )


# --- compiled kernels on packed 4x4 boards ------------------------------------------------


@njit(inline="always")
def _stage(board, stage_masks):
    """The stage of a packed board (``td.stage_of``)."""
    present = np.int64(0)
    for i in range(16):
        present |= np.int64(1) << np.int64((board >> np.uint64(4 * i)) & NIBBLE)
    return stage_of(present, stage_masks)


@njit(inline="always")
def _features(board, runs, out, stage_masks, stage_size):
    """Write the flat weight indices of a packed board's features into ``out`` (F,) int64,
    image by image (the 8 symmetries), tuple by tuple, in the tables of the board's stage
    (``td.stage_of``; no ``stage_masks``: one stage).

    ``runs[t]`` is ``(offset of tuple t's table in the flat weights, shift, mask, shift,
    mask, ...)``: the index is ``offset + OR_j (image >> shift_j) & mask_j``.
    """
    offset = np.uint64(0)
    if stage_masks.shape[0] > 0:
        offset = np.uint64(_stage(board, stage_masks) * stage_size)
    mirrored = mirror(board)
    transposed = transpose(board)
    transposed_mirrored = mirror(transposed)
    images = (
        board,
        mirrored,
        flip(board),
        flip(mirrored),
        transposed,
        transposed_mirrored,
        flip(transposed),
        flip(transposed_mirrored),
    )
    k = 0
    for image in images:
        for tuple_runs in runs:
            index = np.uint64(0)
            for j in range(1, len(tuple_runs), 2):
                index |= (image >> tuple_runs[j]) & tuple_runs[j + 1]
            out[k] = np.int64(tuple_runs[0] + offset + index)
            k += 1


@njit(inline="always")
def _value(board, weights, runs, features, stages):
    """V of a packed board (float32); ``features`` (F,) int64 is scratch."""
    stage_masks, stage_size, init = stages
    _features(board, runs, features, stage_masks, stage_size)
    return weight_sum(weights, features, stage_size, init)


@njit(inline="always")
def _expand(board, weights, runs, xor, score, afters, rewards, features, stages):
    """The four moves of a packed board: fill ``afters`` (4,) uint64, ``rewards`` (4,)
    int64 and, for the legal ones, ``features`` (4, F) int64, prefetching their weights.

    Returns False (and stops) if a move would create 2**16, beyond the tables.
    """
    transposed = transpose(board)
    for action in range(4):
        after, reward = move(board, transposed, action, xor, score)
        if reward < 0:
            return False
        afters[action] = after
        rewards[action] = reward
        if after != board:
            _features(after, runs, features[action], stages[0], stages[1])
            for k in range(features.shape[1]):
                prefetch(weights, features[action, k])
    return True


@njit(inline="always")
def _greedy(board, weights, afters, rewards, features, stages):
    """``(action, reward + V(afterstate))`` of the best legal move after ``_expand``, the
    first on ties; ``(-1, -inf)`` if no move is legal."""
    best_action = -1
    best_value = np.float32(-np.inf)
    for action in range(4):
        if afters[action] != board:
            v = np.float32(rewards[action]) + weight_sum(
                weights, features[action], stages[1], stages[2]
            )
            if v > best_value:
                best_action = action
                best_value = v
    return best_action, best_value


# slots of the game-state array the training kernel reads and writes (uint64): the board,
# the newest afterstate, how many afterstates wait for their target (0 or 1 with TD(0):
# whether there is a previous afterstate) and where their ring starts (``td.learn_move``)
BOARD, PREV, PENDING, SCORE, LENGTH, START = range(6)


@njit(nogil=True, cache=True)
def train_kernel(
    moves,
    game,
    rng,
    weights,
    runs,
    step_size,
    xor,
    score,
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

    ``game`` (6,) uint64, ``rng`` (1,) uint64 and the ring of afterstates waiting for
    their target, ``pending`` (H + 1, F) int64 features and ``returns`` (H + 1, 2)
    float64, are the resumable state, updated in place; ``lam`` (H,) float64 weighs the
    returns (``td.lambda_weights``). ``weights`` is the flat table; ``four_probability``
    and ``start_tiles`` the game's spawn rule; ``stages`` is ``(stage_masks (K,) int64,
    stage_size, init)`` and ``coherence`` the TC statistics or an empty array (``td``).
    ``finished`` (G, 4) int64 receives score, max tile, length and final stage of each
    game that ends. Returns ``(games finished, games ended at the table's range, sum of
    |TD error|, updates)``.

    The board at the top of the loop always has a legal move: a game ends (and the
    next one starts) as soon as its board has none.
    """
    stage_masks = stages[0]
    learning = (lam, step_size, weights, stages, coherence)
    n_features = 8 * len(runs)
    afters = np.empty(4, dtype=np.uint64)
    rewards = np.empty(4, dtype=np.int64)
    features = np.empty((4, n_features), dtype=np.int64)
    board = game[BOARD]
    prev = game[PREV]
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
        if not _expand(board, weights, runs, xor, score, afters, rewards, features, stages):
            # a move could create 2**16, which the tables cannot index: the game ends
            # here, and its waiting afterstates keep their values (no target is known)
            range_games += 1
            end = True
        else:
            action, value = _greedy(board, weights, afters, rewards, features, stages)
            start, count, error, n = learn_move(
                pending, returns, start, count, features[action], rewards[action], value, learning
            )
            error_sum += error
            updates += n
            prev = afters[action]
            game_score += rewards[action]
            length += 1
            played += 1
            board = spawn(prev, rng, four_probability)
            if not has_move(board, legal_table):
                errors, n = learn_end(pending, returns, start, count, learning)
                error_sum += errors
                updates += n
                end = True
        if end:
            finished[n_finished, 0] = game_score
            finished[n_finished, 1] = np.int64(1) << max_exponent(board)
            finished[n_finished, 2] = length
            finished[n_finished, 3] = _stage(board, stage_masks)
            n_finished += 1
            board = new_game(rng, start_tiles, four_probability)
            count = 0
            start = 0
            game_score = 0
            length = 0
    game[BOARD] = board
    game[PREV] = prev
    game[PENDING] = np.uint64(count)
    game[START] = np.uint64(start)
    game[SCORE] = np.uint64(game_score)
    game[LENGTH] = np.uint64(length)
    return n_finished, range_games, error_sum, updates


@njit(nogil=True, cache=True)
def features_kernel(boards, runs, out, stage_masks, stage_size):
    """Features (N, F) int64 of packed boards (N,) uint64, as training indexes them."""
    for i in range(boards.shape[0]):
        _features(boards[i], runs, out[i], stage_masks, stage_size)


@njit(nogil=True, cache=True)
def values_kernel(boards, weights, runs, out, stages):
    """(N,) packed boards -> fill (N,) float32 ``out`` with their values."""
    features = np.empty(8 * len(runs), dtype=np.int64)
    for n in range(boards.shape[0]):
        out[n] = _value(boards[n], weights, runs, features, stages)


@njit(nogil=True, cache=True)
def move_values_kernel(boards, weights, runs, xor, score, out, stages):
    """(N,) packed boards -> fill (N, 4) float32 ``out`` with reward + V(afterstate), -inf
    where illegal. Returns the first board with a move that would create 2**16, or -1."""
    afters = np.empty(4, dtype=np.uint64)
    rewards = np.empty(4, dtype=np.int64)
    features = np.empty((4, 8 * len(runs)), dtype=np.int64)
    for n in range(boards.shape[0]):
        board = boards[n]
        if not _expand(board, weights, runs, xor, score, afters, rewards, features, stages):
            return n
        for action in range(4):
            if afters[action] == board:
                out[n, action] = -np.inf
            else:
                out[n, action] = np.float32(rewards[action]) + weight_sum(
                    weights, features[action], stages[1], stages[2]
                )
    return -1


@njit(cache=True)
def start_board(rng, start_tiles, four_probability):
    """A packed starting board drawn from ``rng`` (1,) uint64."""
    return new_game(rng, start_tiles, four_probability)
