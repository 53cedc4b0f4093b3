"""Tile-downgrading (Guei, Chen & Wu 2022, TDL2048+): value a board with tiles beyond a
value function's range as a board within it, so play goes on past the largest tile the
tables hold.

An n-tuple network's tables index exponents ``0..top`` (``top`` = 15 today: tiles up to
32768), so they cannot value a board holding 65536 (exponent 16), nor the afterstate of
a move that merges two 32768s. Such a board is valued as the board with its large tiles
moved down into a gap: with ``g`` the smallest exponent at or above ``floor`` that no
tile of the board has (below its largest), every tile above ``g`` loses one exponent,
and again until the largest tile is at most ``top``. In exponents, ``floor`` 11::

    [16 14 12 11]      13 is missing: 16 -> 15, 14 -> 13      [15 13 12 11]
    [ 3  2  1  0]  ->  small tiles and empty cells stay   ->  [ 3  2  1  0]

The order of the tiles is kept (a tile above ``g`` becomes one of at least ``g``, which
no tile was), and so is which tiles are equal, so the board keeps its shape: its
descending chain, which merges are possible. Tiles below ``floor`` stay as they are:
they are the ones the next moves play with. Where no exponent from ``floor`` up to the
largest tile is missing, the largest gap below ``floor`` is used; a board that holds
every exponent from 1 up to its largest tile (15 or more distinct tiles) has no gap,
and its tiles above 2 each lose one, the 2s and 4s then looking alike.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...engine.rules import slide

__all__ = ["DOWNGRADE_FLOOR", "downgrade", "downgraded_move_values", "downgraded_values"]

DOWNGRADE_FLOOR = 11
"""The smallest exponent a gap is looked for at (2048): smaller tiles are left alone."""


def downgrade(boards: np.ndarray, top: int, floor: int = DOWNGRADE_FLOOR) -> np.ndarray:
    """(N, R, C) uint8 exponent boards -> (N, R, C) uint8 boards with no exponent above
    ``top`` (>= 1), each downgraded as the module docstring says; a new array, equal to
    ``boards`` where no tile is above ``top``."""
    boards = np.asarray(boards)
    if boards.ndim != 3 or boards.dtype != np.uint8:
        raise ValueError(
            f"boards must be (N, R, C) uint8 exponents, got {boards.dtype} {boards.shape}; "
            "use board[None] for one"
        )
    if top < 1:
        raise ValueError(f"top must be an exponent of at least 1, got {top}")
    out = boards.reshape(boards.shape[0], -1).copy()  # (N, cells)
    exponents = np.arange(256)
    while out.size:
        largest = out.max(axis=1)  # (N,)
        over = np.flatnonzero(largest > top)
        if not over.size:
            break
        flat = out[over]  # (k, cells)
        present = np.zeros((over.size, 256), dtype=np.bool_)  # (k, exponent)
        present[np.arange(over.size)[:, None], flat] = True
        missing = ~present & (exponents >= 1) & (exponents < largest[over, None])  # (k, 256)
        above = missing & (exponents >= floor)
        below = missing & (exponents < floor)
        # the smallest gap at or above floor, else the largest below it, else 1 (no gap)
        gap = np.where(
            above.any(axis=1),
            np.argmax(above, axis=1),
            np.where(below.any(axis=1), 255 - np.argmax(below[:, ::-1], axis=1), 1),
        )  # (k,)
        out[over] = np.where(flat > gap[:, None], flat - 1, flat).astype(np.uint8)
    return out.reshape(boards.shape)


def downgraded_values(
    values: Callable[[np.ndarray], np.ndarray], boards: np.ndarray, top: int
) -> np.ndarray:
    """``values`` ((N, R, C) afterstates -> (N,), defined for exponents up to ``top``) of
    any (N, R, C) uint8 afterstates: those beyond ``top`` are downgraded first."""
    boards = np.asarray(boards)
    n = boards.shape[0]
    if not n or boards.reshape(n, -1).max() <= top:  # the common case, no copy
        return values(boards)
    return values(downgrade(boards, top))


def downgraded_move_values(
    move_values: Callable[[np.ndarray], np.ndarray],
    values: Callable[[np.ndarray], np.ndarray],
    boards: np.ndarray,
    top: int,
) -> np.ndarray:
    """(N, R, C) uint8 boards -> (N, 4) float32 game score + afterstate value of each move
    in ``Action`` order, -inf where illegal, for any board.

    ``move_values`` (the network's compiled kernel) answers for boards whose largest tile
    is below ``top``, where no move can make a tile beyond it; the others are moved by the
    engine and their afterstates valued downgraded (``values``, ``downgrade``).
    """
    boards = np.asarray(boards)
    n = boards.shape[0]
    near = boards.reshape(n, -1).max(axis=1, initial=0) >= top  # (N,) a merge may pass top
    if not near.any():  # the common case, no copy
        return move_values(boards)
    q = np.empty((n, 4), dtype=np.float32)
    if not near.all():
        q[~near] = move_values(boards[~near])
    edge = boards[near]  # (k, R, C)
    k = edge.shape[0]
    after, scores, moved = slide(np.repeat(edge, 4, axis=0), np.tile(np.arange(4), k))
    v = downgraded_values(values, after, top)  # (4k,)
    q[near] = np.where(moved, scores + v, -np.inf).reshape(k, 4)
    return q
