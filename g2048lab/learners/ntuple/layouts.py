"""Which cells an n-tuple network reads on a board of any shape: tuple layouts and symmetries.

A layout is a few fixed sets of cells (tuples), in flat row-major order (cell ``r * cols + c``,
ascending within a tuple). Each tuple is read on every symmetric image of the board, so a
layout need only place each shape once per class of positions the symmetries tell apart.

Two named layouts, each a set of shapes placed for the board:

- ``"4x6"``, the standard network (Szubert & Jaśkowski 2014): a row of 4 with 2 cells
  below its start, and a 2x3 rectangle. On 4x4 the four tuples of the paper::

      (0, 1, 2, 3, 4, 5)  (4, 5, 6, 7, 8, 9)  (0, 1, 2, 4, 5, 6)  (4, 5, 6, 8, 9, 10)

  It needs 4 rows and columns; on a smaller board it is ``"5x4"``.
- ``"5x4"``, the small network: a line (a row of up to 4 cells) and a 2x2 square; on 4x4
  two rows and three squares, on 3x3 ``(0, 1, 2) (3, 4, 5) (0, 1, 3, 4)``.

A shape is placed with its top-left cell at each (r, c) of the board's upper-left part
(``r < ceil((rows - h + 1) / 2)``, ``c < ceil((cols - w + 1) / 2)`` for an h x w shape),
the flips cover the rest; a placement that a symmetry maps onto an earlier one is dropped.
A square board has 8 symmetries (rotations and reflections); another has 4 (the flips and
the half turn), so there each shape is also placed turned a quarter (a column of 4 with 2
cells beside it, a 3x2 rectangle, a column line).
"""

from __future__ import annotations

import numpy as np

__all__ = ["LAYOUT_NAMES", "SMALL_BOARD_LAYOUT", "symmetries", "tuple_layout"]

Layout = tuple[tuple[int, ...], ...]

LAYOUT_NAMES = ("4x6", "5x4")
"""The layouts ``tuple_layout`` places: the standard network and the small one."""

SMALL_BOARD_LAYOUT = "5x4"
"""What "4x6" is on a board with fewer than 4 rows or columns."""


def _shapes(name: str, cols: int) -> list[list[tuple[int, int]]]:
    """The (row, col) offsets of layout ``name``'s shapes, for rows ``cols`` cells long."""
    if name == "4x6":
        row_and_two = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)]
        rectangle = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
        return [row_and_two, rectangle]
    line = [(0, c) for c in range(min(cols, 4))]
    square = [(0, 0), (0, 1), (1, 0), (1, 1)]
    return [line, square]


def _placements(name: str, rows: int, cols: int) -> list[list[tuple[int, int]]]:
    """Each shape of ``name`` at each top-left position of the board's upper-left part."""
    out = []
    for shape in _shapes(name, cols):
        h = 1 + max(r for r, _ in shape)
        w = 1 + max(c for _, c in shape)
        for r in range((rows - h + 2) // 2):
            for c in range((cols - w + 2) // 2):
                out.append([(r + dr, c + dc) for dr, dc in shape])
    return out


def symmetries(rows: int, cols: int) -> np.ndarray:
    """(S, rows * cols) int64: image s of a flat board is ``board[perm[s]]``.

    S = 8 on a square board, in the order the bit-packed kernels read them: the board, its
    mirror image (left-right), the flip (upside-down) of both, then the same four of the
    transpose. S = 4 on another board: the board, mirror, flip, flipped mirror.

    >>> symmetries(2, 3)[1].tolist()  # the mirror image of a 2x3 board
    [2, 1, 0, 5, 4, 3]
    """
    cells = np.arange(rows * cols).reshape(rows, cols)
    bases = [cells, cells.T] if rows == cols else [cells]
    images = []
    for base in bases:
        mirrored = base[:, ::-1]
        images += [base, mirrored, base[::-1], mirrored[::-1]]
    return np.stack([image.reshape(-1) for image in images]).astype(np.int64)


def tuple_layout(name: str, rows: int, cols: int) -> Layout:
    """The tuples of layout ``name`` placed on a ``rows`` x ``cols`` board (see the module
    docstring): flat cells, ascending within a tuple.

    >>> tuple_layout("5x4", 3, 3)
    ((0, 1, 2), (3, 4, 5), (0, 1, 3, 4))
    """
    if name not in LAYOUT_NAMES:
        raise ValueError(f"unknown tuples layout {name!r}; use one of {sorted(LAYOUT_NAMES)}")
    if name == "4x6" and min(rows, cols) < 4:
        name = SMALL_BOARD_LAYOUT
    placed = [[r * cols + c for r, c in cells] for cells in _placements(name, rows, cols)]
    if rows != cols:  # no symmetry turns the board: place the shapes turned a quarter too
        turned = _placements(name, cols, rows)  # on the transposed board...
        placed += [[c * cols + r for r, c in cells] for cells in turned]  # ...read back
    perms = symmetries(rows, cols)
    inverse = np.argsort(perms, axis=1)  # cell i of the board lands on inverse[s, i]
    seen: set[tuple[int, ...]] = set()
    layout = []
    for cells in placed:
        key = min(tuple(sorted(inverse[s, cells].tolist())) for s in range(len(perms)))
        if key not in seen:
            seen.add(key)
            layout.append(tuple(sorted(cells)))
    return tuple(layout)
