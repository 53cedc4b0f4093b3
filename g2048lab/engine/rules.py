"""The rules of the 2048 family as pure, batched functions over exponent boards.

A batch of boards is a ``uint8`` array of shape ``(N, R, C)`` holding tile
exponents (any R, C in 2..8; ``games.Game`` describes a game's shape and spawn
rule): 0 is an empty cell, 1 is the tile 2, 11 is the tile 2048. Any exponent up
to ``MAX_EXPONENT`` is handled exactly (a 4x4 game cannot pass 17, the tile 131072).

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
    [1 1 1]   -> [2 1 0]     reward 4            (a 3-cell line)

Batched API (shapes come from the boards; the spawn rule and a new board's shape from a
``games.Game``, None meaning ``games.get()``, 2048 on 4x4):
``slide(boards, actions)``, ``legal_mask(boards)``, ``spawn(boards, rng, game)``,
``new_boards(n, rng, game)``, ``sample_legal(mask, rng)``, ``render(board)``,
``flat_boards(boards, shape=None)``.

Kernels for other modules' compiled code (numba, ``inline="always"``), on one flat
board ``(R*C,)`` uint8 in row-major order (cell ``r * C + c``). ``lines =
line_cells(R, C)`` says which cells each action's lines hold; it and the 16-bit line
tables ``MOVE_TABLE``/``LEGAL_TABLE`` are passed in as arrays::

    move_one(src, dst, action, fast, MOVE_TABLE, lines) -> (score, log_score, merges)
    legal_one(board, mask, fast, LEGAL_TABLE, lines) -> number of legal moves; mask (4,) bool
    spawn_one(board, u_cell, u_value, four_probability) -> False if the board was full
    start_one(board, rng, start_tiles, four_probability)  empty the board, spawn the start
    max_exponent(board) -> largest exponent

``fast`` says every exponent is below ``FAST_LIMIT``: a move then slides lines of up to 4
cells through ``MOVE_TABLE`` (a shorter line padded with empty cells at the far end), and
4x4 legal flags come from ``LEGAL_TABLE``; longer lines slide by the rule of
``slide_line``, and other boards' flags are found pair by pair. A loop over many 4x4
boards runs fastest when it tests the shape once (``square4 = is_4x4(flat[0], lines)``)
and calls ``move_4x4``/``legal_4x4`` when ``square4 and fast``, as ``legal_batch`` does:
the 4x4 loop then compiles as small as it was before other shapes.
"""

from __future__ import annotations

from enum import IntEnum
from functools import cache

import numpy as np
from numba import njit

from .. import games

__all__ = [
    "Action",
    "FAST_LIMIT",
    "LEGAL_TABLE",
    "LINE_CELLS",
    "MAX_EXPONENT",
    "MOVE_TABLE",
    "SPAWN_FOUR_PROBABILITY",
    "flat_boards",
    "is_4x4",
    "legal_4x4",
    "legal_batch",
    "legal_mask",
    "legal_one",
    "line_cells",
    "max_exponent",
    "move_4x4",
    "move_one",
    "new_boards",
    "render",
    "sample_legal",
    "slide",
    "slide_line",
    "spawn",
    "spawn_one",
    "start_one",
    "to_exponents",
    "to_values",
]

MAX_EXPONENT = games.ENGINE_MAX_EXPONENT
"""Largest exponent the engine accepts (rewards are int64, so 2**31 is safe)."""

SPAWN_FOUR_PROBABILITY = games.get().four_probability
"""The default game's spawn rule: a spawned tile is a 4 with this probability, else a 2."""

MAX_SIDE = 8
"""Boards have 2..MAX_SIDE rows and columns."""


class Action(IntEnum):
    """The four moves, in the one order used everywhere (masks, logits, messages, UI)."""

    UP = 0
    RIGHT = 1
    DOWN = 2
    LEFT = 3


@cache
def line_cells(rows: int, cols: int) -> np.ndarray:
    """(4 actions, L lines, L positions) int64 flat cell indices, L = max(rows, cols).

    Line i of an action is read from the wall the action moves toward (position 0 is
    nearest it): UP reads column i top to bottom, RIGHT row i right to left, DOWN
    column i bottom to top, LEFT row i left to right. UP and DOWN have ``cols`` lines
    of ``rows`` cells, LEFT and RIGHT ``rows`` lines of ``cols`` cells; the rest is -1.
    Read-only, one per shape.
    """
    if not (2 <= rows <= MAX_SIDE and 2 <= cols <= MAX_SIDE):
        raise ValueError(f"a board has 2..{MAX_SIDE} rows and columns, got {rows}x{cols}")
    side = max(rows, cols)
    cells = np.arange(rows * cols).reshape(rows, cols)
    table = np.full((4, side, side), -1, dtype=np.int64)
    table[Action.UP, :cols, :rows] = cells.T
    table[Action.RIGHT, :rows, :cols] = cells[:, ::-1]
    table[Action.DOWN, :cols, :rows] = cells.T[:, ::-1]
    table[Action.LEFT, :rows, :cols] = cells
    table.flags.writeable = False
    return table


LINE_CELLS = line_cells(4, 4)
"""``line_cells(4, 4)``: the lines of the default board."""


# --- one line, one game: kernels that the batched functions and the environment share ------


@njit(inline="always")
def slide_line(line, out):
    """Slide one line of exponents toward index 0: ``[1 1 2 0] -> [2 2 0 0]``.

    Writes the result into ``out`` (same length) and returns ``(score, log_score,
    merges)``: the sum of the values of the tiles the merges create (8 here), the sum
    of their exponents (4), and the number of merges (2). This is the rule; every
    other kernel and table is derived from it.
    """
    score = 0
    log_score = 0
    merges = 0
    k = 0  # next free position in out
    held = 0  # a tile that may still merge with the next one, 0 if none
    for pos in range(line.shape[0]):
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
    for pos in range(k, line.shape[0]):
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
    A shorter line is its code with empty cells at the far end: the move entry and bit 0
    hold for it, bit 1 does not (the padding is room to move into).
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
def _line_length(lines, action):
    """Cells in each line of ``action`` (all its lines have the same length)."""
    length = 0
    while length < lines.shape[2] and lines[action, 0, length] >= 0:
        length += 1
    return length


# The kernels for any shape index ``lines[action, line, pos]`` and never take a slice of
# it: a slice is an array view, and counting its references costs more than the move.


@njit(inline="always")
def _slide_cells(src, dst, lines, action, line, length):
    """``slide_line`` on line ``line`` of ``action`` of a flat board, ``src`` into ``dst``
    (which may be ``src``: a cell is read before any write reaches it)."""
    score = 0
    log_score = 0
    merges = 0
    k = 0
    held = np.int64(0)
    for pos in range(length):
        v = np.int64(src[lines[action, line, pos]])
        if v == 0:
            continue
        if held == v:
            dst[lines[action, line, k]] = v + 1
            score += np.int64(1) << (v + 1)
            log_score += v + 1
            merges += 1
            k += 1
            held = 0
        else:
            if held != 0:
                dst[lines[action, line, k]] = held
                k += 1
            held = v
    if held != 0:
        dst[lines[action, line, k]] = held
        k += 1
    for pos in range(k, length):
        dst[lines[action, line, pos]] = 0
    return score, log_score, merges


@njit(inline="always")
def is_4x4(board, lines):
    """Whether a flat board with these lines is 4x4 (16 cells, lines of at most 4)."""
    return board.shape[0] == 16 and lines.shape[2] == 4


@njit(inline="always")
def move_4x4(src, dst, action, move_table):
    """``move_one`` on a 4x4 board whose exponents are below ``FAST_LIMIT``: the line tables,
    the cells compiled in."""
    score = 0
    log_score = 0
    merges = 0
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


@njit(inline="always")
def move_one(src, dst, action, fast, move_table, lines):
    """Slide one flat board ``src`` (R*C,) into ``dst`` (R*C,) for ``action``, without spawning.

    ``lines`` is ``line_cells(R, C)``. ``fast`` says every exponent of ``src`` is below
    ``FAST_LIMIT`` (then lines of up to 4 cells use the line tables). Returns
    ``(score, log_score, merges)`` of the move (see ``slide_line``). ``dst`` may be
    ``src``: each line is read before it is written.
    """
    if fast and is_4x4(src, lines):
        return move_4x4(src, dst, action, move_table)
    return _move_lines(src, dst, action, fast, move_table, lines)


@njit(inline="always")
def _move_lines(src, dst, action, fast, move_table, lines):
    """``move_one`` on any board, line by line: lines of up to 4 cells through the table
    (a shorter line is its code with empty cells at the far end), longer ones by the rule."""
    score = 0
    log_score = 0
    merges = 0
    length = _line_length(lines, action)
    for line in range(lines.shape[1]):
        if lines[action, line, 0] < 0:
            break
        if fast and length <= 4:
            code = np.int64(0)
            for pos in range(length):
                code |= np.int64(src[lines[action, line, pos]]) << (4 * pos)
            entry = move_table[code]
            for pos in range(length):
                dst[lines[action, line, pos]] = (entry >> (4 * pos)) & 15
            score += np.int64((entry >> 16) & 0xFFFFFF)
            log_score += np.int64((entry >> 40) & 0xFF)
            merges += np.int64((entry >> 48) & 0xFF)
        else:
            s, ls, m = _slide_cells(src, dst, lines, action, line, length)
            score += s
            log_score += ls
            merges += m
    return score, log_score, merges


@njit(inline="always")
def legal_4x4(board, mask, legal_table):
    """``legal_one`` on a 4x4 board whose exponents are below ``FAST_LIMIT``: one table
    lookup per row gives LEFT and RIGHT, one per column UP and DOWN."""
    up = 0
    right = 0
    down = 0
    left = 0
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
    return _set_mask(mask, up, right, down, left)


@njit(inline="always")
def _set_mask(mask, up, right, down, left):
    """Write four flags into ``mask`` (4,) in ``Action`` order; return how many are set."""
    mask[0] = up != 0
    mask[1] = right != 0
    mask[2] = down != 0
    mask[3] = left != 0
    return np.int64(up != 0) + np.int64(right != 0) + np.int64(down != 0) + np.int64(left != 0)


@njit(inline="always")
def _legal_pair(board, forward, lines):
    """Legal flags of ``forward`` (UP or LEFT) and of the opposite move (DOWN or RIGHT),
    which reads the same lines backwards, pair by pair, without branches on the tiles
    (they would be mispredicted on random boards)."""
    ahead = False
    back = False
    length = _line_length(lines, forward)
    for line in range(lines.shape[1]):
        if lines[forward, line, 0] < 0 or (ahead and back):
            break
        near = board[lines[forward, line, 0]]
        for pos in range(1, length):
            far = board[lines[forward, line, pos]]
            # toward the wall: a tile behind a gap, or a pair; away: a tile before a gap
            same = (near != 0) & (near == far)
            ahead |= ((near == 0) & (far != 0)) | same
            back |= ((near != 0) & (far == 0)) | same
            near = far
    return ahead, back


@njit(inline="always")
def _legal_lines(board, lines):
    """``(up, right, down, left)`` flags of any board, line by line."""
    up, down = _legal_pair(board, 0, lines)
    left, right = _legal_pair(board, 3, lines)
    return up, right, down, left


@njit(inline="always")
def legal_one(board, mask, fast, legal_table, lines):
    """Write the four legal flags of one flat board (R*C,) into ``mask`` (4,); return their count.

    A move is legal iff some adjacent pair along it can change: an empty cell on
    the wall side of a tile, or two equal tiles. ``fast`` and ``lines`` as in ``move_one``.
    """
    if fast and is_4x4(board, lines):
        return legal_4x4(board, mask, legal_table)
    up, right, down, left = _legal_lines(board, lines)
    return _set_mask(mask, up, right, down, left)


@njit(inline="always")
def max_exponent(board):
    """Largest exponent on one flat board (R*C,)."""
    if board.shape[0] == 16:  # a trip count known when compiled: 4x4 loops unroll
        return _max_cells(board, 16)
    return _max_cells(board, board.shape[0])


@njit(inline="always")
def _max_cells(board, cells):
    top = board[0]
    for i in range(1, cells):
        if board[i] > top:
            top = board[i]
    return top


@njit(inline="always")
def spawn_one(board, u_cell, u_value, four_probability=SPAWN_FOUR_PROBABILITY):
    """Put one tile on an empty cell of a flat board (R*C,), from two uniforms in [0, 1).

    The cell is the ``floor(u_cell * empty)``-th empty cell in reading order, and
    the tile is a 4 if ``u_value < four_probability``, else a 2. Returns False (and
    changes nothing) when the board has no empty cell. The uniforms come in from
    outside so that a whole batch draws them in one NumPy call.
    """
    if board.shape[0] == 16:  # as in max_exponent
        return _spawn_cells(board, 16, u_cell, u_value, four_probability)
    return _spawn_cells(board, board.shape[0], u_cell, u_value, four_probability)


@njit(inline="always")
def _spawn_cells(board, cells, u_cell, u_value, four_probability):
    empty = 0
    for i in range(cells):
        if board[i] == 0:
            empty += 1
    if empty == 0:
        return False
    k = np.int64(u_cell * empty)
    value = 2 if u_value < four_probability else 1
    for i in range(cells):
        if board[i] == 0:
            if k == 0:
                board[i] = value
                break
            k -= 1
    return True


@njit(inline="always")
def start_one(board, rng, start_tiles, four_probability):
    """Empty one flat board (R*C,) and spawn ``start_tiles`` tiles on it, each from two
    draws of the NumPy Generator ``rng`` (cell, then value)."""
    board[:] = 0
    for _ in range(start_tiles):
        spawn_one(board, rng.random(), rng.random(), four_probability)


# --- batched kernels ----------------------------------------------------------------------


@njit(nogil=True, cache=True)
def _slide_batch(flat, actions, out, scores, moved, move_table, lines):
    square4 = flat.shape[0] > 0 and is_4x4(flat[0], lines)  # see legal_batch
    for n in range(flat.shape[0]):
        board = flat[n]
        fast = max_exponent(board) < FAST_LIMIT
        if square4 and fast:
            scores[n] = move_4x4(board, out[n], actions[n], move_table)[0]
        else:
            scores[n] = move_one(board, out[n], actions[n], fast, move_table, lines)[0]
        changed = False
        for i in range(board.shape[0]):
            if out[n, i] != board[i]:
                changed = True
        moved[n] = changed


@njit(nogil=True, cache=True)
def legal_batch(flat, mask, legal_table, lines):
    """(N, R*C) uint8 boards -> fill (N, 4) bool ``mask``; ``lines = line_cells(R, C)``.
    No input checks (see ``legal_mask``)."""
    # Testing the shape once, outside the loop, lets the compiler keep the 4x4 loop as
    # small as it was before other shapes (move_one and legal_one test it per board).
    square4 = flat.shape[0] > 0 and is_4x4(flat[0], lines)
    for n in range(flat.shape[0]):
        board = flat[n]
        fast = max_exponent(board) < FAST_LIMIT
        if square4 and fast:
            legal_4x4(board, mask[n], legal_table)
        else:
            legal_one(board, mask[n], fast, legal_table, lines)


@njit(nogil=True, cache=True)
def _spawn_batch(flat, uniforms, four_probability):
    for n in range(flat.shape[0]):
        spawn_one(flat[n], uniforms[n, 0], uniforms[n, 1], four_probability)


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


def flat_boards(boards: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Check a batch of (N, R, C) exponent boards and return it as a contiguous (N, R*C)
    uint8 view. ``shape`` (R, C), if given, is the shape the boards must have."""
    boards = np.asarray(boards)
    if shape is not None and boards.shape[1:] != tuple(shape):
        rows, cols = shape
        raise ValueError(
            f"boards must have shape (N, {rows}, {cols}), got {boards.shape}; "
            "use board[None] for one"
        )
    if boards.ndim == 2:
        rows, cols = boards.shape
        raise ValueError(
            f"boards must have shape (N, {rows}, {cols}), got one board of shape {boards.shape}; "
            "use board[None]"
        )
    if boards.ndim != 3 or not all(2 <= side <= MAX_SIDE for side in boards.shape[1:]):
        raise ValueError(
            f"boards must have shape (N, R, C) with 2..{MAX_SIDE} rows and columns, "
            f"got {boards.shape}; use board[None] for one"
        )
    if boards.dtype != np.uint8:
        raise ValueError(f"boards must be uint8 exponents, got {boards.dtype}; see to_exponents()")
    if boards.size and boards.max() > MAX_EXPONENT:
        raise ValueError(f"exponents above {MAX_EXPONENT} are not supported (got {boards.max()})")
    rows, cols = boards.shape[1:]
    return np.ascontiguousarray(boards).reshape(-1, rows * cols)


def slide(boards: np.ndarray, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply one move to each board, without spawning.

    Args:
        boards: (N, R, C) uint8 exponents.
        actions: (N,) ints in ``Action`` order, or one int for every board.

    Returns:
        ``(afterstates, rewards, moved)``: (N, R, C) uint8 boards, (N,) int64 game
        score of each move (sum of the values of the tiles its merges create), and
        (N,) bool, whether the board changed (a move that changes nothing is illegal).
    """
    flat = flat_boards(boards)
    shape = np.shape(boards)[1:]
    acts = np.broadcast_to(np.asarray(actions, dtype=np.int64), (flat.shape[0],))
    if acts.size and (acts.min() < 0 or acts.max() > 3):
        raise ValueError(
            f"actions must be in 0..3 (Action order UP, RIGHT, DOWN, LEFT), got {acts}"
        )
    out = np.empty_like(flat)
    rewards = np.empty(flat.shape[0], dtype=np.int64)
    moved = np.empty(flat.shape[0], dtype=np.bool_)
    lines = line_cells(*shape)
    _slide_batch(flat, np.ascontiguousarray(acts), out, rewards, moved, MOVE_TABLE, lines)
    return out.reshape(-1, *shape), rewards, moved


def legal_mask(boards: np.ndarray) -> np.ndarray:
    """(N, R, C) uint8 boards -> (N, 4) bool, True where the move changes the board."""
    flat = flat_boards(boards)
    mask = np.empty((flat.shape[0], 4), dtype=np.bool_)
    legal_batch(flat, mask, LEGAL_TABLE, line_cells(*np.shape(boards)[1:]))
    return mask


def spawn(
    boards: np.ndarray, rng: np.random.Generator, game: games.Game | None = None
) -> np.ndarray:
    """Return a copy of ``boards`` (N, R, C) with one new tile on each board that has room.

    The tile is a 4 (exponent 2) with probability ``game.four_probability``, else a 2,
    on an empty cell chosen uniformly; ``game`` None is the default game's rule, on
    boards of any shape (a given game's boards must have its shape). Full boards are
    returned unchanged.
    """
    flat = flat_boards(boards, None if game is None else game.shape).copy()
    four = SPAWN_FOUR_PROBABILITY if game is None else game.four_probability
    _spawn_batch(flat, rng.random((flat.shape[0], 2)), four)
    return flat.reshape(np.shape(boards))


def new_boards(n: int, rng: np.random.Generator, game: games.Game | None = None) -> np.ndarray:
    """(n, R, C) uint8 starting boards of ``game`` (None: ``games.get()``, 4x4):
    ``game.start_tiles`` tiles spawned by its rule on an empty board."""
    game = games.get() if game is None else game
    flat = np.zeros((n, game.cells), dtype=np.uint8)
    for _ in range(game.start_tiles):
        _spawn_batch(flat, rng.random((n, 2)), game.four_probability)
    return flat.reshape(n, game.rows, game.cols)


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
    """One (R, C) exponent board as a text grid of tile values, '.' for empty cells
    (a flat board of 16 cells is read as 4x4).

    >>> print(render(to_exponents([[2, 0, 0, 0], [0, 4, 0, 0], [0, 0, 8, 0], [0, 0, 0, 2048]])))
       2     .     .     .
       .     4     .     .
       .     .     8     .
       .     .     .  2048
    """
    board = np.asarray(board)
    if board.ndim == 1 and board.size == 16:
        board = board.reshape(4, 4)
    if board.ndim != 2:
        raise ValueError(f"render draws one (R, C) board, got shape {board.shape}")
    values = to_values(board)
    width = max(5, len(str(values.max())) + 1)
    rows = ("".join((str(v) if v else ".").rjust(width) for v in row) for row in values)
    return "\n".join(rows)
