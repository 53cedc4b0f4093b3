"""An n-tuple network that learns 2048 by TD(0) on afterstates, compiled with numba.

After Szubert & Jaśkowski (2014), "Temporal difference learning of n-tuple networks
for the game 2048". The value of an afterstate (a board after a move, before the
tile spawns) is a sum of table lookups: each tuple is a fixed set of cells, the
exponents on those cells (0..15, one hex digit each) form an index into that
tuple's weight table, and each tuple is read on all 8 symmetric images of the
board (rotations and reflections), so the 8 images share one table::

    V(x) = sum over tuples t, symmetries s of  weights[t, index(t, s(x))]

The standard "4x6" network has four 6-cell tuples (cells in row-major order
0..15), 32 features and a (4, 16**6) float32 table: 268 MB.

Learning plays games greedily over afterstates (the move with the largest
``reward + V(afterstate)``) and, after each move, moves the value of the previous
afterstate toward ``reward + V(new afterstate)`` (toward 0 when the game ends):

    delta = r + V(x') - V(x)        each of x's features += learning_rate * delta / features

Boards are packed into one uint64 (cell i in bits 4i..4i+3) inside the kernels;
moves use the line tables of ``game.py`` and spawns ``game.spawn_one``, so the rules
are the engine's. The random numbers come from a splitmix64 generator whose whole
state is one uint64, saved with the network: training resumes bit-exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ...engine.rules import LEGAL_TABLE, MOVE_TABLE, flat_boards, spawn_one
from ...meminfo import available_bytes
from ...settings import check_settings, setting

__all__ = [
    "NETWORK_BYTES",
    "TABLE_EXPONENTS",
    "TUPLE_LAYOUTS",
    "NTupleConfig",
    "NTupleNetwork",
    "TrainStats",
    "check_memory",
    "network_bytes",
    "pack_boards",
    "unpack_boards",
]

TABLE_EXPONENTS = 16
"""Each cell of a tuple indexes the table with 4 bits: exponents 0..15, tiles up to 32768."""

TUPLE_LAYOUTS: dict[str, tuple[tuple[int, ...], ...]] = {
    # the standard network: a row and two cells below it, the same one row down, and
    # two 2x3 rectangles
    "4x6": ((0, 1, 2, 3, 4, 5), (4, 5, 6, 7, 8, 9), (0, 1, 2, 4, 5, 6), (4, 5, 6, 8, 9, 10)),
    # Szubert & Jaśkowski's small network (rows and 2x2 squares), 1.3 MB: for tests
    # and quick experiments; it learns, to a lower level than "4x6"
    "5x4": ((0, 1, 2, 3), (4, 5, 6, 7), (0, 1, 4, 5), (1, 2, 5, 6), (5, 6, 9, 10)),
}
"""Named tuple layouts: cells in row-major order (0 top-left, 15 bottom-right), ascending."""

SYMMETRIES = 8


def network_bytes(config: NTupleConfig) -> int:
    """Size in bytes of the weight table of ``config``'s layout (float32)."""
    layout = TUPLE_LAYOUTS[config.tuples]
    return 4 * len(layout) * TABLE_EXPONENTS ** len(layout[0])


@dataclass(frozen=True)
class NTupleConfig:
    """Hyper-parameters of an n-tuple network and its TD(0) learning.

    learning_rate: the step on the value of an afterstate per update, as a fraction
        of the TD error; it is spread over the features (each of the 32 weights of
        "4x6" moves by ``learning_rate * delta / 32``), so it does not depend on the
        layout. Measured with bench/ntuple_throughput.py (30 s of training, 200 greedy
        games): 0.025, 0.05, 0.1, 0.2, 0.4, 0.8 reached mean scores 28k, 33k, 44k,
        44k, 54k, 45k and 2048 in 58, 65, 78, 81, 89, 83% of games; 0.4 is the default.
        A smaller rate may end higher after hours of training.
    optimistic_init: the initial value of every afterstate, in game score (each
        weight starts at ``optimistic_init / features``); 0 turns it off. An
        optimistic value makes unseen afterstates look good, so the greedy player
        explores them. In the first minute it does not pay: at learning rate 0.1,
        320_000 gave a mean score of 14k after 30 s and 100_000 39k, against 44k
        without, so the default is 0.
    tuples: a key of ``TUPLE_LAYOUTS``: "4x6" (268 MB, the standard) or "5x4" (1.3 MB).
    seed: seeds the generator of the spawned tiles (any int in 0 .. 2**64 - 1).
    """

    learning_rate: float = setting(0.4, gt=0, le=1, hint="0.4 is a good start")
    optimistic_init: float = setting(0.0, ge=0, hint="0 turns it off")
    tuples: str = "4x6"
    seed: int = 0

    def __post_init__(self) -> None:
        check_settings(self)
        if self.tuples not in TUPLE_LAYOUTS:
            raise ValueError(
                f"unknown tuples layout {self.tuples!r}; use one of {sorted(TUPLE_LAYOUTS)}"
            )
        if not (isinstance(self.seed, (int, np.integer)) and 0 <= self.seed < 2**64):
            raise ValueError(f"seed must be an int in 0 .. 2**64 - 1, got {self.seed!r}")

    @property
    def features(self) -> int:
        """Lookups per value: tuples times the 8 symmetries (32 for "4x6")."""
        return SYMMETRIES * len(TUPLE_LAYOUTS[self.tuples])


NETWORK_BYTES = network_bytes(NTupleConfig())
"""Size of the default ("4x6") network's weights: 268,435,456 bytes."""


def check_memory(nbytes: int) -> None:
    """Raise MemoryError if ``nbytes`` (plus 10% headroom) exceeds MemAvailable.

    Reads /proc/meminfo; where it cannot be read (not Linux) nothing is checked.
    """
    available = available_bytes()
    if available is not None and nbytes * 1.1 > available:
        raise MemoryError(
            f"the n-tuple network needs {nbytes / 1e6:,.0f} MB but only "
            f"{available / 1e6:,.0f} MB is free; close other programs or use a smaller "
            f"layout (NTupleConfig(tuples='5x4'))"
        )


# --- packed boards: 16 cells of 4 bits in a uint64, cell i in bits 4i..4i+3 ---------------

_SHIFTS16 = np.arange(16, dtype=np.uint64) * np.uint64(4)


def _check_boards(boards) -> np.ndarray:
    """(N, 4, 4) uint8 exponent boards in the table's range -> contiguous (N, 16) uint8."""
    flat = flat_boards(boards)  # shape and dtype, as the engine checks them
    if flat.size and flat.max() >= TABLE_EXPONENTS:
        n, i = np.argwhere(flat >= TABLE_EXPONENTS)[0]
        e = int(flat[n, i])
        raise ValueError(
            f"board {n} holds the tile 2**{e} = {2**e} (exponent {e}); the n-tuple tables "
            f"cover exponents 0..{TABLE_EXPONENTS - 1} (tiles up to {2 ** (TABLE_EXPONENTS - 1)})"
        )
    return flat


def pack_boards(boards) -> np.ndarray:
    """(N, 4, 4) uint8 exponents (each below 16) -> (N,) uint64, cell i in bits 4i..4i+3.

    >>> hex(int(pack_boards(np.array([[[1, 2, 0, 0]] + [[0] * 4] * 3], np.uint8))[0]))
    '0x21'
    """
    flat = _check_boards(boards)
    return np.bitwise_or.reduce(flat.astype(np.uint64) << _SHIFTS16, axis=1)


def unpack_boards(packed) -> np.ndarray:
    """(N,) uint64 packed boards -> (N, 4, 4) uint8 exponents; the inverse of ``pack_boards``."""
    packed = np.asarray(packed, dtype=np.uint64).reshape(-1, 1)
    return ((packed >> _SHIFTS16) & np.uint64(15)).astype(np.uint8).reshape(-1, 4, 4)


def _layout_runs(layout: tuple[tuple[int, ...], ...]) -> tuple[tuple[np.uint64, ...], ...]:
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
    table = TABLE_EXPONENTS ** len(layout[0])
    return tuple(
        tuple(
            np.uint64(x)
            for x in [t * table]
            + [v for shift, mask in runs + [(0, 0)] * (width - len(runs)) for v in (shift, mask)]
        )
        for t, runs in enumerate(per_tuple)
    )


# --- compiled kernels ---------------------------------------------------------------------

_U4 = np.uint64(4)
_U16 = np.uint64(16)
_NIBBLE = np.uint64(0xF)
_LINE = np.uint64(0xFFFF)
_UP, _RIGHT, _DOWN, _LEFT = 0, 1, 2, 3


@njit(inline="always")
def _transpose(x):
    """Packed board -> its transpose: cell (r, c) <-> (c, r)."""
    a1 = x & np.uint64(0xF0F00F0FF0F00F0F)
    a2 = x & np.uint64(0x0000F0F00000F0F0)
    a3 = x & np.uint64(0x0F0F00000F0F0000)
    a = a1 | (a2 << np.uint64(12)) | (a3 >> np.uint64(12))
    b1 = a & np.uint64(0xFF00FF0000FF00FF)
    b2 = a & np.uint64(0x00FF00FF00000000)
    b3 = a & np.uint64(0x00000000FF00FF00)
    return b1 | (b2 >> np.uint64(24)) | (b3 << np.uint64(24))


@njit(inline="always")
def _mirror(x):
    """Packed board -> left-right mirror image: cell (r, c) <-> (r, 3 - c)."""
    return (
        ((x & np.uint64(0x000F000F000F000F)) << np.uint64(12))
        | ((x & np.uint64(0x00F000F000F000F0)) << _U4)
        | ((x >> _U4) & np.uint64(0x00F000F000F000F0))
        | ((x >> np.uint64(12)) & np.uint64(0x000F000F000F000F))
    )


@njit(inline="always")
def _flip(x):
    """Packed board -> upside-down image: cell (r, c) <-> (3 - r, c)."""
    return (
        (x << np.uint64(48))
        | ((x & np.uint64(0xFFFF0000)) << _U16)
        | ((x >> _U16) & np.uint64(0xFFFF0000))
        | (x >> np.uint64(48))
    )


@njit(inline="always")
def _tile_sum(code):
    """Sum of the tile values of a 16-bit line code."""
    total = 0
    for i in range(4):
        e = (np.int64(code) >> (4 * i)) & 15
        if e:
            total += 1 << e
    return total


@njit(inline="always")
def _reverse_line(code):
    """16-bit line code read backwards: cell 0 <-> 3, 1 <-> 2."""
    c = np.int64(code)
    return ((c & 15) << 12) | (((c >> 4) & 15) << 8) | (((c >> 8) & 15) << 4) | (c >> 12)


@njit(inline="always")
def _spread_column(code):
    """16-bit line code -> a packed column 0: cell k of the line goes to row k."""
    c = np.uint64(code)
    return (
        (c & _NIBBLE)
        | ((c & np.uint64(0xF0)) << np.uint64(12))
        | ((c & np.uint64(0xF00)) << np.uint64(24))
        | ((c & np.uint64(0xF000)) << np.uint64(36))
    )


@njit(cache=True)
def _build_packed_tables(move_table):
    """Per-line move tables for packed boards, read off ``game.MOVE_TABLE``.

    xor (4, 65536) uint64, in ``Action`` order: XOR it (shifted to the line's place)
    into a packed board to apply the move to that line; for LEFT and RIGHT the line
    is a row (shift 16 * row), for UP and DOWN a column of the transposed board whose
    result is already spread down a column (shift 4 * column).
    score (2, 65536) int64: the reward of sliding the line toward cell 0 (LEFT, UP) or
    toward cell 3 (RIGHT, DOWN), or -1 where a merge would create 2**16, which four
    bits cannot hold (``MOVE_TABLE`` wraps it to 0, so the tile values stop adding up).
    """
    xor = np.empty((4, 65536), dtype=np.uint64)
    score = np.empty((2, 65536), dtype=np.int64)
    for code in range(65536):
        toward0 = np.int64(move_table[code] & 0xFFFF)
        rev = _reverse_line(code)
        toward3 = _reverse_line(move_table[rev] & 0xFFFF)
        score[0, code] = np.int64((move_table[code] >> 16) & 0xFFFFFF)
        score[1, code] = np.int64((move_table[rev] >> 16) & 0xFFFFFF)
        if _tile_sum(toward0) != _tile_sum(code):
            score[0, code] = -1
        if _tile_sum(toward3) != _tile_sum(code):
            score[1, code] = -1
        xor[_LEFT, code] = np.uint64(code ^ toward0)
        xor[_RIGHT, code] = np.uint64(code ^ toward3)
        xor[_UP, code] = _spread_column(code ^ toward0)
        xor[_DOWN, code] = _spread_column(code ^ toward3)
    return xor, score


MOVE_XOR, MOVE_SCORE = _build_packed_tables(MOVE_TABLE)


@njit(inline="always")
def _move(board, transposed, action, xor, score):
    """(afterstate, reward) of one move on a packed board; reward -1 if it would make 2**16.

    ``transposed`` is ``_transpose(board)``, passed in so the four moves share it. An
    illegal move returns the board unchanged (and reward 0).
    """
    after = board
    reward = np.int64(0)
    overflow = False
    side = 0 if action in (_LEFT, _UP) else 1
    for i in range(4):
        if action in (_LEFT, _RIGHT):
            code = np.int64((board >> np.uint64(16 * i)) & _LINE)
            after ^= xor[action, code] << np.uint64(16 * i)
        else:
            code = np.int64((transposed >> np.uint64(16 * i)) & _LINE)
            after ^= xor[action, code] << np.uint64(4 * i)
        s = score[side, code]
        if s < 0:
            overflow = True
        reward += s
    if overflow:
        return after, np.int64(-1)
    return after, reward


@njit(inline="always")
def _has_move(board, legal_table):
    """Whether any move changes a packed board (``game.LEGAL_TABLE`` on rows and columns)."""
    transposed = _transpose(board)
    for i in range(4):
        if legal_table[np.int64((board >> np.uint64(16 * i)) & _LINE)]:
            return True
        if legal_table[np.int64((transposed >> np.uint64(16 * i)) & _LINE)]:
            return True
    return False


@njit(inline="always")
def _max_exponent(board):
    top = np.uint64(0)
    for i in range(16):
        e = (board >> np.uint64(4 * i)) & _NIBBLE
        if e > top:
            top = e
    return np.int64(top)


@njit(inline="always")
def _uniform(rng):
    """Next float64 in [0, 1) from a splitmix64 generator whose state is ``rng[0]``."""
    rng[0] += np.uint64(0x9E3779B97F4A7C15)
    z = rng[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(inline="always")
def _spawn(board, rng, cells):
    """Packed board with one tile spawned by ``game.spawn_one`` (``cells`` (16,) uint8 scratch)."""
    for i in range(16):
        cells[i] = (board >> np.uint64(4 * i)) & _NIBBLE
    u_cell = _uniform(rng)
    u_value = _uniform(rng)
    spawn_one(cells, u_cell, u_value)
    out = np.uint64(0)
    for i in range(16):
        out |= np.uint64(cells[i]) << np.uint64(4 * i)
    return out


@njit(inline="always")
def _new_game(rng, cells):
    """A packed starting board: two tiles spawned on an empty board."""
    return _spawn(_spawn(np.uint64(0), rng, cells), rng, cells)


@njit(inline="always")
def _features(board, runs, out):
    """Write the flat weight indices of a packed board's features into ``out`` (F,) int64,
    image by image (the 8 symmetries), tuple by tuple.

    ``runs[t]`` is ``(offset of tuple t's table in the flat weights, shift, mask, shift,
    mask, ...)``: the index is ``offset + OR_j (image >> shift_j) & mask_j``.
    """
    mirrored = _mirror(board)
    transposed = _transpose(board)
    transposed_mirrored = _mirror(transposed)
    images = (
        board,
        mirrored,
        _flip(board),
        _flip(mirrored),
        transposed,
        transposed_mirrored,
        _flip(transposed),
        _flip(transposed_mirrored),
    )
    k = 0
    for image in images:
        for tuple_runs in runs:
            index = np.uint64(0)
            for j in range(1, len(tuple_runs), 2):
                index |= (image >> tuple_runs[j]) & tuple_runs[j + 1]
            out[k] = np.int64(tuple_runs[0] + index)
            k += 1


@njit(inline="always")
def _sum(weights, features):
    """V from feature indices: the sum of ``weights`` (flat, float32) at ``features`` (F,)."""
    v = np.float32(0)
    for k in range(features.shape[0]):
        v += weights[features[k]]
    return v


@njit(inline="always")
def _value(board, weights, runs, features):
    """V of a packed board (float32); ``features`` (F,) int64 is scratch."""
    _features(board, runs, features)
    return _sum(weights, features)


@njit(inline="always")
def _td_update(features, target, step_size, weights):
    """Move V of the board with ``features`` toward ``target``: each weight moves by
    ``step_size * delta`` (``step_size`` is already divided by the features). Returns the
    TD error ``delta = target - V``."""
    delta = np.float32(target) - _sum(weights, features)
    step = np.float32(step_size) * delta
    for k in range(features.shape[0]):
        weights[features[k]] += step
    return delta


@intrinsic
def _prefetch(typingctx, array, index):
    """Ask the CPU to start loading ``array[index]`` into its caches; changes nothing else.

    The training step computes the features of all its candidate moves first and
    prefetches their weights, so the ~100 scattered reads from the 268 MB table
    overlap instead of waiting one after another (about +20% moves/s).
    """

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]),
            "llvm.prefetch.p0",
        )
        address = builder.bitcast(builder.gep(data, [args[1]]), byte_pointer)
        builder.call(prefetch, [address, i32(0), i32(3), i32(1)])  # read, keep, data cache
        return context.get_dummy_value()

    return types.void(array, types.int64), codegen


@njit(inline="always")
def _expand(board, weights, runs, xor, score, afters, rewards, features):
    """The four moves of a packed board: fill ``afters`` (4,) uint64, ``rewards`` (4,)
    int64 and, for the legal ones, ``features`` (4, F) int64, prefetching their weights.

    Returns False (and stops) if a move would create 2**16, beyond the tables.
    """
    transposed = _transpose(board)
    for action in range(4):
        after, reward = _move(board, transposed, action, xor, score)
        if reward < 0:
            return False
        afters[action] = after
        rewards[action] = reward
        if after != board:
            _features(after, runs, features[action])
            for k in range(features.shape[1]):
                _prefetch(weights, features[action, k])
    return True


@njit(inline="always")
def _greedy(board, weights, afters, rewards, features):
    """``(action, reward + V(afterstate))`` of the best legal move after ``_expand``, the
    first on ties; ``(-1, -inf)`` if no move is legal."""
    best_action = -1
    best_value = np.float32(-np.inf)
    for action in range(4):
        if afters[action] != board:
            v = np.float32(rewards[action]) + _sum(weights, features[action])
            if v > best_value:
                best_action = action
                best_value = v
    return best_action, best_value


# slots of the game-state array the training kernel reads and writes (uint64)
_BOARD, _PREV, _HAS_PREV, _SCORE, _LENGTH = range(5)


@njit(nogil=True, cache=True)
def _train_kernel(moves, game, rng, weights, runs, step_size, xor, score, legal_table, finished):
    """Play and learn for exactly ``moves`` moves; see ``NTupleNetwork.train``.

    ``game`` (5,) uint64 and ``rng`` (1,) uint64 are the resumable state, updated in
    place; ``weights`` is the flat table. ``finished`` (G, 3) int64 receives score, max
    tile and length of each game that ends. Returns ``(games finished, games ended at
    the table's range, sum of |TD error|, updates)``.

    The board at the top of the loop always has a legal move: a game ends (and the
    next one starts) as soon as its board has none.
    """
    n_features = 8 * len(runs)
    afters = np.empty(4, dtype=np.uint64)
    rewards = np.empty(4, dtype=np.int64)
    features = np.empty((4, n_features), dtype=np.int64)
    prev_features = np.empty(n_features, dtype=np.int64)
    cells = np.empty(16, dtype=np.uint8)
    board = game[_BOARD]
    prev = game[_PREV]
    has_prev = game[_HAS_PREV] != 0
    if has_prev:
        _features(prev, runs, prev_features)
    game_score = np.int64(game[_SCORE])
    length = np.int64(game[_LENGTH])
    n_finished = 0
    range_games = 0
    error_sum = 0.0
    updates = 0
    played = 0
    while played < moves:
        end = False
        if not _expand(board, weights, runs, xor, score, afters, rewards, features):
            # a move could create 2**16, which the tables cannot index: the game ends
            # here, and its last afterstate keeps its value (no target is known)
            range_games += 1
            end = True
        else:
            action, value = _greedy(board, weights, afters, rewards, features)
            if has_prev:
                error_sum += abs(_td_update(prev_features, value, step_size, weights))
                updates += 1
            prev = afters[action]
            prev_features[:] = features[action]
            has_prev = True
            game_score += rewards[action]
            length += 1
            played += 1
            board = _spawn(prev, rng, cells)
            if not _has_move(board, legal_table):
                error_sum += abs(_td_update(prev_features, 0.0, step_size, weights))
                updates += 1
                end = True
        if end:
            finished[n_finished, 0] = game_score
            finished[n_finished, 1] = np.int64(1) << _max_exponent(board)
            finished[n_finished, 2] = length
            n_finished += 1
            board = _new_game(rng, cells)
            has_prev = False
            game_score = 0
            length = 0
    game[_BOARD] = board
    game[_PREV] = prev
    game[_HAS_PREV] = np.uint64(1 if has_prev else 0)
    game[_SCORE] = np.uint64(game_score)
    game[_LENGTH] = np.uint64(length)
    return n_finished, range_games, error_sum, updates


@njit(nogil=True, cache=True)
def _values_kernel(boards, weights, runs, out):
    """(N,) packed boards -> fill (N,) float32 ``out`` with their values."""
    features = np.empty(8 * len(runs), dtype=np.int64)
    for n in range(boards.shape[0]):
        out[n] = _value(boards[n], weights, runs, features)


@njit(nogil=True, cache=True)
def _move_values_kernel(boards, weights, runs, xor, score, out):
    """(N,) packed boards -> fill (N, 4) float32 ``out`` with reward + V(afterstate), -inf
    where illegal. Returns the first board with a move that would create 2**16, or -1."""
    afters = np.empty(4, dtype=np.uint64)
    rewards = np.empty(4, dtype=np.int64)
    features = np.empty((4, 8 * len(runs)), dtype=np.int64)
    for n in range(boards.shape[0]):
        board = boards[n]
        if not _expand(board, weights, runs, xor, score, afters, rewards, features):
            return n
        for action in range(4):
            if afters[action] == board:
                out[n, action] = -np.inf
            else:
                out[n, action] = np.float32(rewards[action]) + _sum(weights, features[action])
    return -1


@njit(cache=True)
def _chance_value(after, depth, weights, runs, xor, score, cache, features, status):
    """C_depth of a packed afterstate (float64): V at depth 1, else the expectation over the
    spawns (uniform cell, 2 w.p. 0.9, 4 w.p. 0.1) of the best ``reward + C_{depth-1}``.

    ``cache`` is ``(keys (S,) uint64, depths (S,) int64, values (S,) float64)``; with S > 0
    it memoises C of depth >= 2 (depth 0 marks a free slot). ``features`` (F,) int64 is
    scratch. ``status[0]`` is set to 1 where a move would create 2**16 (that move is
    then skipped).
    """
    if depth <= 1:
        return np.float64(_value(after, weights, runs, features))
    keys, depths, values = cache
    slot = 0
    if keys.shape[0] > 0:
        mixed = (after ^ np.uint64(depth)) * np.uint64(0x9E3779B97F4A7C15)
        slot = np.int64(mixed >> np.uint64(40)) % keys.shape[0]
        if keys[slot] == after and depths[slot] == depth:
            return values[slot]
    total = 0.0
    empty = 0
    for i in range(16):
        if (after >> np.uint64(4 * i)) & _NIBBLE:
            continue
        empty += 1
        for tile in range(1, 3):
            probability = 0.9 if tile == 1 else 0.1
            state = after | (np.uint64(tile) << np.uint64(4 * i))
            transposed = _transpose(state)
            best = 0.0  # no legal move: the game is over, nothing more to gain
            for action in range(4):
                child, reward = _move(state, transposed, action, xor, score)
                if reward < 0:
                    status[0] = 1
                    continue
                if child == state:
                    continue
                q = np.float64(reward) + _chance_value(
                    child, depth - 1, weights, runs, xor, score, cache, features, status
                )
                if q > best:
                    best = q
            total += probability * best
    if empty == 0:  # not an afterstate of a legal move; value it as it stands
        return np.float64(_value(after, weights, runs, features))
    value = total / empty
    if keys.shape[0] > 0:
        keys[slot] = after
        depths[slot] = depth
        values[slot] = value
    return value


@njit(nogil=True, cache=True)
def _search_kernel(boards, depth, weights, runs, xor, score, cache, out):
    """(N,) packed boards -> fill (N, 4) float64 ``out`` with Q_depth of each move, -inf
    where illegal. Returns 1 if some move would create 2**16 (then skipped), else 0."""
    features = np.empty(8 * len(runs), dtype=np.int64)
    status = np.zeros(1, dtype=np.int64)
    for n in range(boards.shape[0]):
        board = boards[n]
        transposed = _transpose(board)
        for action in range(4):
            out[n, action] = -np.inf
            after, reward = _move(board, transposed, action, xor, score)
            if reward < 0:
                status[0] = 1
            elif after != board:
                out[n, action] = np.float64(reward) + _chance_value(
                    after, depth, weights, runs, xor, score, cache, features, status
                )
    return status[0]


@njit(cache=True)
def _start_board(rng):
    """A packed starting board drawn from ``rng`` (1,) uint64."""
    return _new_game(rng, np.empty(16, dtype=np.uint8))


# --- the network ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainStats:
    """What one ``NTupleNetwork.train`` call did; finished games are in the order they ended."""

    moves: int  # moves played
    scores: np.ndarray  # (G,) int64 game score of each finished game
    max_tiles: np.ndarray  # (G,) int64 value of its largest tile
    lengths: np.ndarray  # (G,) int64 its moves
    td_error_sum: float  # sum of |TD error| over the updates, in game score
    updates: int  # TD updates made
    range_games: int  # games ended because a move could create 2**16 (beyond the tables)

    @property
    def mean_td_error(self) -> float:
        """Mean |TD error| per update (nan if there was none)."""
        return self.td_error_sum / self.updates if self.updates else math.nan

    @property
    def hit_table_range(self) -> bool:
        """Whether some game reached the tables' range (see ``range_games``)."""
        return self.range_games > 0


class NTupleNetwork:
    """An n-tuple value function over afterstates, its TD(0) training game, and players.

    The training state (current board, score and length, previous afterstate, the
    generator) lives here with the weights, so ``train`` can be called in chunks and
    a saved ``state_dict`` resumes bit-exactly.
    """

    def __init__(self, config: NTupleConfig | None = None) -> None:
        config = NTupleConfig() if config is None else config
        check_memory(network_bytes(config))
        self.config = config
        layout = TUPLE_LAYOUTS[config.tuples]
        self._runs = _layout_runs(layout)
        shape = (len(layout), TABLE_EXPONENTS ** len(layout[0]))
        if config.optimistic_init:
            self.weights = np.full(shape, config.optimistic_init / config.features, np.float32)
        else:
            self.weights = np.zeros(shape, dtype=np.float32)  # (T, 16**L), pages come lazily
        self._rng = np.array([config.seed], dtype=np.uint64)
        self._game = np.zeros(5, dtype=np.uint64)
        self._game[_BOARD] = _start_board(self._rng)
        self.moves = 0  # moves trained, over all calls
        self.games = 0  # games finished in training
        self._search_cache = _empty_cache(0)

    # -- training --

    def train(self, moves: int) -> TrainStats:
        """Play greedily and learn for exactly ``moves`` moves, continuing the current
        game; a game that ends is followed by a new one.

        ``train(a); train(b)`` plays and learns exactly as ``train(a + b)``; the games
        that end are reported by the call in which they end. One compiled call, which
        releases the GIL.
        """
        if moves < 0:
            raise ValueError(f"moves must be >= 0, got {moves}")
        # a game takes at least 14 moves to fill the board, so this bounds the games ending
        finished = np.empty((moves // 8 + 2, 3), dtype=np.int64)
        n, range_games, error_sum, updates = _train_kernel(
            moves,
            self._game,
            self._rng,
            self._flat,
            self._runs,
            self.config.learning_rate / self.config.features,
            MOVE_XOR,
            MOVE_SCORE,
            LEGAL_TABLE,
            finished,
        )
        self.moves += moves
        self.games += n
        return TrainStats(
            moves=moves,
            scores=finished[:n, 0].copy(),
            max_tiles=finished[:n, 1].copy(),
            lengths=finished[:n, 2].copy(),
            td_error_sum=float(error_sum),
            updates=int(updates),
            range_games=int(range_games),
        )

    @property
    def _flat(self) -> np.ndarray:
        """The weights as one (T * 16**L,) float32 view, as the kernels index them."""
        return self.weights.reshape(-1)

    @property
    def board(self) -> np.ndarray:
        """(4, 4) uint8 board of the current training game."""
        return unpack_boards(self._game[_BOARD : _BOARD + 1])[0]

    # -- playing --

    def values(self, boards) -> np.ndarray:
        """(N, 4, 4) uint8 boards, each taken as an afterstate -> (N,) float32 V."""
        packed = pack_boards(boards)
        out = np.empty(packed.shape[0], dtype=np.float32)
        _values_kernel(packed, self._flat, self._runs, out)
        return out

    def move_values(self, boards) -> np.ndarray:
        """(N, 4, 4) uint8 boards -> (N, 4) float32 reward + V(afterstate) per move in
        ``Action`` order, -inf where the move is illegal."""
        packed = pack_boards(boards)
        out = np.empty((packed.shape[0], 4), dtype=np.float32)
        bad = _move_values_kernel(packed, self._flat, self._runs, MOVE_XOR, MOVE_SCORE, out)
        if bad >= 0:
            raise ValueError(_beyond_range_message(f"board {bad}"))
        return out

    def greedy_actions(self, boards) -> np.ndarray:
        """(N, 4, 4) uint8 boards -> (N,) int64 move with the largest reward + V(afterstate)
        (the first on ties), -1 where no move is legal."""
        return _argmax_or_minus_one(self.move_values(boards))

    def search_values(self, boards, depth: int, cache_size: int = 1 << 18) -> np.ndarray:
        """(N, 4, 4) uint8 boards -> (N, 4) float64 expectimax Q_depth of each move in
        ``Action`` order, -inf where the move is illegal.

        Q_d(s, a) = r(s, a) + C_d(after(s, a)); C_1 = V; C_d(x) averages over the empty
        cells (uniformly) and the tile (2 w.p. 0.9, 4 w.p. 0.1) the best Q_{d-1} of the
        spawned board, 0 where it has no legal move. Depth 1 is ``move_values``. For
        depth >= 3 a ``cache_size``-entry table memoises C of (afterstate, depth) within
        the call. The work grows about 30-fold per ply past 1: depth 2 takes about a
        millisecond per board, depth 3 tens of milliseconds.
        """
        if not (isinstance(depth, int) and depth >= 1):
            raise ValueError(f"depth must be an int >= 1 (1 is greedy), got {depth!r}")
        packed = pack_boards(boards)
        entries = cache_size if depth >= 3 else 0
        if self._search_cache[0].shape[0] != entries:
            self._search_cache = _empty_cache(entries)
        else:
            self._search_cache[1][:] = 0  # depth 0 marks a free slot
        out = np.empty((packed.shape[0], 4), dtype=np.float64)
        status = _search_kernel(
            packed,
            depth,
            self._flat,
            self._runs,
            MOVE_XOR,
            MOVE_SCORE,
            self._search_cache,
            out,
        )
        if status:
            raise ValueError(_beyond_range_message(f"a board within {depth} plies"))
        return out

    def search_actions(self, boards, depth: int, cache_size: int = 1 << 18) -> np.ndarray:
        """(N, 4, 4) uint8 boards -> (N,) int64 move of the largest ``search_values`` (the
        first on ties), -1 where no move is legal. Depth 1 equals ``greedy_actions``."""
        return _argmax_or_minus_one(self.search_values(boards, depth, cache_size))

    # -- saving --

    def state_dict(self, copy: bool = True) -> dict:
        """Everything needed to resume training bit-exactly: the config's fields, the
        weights (a copy, unless ``copy=False``: then the live table, for a caller that
        writes it out before training goes on), the current game (board, previous
        afterstate, score, length) and the generator's state, as NumPy arrays and plain
        Python values."""
        game = self._game
        return {
            **asdict(self.config),
            "weights": self.weights.copy() if copy else self.weights,
            "board": unpack_boards(game[_BOARD : _BOARD + 1])[0],
            "prev_afterstate": unpack_boards(game[_PREV : _PREV + 1])[0],
            "has_prev": bool(game[_HAS_PREV]),
            "score": int(game[_SCORE]),
            "length": int(game[_LENGTH]),
            "rng_state": int(self._rng[0]),
            "moves": self.moves,
            "games": self.games,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (from ``state_dict``); its config replaces this one's.

        Raises ValueError naming what does not fit (a missing key, another layout).
        """
        missing = sorted({*asdict(self.config), "weights", "board", "rng_state"} - set(state))
        if missing:
            raise ValueError(f"not an n-tuple state dict: {', '.join(missing)} missing")
        config = NTupleConfig(**{k: state[k] for k in asdict(self.config)})
        if config.tuples != self.config.tuples:
            raise ValueError(
                f"the state is of a {config.tuples!r} network, this one is "
                f"{self.config.tuples!r}; create NTupleNetwork(NTupleConfig(tuples="
                f"{config.tuples!r}))"
            )
        weights = np.asarray(state["weights"])
        if weights.shape != self.weights.shape or weights.dtype != np.float32:
            raise ValueError(
                f"weights must be float32 {self.weights.shape}, got {weights.dtype} "
                f"{weights.shape}; the state dict is damaged"
            )
        game = np.zeros(5, dtype=np.uint64)
        game[_BOARD] = pack_boards(np.asarray(state["board"])[None])[0]
        game[_PREV] = pack_boards(np.asarray(state["prev_afterstate"])[None])[0]
        game[_HAS_PREV] = 1 if state["has_prev"] else 0
        game[_SCORE] = state["score"]
        game[_LENGTH] = state["length"]
        check_memory(weights.nbytes)
        self.weights = None  # let the old table go before the copy is made
        self.weights = np.array(weights, dtype=np.float32, copy=True)
        self.config = config
        self._game = game
        self._rng = np.array([state["rng_state"]], dtype=np.uint64)
        self.moves = int(state["moves"])
        self.games = int(state["games"])

    @classmethod
    def from_state_dict(cls, state: dict) -> NTupleNetwork:
        """A network built with the config saved in ``state`` and loaded from it."""
        config = NTupleConfig(**{k: state[k] for k in asdict(NTupleConfig())})
        network = cls(NTupleConfig(tuples=config.tuples, seed=config.seed))
        network.load_state_dict(state)
        return network


def _argmax_or_minus_one(q: np.ndarray) -> np.ndarray:
    """(N, 4) move values, -inf where illegal -> (N,) int64 first best move, -1 if none."""
    actions = np.argmax(q, axis=1).astype(np.int64)
    actions[np.isneginf(q).all(axis=1)] = -1
    return actions


def _empty_cache(entries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A search cache of ``entries`` slots: keys (S,) uint64, depths (S,) int64, values (S,)."""
    return (
        np.zeros(entries, dtype=np.uint64),
        np.zeros(entries, dtype=np.int64),
        np.zeros(entries, dtype=np.float64),
    )


def _beyond_range_message(where: str) -> str:
    return (
        f"a move on {where} would create the tile 65536 (exponent 16); the n-tuple tables "
        f"cover exponents 0..15 (tiles up to 32768), so this network cannot value it"
    )
