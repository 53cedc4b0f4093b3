"""The rules of 2048 as pure, batched functions over exponent boards.

A batch of boards is a ``uint8`` array of shape ``(N, 4, 4)`` holding tile
exponents: 0 is an empty cell, 1 is the tile 2, 11 is the tile 2048. With 2 and
4 spawns a 4x4 game cannot go past exponent 17 (the tile 131072); any exponent
up to ``MAX_EXPONENT`` is handled exactly.

Every move is "slide toward the start of a line": a LEFT move slides each row
toward column 0, UP each column toward row 0, and RIGHT and DOWN read the lines
backwards. One line kernel therefore serves all four actions, the reward and
the legal mask. The batched functions below are compiled loops over games
(numba, ``nogil``), so they are fast and release the GIL for a UI thread.

Examples, in exponents, moving LEFT::

    [1 1 1 1] -> [2 2 0 0]   reward 4 + 4 = 8
    [1 1 1 0] -> [2 1 0 0]   reward 4
    [2 2 3 3] -> [3 4 0 0]   reward 8 + 16 = 24
    [0 1 0 1] -> [2 0 0 0]   reward 4
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numba import njit

__all__ = [
    "Action",
    "flat_boards",
    "MAX_EXPONENT",
    "SPAWN_FOUR_PROBABILITY",
    "legal_batch",
    "legal_mask",
    "new_boards",
    "render",
    "sample_legal",
    "slide",
    "spawn",
    "to_exponents",
    "to_values",
]

MAX_EXPONENT = 31
"""Largest exponent the engine accepts (rewards are int64, so 2**31 is safe)."""

SPAWN_FOUR_PROBABILITY = 0.1
"""A spawned tile is a 4 with this probability, else a 2."""


class Action(IntEnum):
    """The four moves, in the one order used everywhere (masks, logits, messages, UI)."""

    UP = 0
    RIGHT = 1
    DOWN = 2
    LEFT = 3


def _line_cells() -> np.ndarray:
    """(4 actions, 4 lines, 4 positions) flat cell index, position 0 nearest the wall moved to."""
    cells = np.arange(16).reshape(4, 4)
    table = np.empty((4, 4, 4), dtype=np.int64)
    table[Action.UP] = cells.T  # line i is column i, read top to bottom
    table[Action.RIGHT] = cells[:, ::-1]  # line i is row i, read right to left
    table[Action.DOWN] = cells.T[:, ::-1]  # line i is column i, read bottom to top
    table[Action.LEFT] = cells  # line i is row i, read left to right
    return table


LINE_CELLS = _line_cells()


# --- one line, one game: kernels that the batched functions and the environment share ------


@njit(inline="always")
def slide_line(line, out):
    """Slide one line of 4 exponents toward index 0: ``[1 1 2 0] -> [2 2 0 0]``.

    Writes the result into ``out`` (4,) and returns ``(score, log_score, merges)``:
    the sum of the values of the tiles the merges create (8 here), the sum of
    their exponents (4), and the number of merges (2). This is the rule; every
    other kernel and table is derived from it.
    """
    score = 0
    log_score = 0
    merges = 0
    k = 0  # next free position in out
    held = 0  # a tile that may still merge with the next one, 0 if none
    for pos in range(4):
        v = line[pos]
        if v == 0:
            continue
        if held == v:
            out[k] = v + 1
            score += 1 << (v + 1)
            log_score += v + 1
            merges += 1
            k += 1
            held = 0
        else:
            if held != 0:
                out[k] = held
                k += 1
            held = v
    if held != 0:
        out[k] = held
        k += 1
    for pos in range(k, 4):
        out[pos] = 0
    return score, log_score, merges


FAST_LIMIT = 15
"""Boards whose exponents are all below this use the 16-bit line tables: their lines
fit four 4-bit cells and no merge can create an exponent above 15."""


@njit(cache=True)
def _build_line_tables():
    """Tables over every 16-bit line code (4 cells of 4 bits, cell 0 in the low bits).

    move (65536,) uint64: bits 0-15 the code of the line slid toward cell 0, bits
    16-39 its score, bits 40-47 its log score, bits 48-55 its merges.
    legal (65536,) uint8: bit 0 set if the line can move toward cell 0, bit 1 toward cell 3.
    """
    move = np.empty(65536, dtype=np.uint64)
    legal = np.empty(65536, dtype=np.uint8)
    line = np.empty(4, dtype=np.int64)
    out = np.empty(4, dtype=np.int64)
    for code in range(65536):
        for i in range(4):
            line[i] = (code >> (4 * i)) & 15
        score, log_score, merges = slide_line(line, out)
        result = 0
        for i in range(4):
            result |= (out[i] & 15) << (4 * i)
        move[code] = result | (score << 16) | (log_score << 40) | (merges << 48)
        flags = 1 if result != code else 0
        for i in range(4):
            line[i] = (code >> (4 * (3 - i))) & 15
        slide_line(line, out)
        for i in range(4):
            if out[i] != line[i]:
                flags |= 2
        legal[code] = flags
    return move, legal


MOVE_TABLE, LEGAL_TABLE = _build_line_tables()


@njit(inline="always")
def move_one(src, dst, action, fast, move_table):
    """Slide one flat board ``src`` (16,) into ``dst`` (16,) for ``action``, without spawning.

    ``fast`` says every exponent of ``src`` is below ``FAST_LIMIT`` (then the line
    tables are used). Returns ``(score, log_score, merges)`` of the move (see
    ``slide_line``). ``dst`` may be ``src``: each line is read before it is written.
    """
    score = 0
    log_score = 0
    merges = 0
    if fast:
        for line in range(4):
            cells = LINE_CELLS[action, line]
            code = (
                np.int64(src[cells[0]])
                | (np.int64(src[cells[1]]) << 4)
                | (np.int64(src[cells[2]]) << 8)
                | (np.int64(src[cells[3]]) << 12)
            )
            entry = move_table[code]
            dst[cells[0]] = entry & 15
            dst[cells[1]] = (entry >> 4) & 15
            dst[cells[2]] = (entry >> 8) & 15
            dst[cells[3]] = (entry >> 12) & 15
            score += np.int64((entry >> 16) & 0xFFFFFF)
            log_score += np.int64((entry >> 40) & 0xFF)
            merges += np.int64((entry >> 48) & 0xFF)
        return score, log_score, merges
    line_in = np.empty(4, dtype=np.int64)
    line_out = np.empty(4, dtype=np.int64)
    for line in range(4):
        cells = LINE_CELLS[action, line]
        for pos in range(4):
            line_in[pos] = src[cells[pos]]
        s, ls, m = slide_line(line_in, line_out)
        for pos in range(4):
            dst[cells[pos]] = line_out[pos]
        score += s
        log_score += ls
        merges += m
    return score, log_score, merges


@njit(inline="always")
def legal_one(board, mask, fast, legal_table):
    """Write the four legal flags of one flat board (16,) into ``mask`` (4,); return their count.

    A move is legal iff some adjacent pair along it can change: an empty cell on
    the wall side of a tile, or two equal tiles. ``fast`` as in ``move_one``.
    """
    up = 0
    right = 0
    down = 0
    left = 0
    if fast:
        for i in range(4):
            row = (
                np.int64(board[4 * i])
                | (np.int64(board[4 * i + 1]) << 4)
                | (np.int64(board[4 * i + 2]) << 8)
                | (np.int64(board[4 * i + 3]) << 12)
            )
            col = (
                np.int64(board[i])
                | (np.int64(board[4 + i]) << 4)
                | (np.int64(board[8 + i]) << 8)
                | (np.int64(board[12 + i]) << 12)
            )
            r = legal_table[row]
            c = legal_table[col]
            left |= r & 1
            right |= r >> 1
            up |= c & 1
            down |= c >> 1
    else:
        for r in range(4):
            for c in range(3):
                a = board[4 * r + c]
                b = board[4 * r + c + 1]
                if a == 0:
                    if b != 0:
                        left = 1
                elif b == 0 or a == b:
                    right = 1
                    if a == b:
                        left = 1
        for c in range(4):
            for r in range(3):
                a = board[4 * r + c]
                b = board[4 * r + 4 + c]
                if a == 0:
                    if b != 0:
                        up = 1
                elif b == 0 or a == b:
                    down = 1
                    if a == b:
                        up = 1
    mask[0] = up != 0
    mask[1] = right != 0
    mask[2] = down != 0
    mask[3] = left != 0
    return np.int64(up) + np.int64(right) + np.int64(down) + np.int64(left)


@njit(inline="always")
def max_exponent(board):
    """Largest exponent on one flat board (16,)."""
    top = board[0]
    for i in range(1, 16):
        if board[i] > top:
            top = board[i]
    return top


@njit(inline="always")
def spawn_one(board, u_cell, u_value):
    """Put one tile on an empty cell of a flat board (16,), from two uniforms in [0, 1).

    The cell is the ``floor(u_cell * empty)``-th empty cell in reading order, and
    the tile is a 4 if ``u_value < SPAWN_FOUR_PROBABILITY``, else a 2. Returns
    False (and changes nothing) when the board has no empty cell. The uniforms
    come in from outside so that a whole batch draws them in one NumPy call.
    """
    empty = 0
    for i in range(16):
        if board[i] == 0:
            empty += 1
    if empty == 0:
        return False
    k = np.int64(u_cell * empty)
    value = 2 if u_value < SPAWN_FOUR_PROBABILITY else 1
    for i in range(16):
        if board[i] == 0:
            if k == 0:
                board[i] = value
                break
            k -= 1
    return True


# --- batched kernels ----------------------------------------------------------------------


@njit(nogil=True, cache=True)
def _slide_batch(flat, actions, out, scores, moved, move_table):
    for n in range(flat.shape[0]):
        board = flat[n]
        fast = max_exponent(board) < FAST_LIMIT
        scores[n] = move_one(board, out[n], actions[n], fast, move_table)[0]
        changed = False
        for i in range(16):
            if out[n, i] != board[i]:
                changed = True
        moved[n] = changed


@njit(nogil=True, cache=True)
def legal_batch(flat, mask, legal_table):
    """(N, 16) uint8 boards -> fill (N, 4) bool ``mask``; no input checks (see ``legal_mask``)."""
    for n in range(flat.shape[0]):
        board = flat[n]
        legal_one(board, mask[n], max_exponent(board) < FAST_LIMIT, legal_table)


@njit(nogil=True, cache=True)
def _spawn_batch(flat, uniforms):
    for n in range(flat.shape[0]):
        spawn_one(flat[n], uniforms[n, 0], uniforms[n, 1])


@njit(nogil=True, cache=True)
def _sample_legal_batch(mask, uniforms, out):
    for n in range(mask.shape[0]):
        count = 0
        for a in range(4):
            if mask[n, a]:
                count += 1
        if count == 0:
            out[n] = -1
            continue
        k = np.int64(uniforms[n] * count)
        for a in range(4):
            if mask[n, a]:
                if k == 0:
                    out[n] = a
                    break
                k -= 1


# --- public, vectorised API ----------------------------------------------------------------


def flat_boards(boards: np.ndarray) -> np.ndarray:
    """Check a batch of exponent boards and return it as a contiguous (N, 16) uint8 view."""
    boards = np.asarray(boards)
    if boards.ndim != 3 or boards.shape[1:] != (4, 4):
        raise ValueError(
            f"boards must have shape (N, 4, 4), got {boards.shape}; use board[None] for one"
        )
    if boards.dtype != np.uint8:
        raise ValueError(f"boards must be uint8 exponents, got {boards.dtype}; see to_exponents()")
    if boards.size and boards.max() > MAX_EXPONENT:
        raise ValueError(f"exponents above {MAX_EXPONENT} are not supported (got {boards.max()})")
    return np.ascontiguousarray(boards).reshape(-1, 16)


def slide(boards: np.ndarray, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply one move to each board, without spawning.

    Args:
        boards: (N, 4, 4) uint8 exponents.
        actions: (N,) ints in ``Action`` order, or one int for every board.

    Returns:
        ``(afterstates, rewards, moved)``: (N, 4, 4) uint8 boards, (N,) int64 game
        score of each move (sum of the values of the tiles its merges create), and
        (N,) bool, whether the board changed (a move that changes nothing is illegal).
    """
    flat = flat_boards(boards)
    acts = np.broadcast_to(np.asarray(actions, dtype=np.int64), (flat.shape[0],))
    if acts.size and (acts.min() < 0 or acts.max() > 3):
        raise ValueError(
            f"actions must be in 0..3 (Action order UP, RIGHT, DOWN, LEFT), got {acts}"
        )
    out = np.empty_like(flat)
    rewards = np.empty(flat.shape[0], dtype=np.int64)
    moved = np.empty(flat.shape[0], dtype=np.bool_)
    _slide_batch(flat, np.ascontiguousarray(acts), out, rewards, moved, MOVE_TABLE)
    return out.reshape(-1, 4, 4), rewards, moved


def legal_mask(boards: np.ndarray) -> np.ndarray:
    """(N, 4, 4) uint8 boards -> (N, 4) bool, True where the move changes the board."""
    flat = flat_boards(boards)
    mask = np.empty((flat.shape[0], 4), dtype=np.bool_)
    legal_batch(flat, mask, LEGAL_TABLE)
    return mask


def spawn(boards: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return a copy of ``boards`` (N, 4, 4) with one new tile on each board that has room.

    The tile is a 2 (exponent 1) with probability 0.9, else a 4, on an empty cell
    chosen uniformly. Full boards are returned unchanged.
    """
    flat = flat_boards(boards).copy()
    _spawn_batch(flat, rng.random((flat.shape[0], 2)))
    return flat.reshape(-1, 4, 4)


def new_boards(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 4, 4) uint8 starting boards: two tiles spawned by the usual rule on an empty board."""
    flat = np.zeros((n, 16), dtype=np.uint8)
    _spawn_batch(flat, rng.random((n, 2)))
    _spawn_batch(flat, rng.random((n, 2)))
    return flat.reshape(n, 4, 4)


def sample_legal(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 4) bool legal mask -> (N,) int64 actions drawn uniformly among the legal ones.

    Games with no legal move get -1.
    """
    mask = np.ascontiguousarray(mask, dtype=np.bool_)
    out = np.empty(mask.shape[0], dtype=np.int64)
    _sample_legal_batch(mask, rng.random(mask.shape[0]), out)
    return out


def to_values(exponents: np.ndarray) -> np.ndarray:
    """Exponents -> tile values as int64, any shape: 0 -> 0, 1 -> 2, 11 -> 2048."""
    e = np.asarray(exponents).astype(np.int64)
    return np.where(e > 0, np.left_shift(1, e), 0)


def to_exponents(values) -> np.ndarray:
    """Tile values -> uint8 exponents, any shape: 0 -> 0, 2 -> 1, 2048 -> 11.

    Raises ValueError naming the first value that is not 0 or a power of two >= 2.
    """
    v = np.asarray(values, dtype=np.int64)
    bad = (v < 0) | (v == 1) | ((v & (v - 1)) != 0)
    if bad.any():
        raise ValueError(f"tile values must be 0 or powers of two >= 2, got {v[bad].flat[0]}")
    e = np.zeros(v.shape, dtype=np.uint8)
    nonzero = v > 0
    e[nonzero] = np.log2(v[nonzero]).round().astype(np.uint8)
    if e.size and e.max() > MAX_EXPONENT:
        raise ValueError(f"tile values above 2**{MAX_EXPONENT} are not supported")
    return e


def render(board: np.ndarray) -> str:
    """One (4, 4) exponent board as a text grid of tile values, '.' for empty cells.

    >>> print(render(to_exponents([[2, 0, 0, 0], [0, 4, 0, 0], [0, 0, 8, 0], [0, 0, 0, 2048]])))
       2     .     .     .
       .     4     .     .
       .     .     8     .
       .     .     .  2048
    """
    values = to_values(np.asarray(board).reshape(4, 4))
    width = max(5, len(str(values.max())) + 1)
    rows = ("".join((str(v) if v else ".").rjust(width) for v in row) for row in values)
    return "\n".join(rows)
