"""The engine's 4x4 boards packed in a uint64: compiled kernels for the n-tuple learner.

A packed board holds the 16 cells of a 4x4 board as 4-bit exponents, cell i (row-major)
in bits 4i..4i+3, so a board is one machine word: a move is four table lookups and XORs,
a symmetry a few shifts and masks. Exponents stop at 15 (the tile 32768); a move that
would make 2**16 is reported (reward -1) rather than played.

The rules are ``engine.rules``': the move tables are read off its ``MOVE_TABLE`` and
``LEGAL_TABLE``, and a tile is spawned by its ``spawn_one``'s rule (in bit arithmetic).
The random numbers come from a splitmix64 generator whose whole state is one uint64
(``uniform``), so a caller can save it and resume bit-exactly.

The kernels are ``@njit(inline="always")`` building blocks for other compiled loops
(``learners.ntuple.network``); ``pack_boards`` and ``unpack_boards`` convert batches.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

from .rules import MOVE_TABLE, flat_boards

__all__ = [
    "CELLS",
    "EXPONENTS",
    "MOVE_SCORE",
    "MOVE_XOR",
    "NIBBLE",
    "check_exponents",
    "flip",
    "has_move",
    "max_exponent",
    "mirror",
    "move",
    "new_game",
    "pack_boards",
    "spawn",
    "transpose",
    "uniform",
    "unpack_boards",
]

CELLS = 16
"""Cells of a packed board (4x4)."""

EXPONENTS = 16
"""A cell holds 4 bits: exponents 0..15, tiles up to 32768."""

NIBBLE = np.uint64(0xF)
_U4 = np.uint64(4)
_U16 = np.uint64(16)
_LINE = np.uint64(0xFFFF)
_UP, _RIGHT, _DOWN, _LEFT = 0, 1, 2, 3  # engine.rules.Action order

_SHIFTS = np.arange(CELLS, dtype=np.uint64) * np.uint64(4)


# --- batches of boards ----------------------------------------------------------------------


def check_exponents(flat: np.ndarray) -> np.ndarray:
    """(N, cells) uint8 exponents -> the same array, or ValueError naming the first board
    with a tile that 4 bits cannot hold (exponent 16 or more)."""
    if flat.size and flat.max() >= EXPONENTS:
        n, i = np.argwhere(flat >= EXPONENTS)[0]
        e = int(flat[n, i])
        raise ValueError(
            f"board {n} holds the tile 2**{e} = {2**e} (exponent {e}); the n-tuple tables "
            f"cover exponents 0..{EXPONENTS - 1} (tiles up to {2 ** (EXPONENTS - 1)})"
        )
    return flat


def pack_boards(boards) -> np.ndarray:
    """(N, 4, 4) uint8 exponents (each below 16) -> (N,) uint64, cell i in bits 4i..4i+3.

    >>> hex(int(pack_boards(np.array([[[1, 2, 0, 0]] + [[0] * 4] * 3], np.uint8))[0]))
    '0x21'
    """
    flat = check_exponents(flat_boards(boards, (4, 4)))  # shape and dtype, as the engine checks
    return np.bitwise_or.reduce(flat.astype(np.uint64) << _SHIFTS, axis=1)


def unpack_boards(packed) -> np.ndarray:
    """(N,) uint64 packed boards -> (N, 4, 4) uint8 exponents; the inverse of ``pack_boards``."""
    packed = np.asarray(packed, dtype=np.uint64).reshape(-1, 1)
    return ((packed >> _SHIFTS) & NIBBLE).astype(np.uint8).reshape(-1, 4, 4)


# --- symmetries -----------------------------------------------------------------------------


@njit(inline="always")
def transpose(x):
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
def mirror(x):
    """Packed board -> left-right mirror image: cell (r, c) <-> (r, 3 - c)."""
    return (
        ((x & np.uint64(0x000F000F000F000F)) << np.uint64(12))
        | ((x & np.uint64(0x00F000F000F000F0)) << _U4)
        | ((x >> _U4) & np.uint64(0x00F000F000F000F0))
        | ((x >> np.uint64(12)) & np.uint64(0x000F000F000F000F))
    )


@njit(inline="always")
def flip(x):
    """Packed board -> upside-down image: cell (r, c) <-> (3 - r, c)."""
    return (
        (x << np.uint64(48))
        | ((x & np.uint64(0xFFFF0000)) << _U16)
        | ((x >> _U16) & np.uint64(0xFFFF0000))
        | (x >> np.uint64(48))
    )


# --- moves ----------------------------------------------------------------------------------


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
        (c & NIBBLE)
        | ((c & np.uint64(0xF0)) << np.uint64(12))
        | ((c & np.uint64(0xF00)) << np.uint64(24))
        | ((c & np.uint64(0xF000)) << np.uint64(36))
    )


@njit(cache=True)
def _build_tables(move_table):
    """Per-line move tables for packed boards, read off ``rules.MOVE_TABLE``.

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


MOVE_XOR, MOVE_SCORE = _build_tables(MOVE_TABLE)


@njit(inline="always")
def move(board, transposed, action, xor, score):
    """(afterstate, reward) of one move on a packed board; reward -1 if it would make 2**16.

    ``transposed`` is ``transpose(board)``, passed in so the four moves share it; ``xor``
    and ``score`` are ``MOVE_XOR`` and ``MOVE_SCORE``. An illegal move returns the board
    unchanged (and reward 0).
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
def has_move(board, legal_table):
    """Whether any move changes a packed board (``legal_table`` is ``LEGAL_TABLE``, on rows
    and on the transpose's rows)."""
    transposed = transpose(board)
    for i in range(4):
        if legal_table[np.int64((board >> np.uint64(16 * i)) & _LINE)]:
            return True
        if legal_table[np.int64((transposed >> np.uint64(16 * i)) & _LINE)]:
            return True
    return False


@njit(inline="always")
def max_exponent(board):
    """Largest exponent on a packed board (int64)."""
    top = np.uint64(0)
    for i in range(16):
        e = (board >> np.uint64(4 * i)) & NIBBLE
        if e > top:
            top = e
    return np.int64(top)


# --- spawns ---------------------------------------------------------------------------------


@njit(inline="always")
def uniform(rng):
    """Next float64 in [0, 1) from a splitmix64 generator whose state is ``rng[0]`` (uint64)."""
    rng[0] += np.uint64(0x9E3779B97F4A7C15)
    z = rng[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


_ONES = np.uint64(0x1111111111111111)  # bit 4i of each cell i


@njit(inline="always")
def _empty_cells(board):
    """A uint64 with bit 4i set for each empty cell i of a packed board."""
    x = board | (board >> np.uint64(1))
    x |= x >> np.uint64(2)
    return ~x & _ONES


@njit(inline="always")
def _count_cells(marks):
    """How many of the 16 cell bits (bit 4i) of ``marks`` are set."""
    if marks == _ONES:  # all 16: one more than the top nibble below can hold
        return np.int64(16)
    return np.int64((marks * _ONES) >> np.uint64(60))  # sums the 16 bits into the top nibble


@njit(inline="always")
def spawn(board, rng, four_probability):
    """Packed board with one tile spawned by ``rules.spawn_one``'s rule from two ``uniform``
    draws (cell, then value): on the ``floor(u_cell * empty)``-th empty cell in reading
    order, a 4 with ``four_probability``, else a 2; unchanged if no cell is empty. Bit
    arithmetic on the packed board."""
    u_cell = uniform(rng)
    u_value = uniform(rng)
    marks = _empty_cells(board)
    empty = _count_cells(marks)
    if empty == 0:
        return board
    for _ in range(np.int64(u_cell * empty)):  # drop the first k empty cells
        marks &= marks - np.uint64(1)
    value = np.uint64(2) if u_value < four_probability else np.uint64(1)
    return board | (value << np.uint64(trailing_zeros(marks)))


@njit(inline="always")
def new_game(rng, start_tiles, four_probability):
    """A packed starting board: ``start_tiles`` tiles spawned on an empty board."""
    board = np.uint64(0)
    for _ in range(start_tiles):
        board = spawn(board, rng, four_probability)
    return board
