"""Which cells an n-tuple network reads on a board of any shape: tuple layouts and symmetries.

A layout is a few fixed sets of cells (tuples), in flat row-major order (cell ``r * cols + c``,
ascending within a tuple). Each tuple is read on every symmetric image of the board, so a
layout need only place each shape once per class of positions the symmetries tell apart.
A layout is named by a string: one of the names below, or the cells themselves.

Named layouts, with their float32 weights on 4x4 (T tuples x 16**L weights x 4 bytes, L the
tuple's cells; the tables are allocated lazily, but a long run touches most of them):

======  ================  ===============================  =============================
name    tuples            weights on 4x4                   boards
======  ================  ===============================  =============================
"4x6"   4 of 6 cells      4 x 16**6 x 4 bytes = 268 MB     any ("5x4" on a side under 4)
"5x4"   5 of 4 cells      5 x 16**4 x 4 bytes = 1.3 MB     any
"5x6"   5 of 6 cells      5 x 16**6 x 4 bytes = 336 MB     4 or more rows and columns
"6x6"   6 of 6 cells      6 x 16**6 x 4 bytes = 403 MB     4x4 only
"8x6"   8 of 6 cells      8 x 16**6 x 4 bytes = 537 MB     4x4 only
======  ================  ===============================  =============================

- ``"4x6"``, the standard network (Szubert & Jaśkowski 2014; "4x6patt/khyeh" in TDL2048+,
  which credits Yeh et al.): a row of 4 with 2 cells below its start, and a 2x3 rectangle. On
  4x4 the four tuples of the paper::

      (0, 1, 2, 3, 4, 5)  (4, 5, 6, 7, 8, 9)  (0, 1, 2, 4, 5, 6)  (4, 5, 6, 8, 9, 10)

  It needs 4 rows and columns; on a smaller board it is ``"5x4"``.
- ``"5x4"``, the small network: a line (a row of up to 4 cells) and a 2x2 square; on 4x4
  two rows and three squares, on 3x3 ``(0, 1, 2) (3, 4, 5) (0, 1, 3, 4)``.
- ``"5x6"``, Jaśkowski's network (W. Jaśkowski, "Mastering 2048 with delayed temporal
  coherence learning, multi-stage weight promotion, redundant encoding and carousel
  shaping", IEEE Trans. Games 10(1), 2018; "5x6patt/42-33" in moporgic/TDL2048+): the
  shapes of "4x6", the row of 4 with 2 cells below placed at every row, not only in the
  upper half. On 4x4 "4x6" plus ``(8, 9, 10, 11, 12, 13)``, in TDL2048+'s order.
- ``"6x6"`` and ``"8x6"``, Matsuzaki's networks ("6x6patt" and "8x6patt", aliases of
  "6x6patt/k.matsuzaki" and "8x6patt/k.matsuzaki", in github.com/moporgic/TDL2048; after
  K. Matsuzaki's selection of 6-tuples, "Systematic selection of N-tuple networks with
  consideration of interinfluence for game 2048", TAAI 2016, and his player in "Developing
  a 2048 player with backward temporal coherence learning and restart", ACG 2017):
  irregular shapes chosen on the 4x4 board, so they are defined there only. "6x6" is the
  first six tuples of "8x6"::

      (0, 1, 2, 4, 5, 6)  (4, 5, 6, 7, 8, 9)  (0, 1, 2, 3, 4, 5)  (2, 3, 4, 5, 6, 9)
      (0, 1, 2, 5, 9, 10)  (3, 4, 5, 6, 7, 8)  (1, 3, 4, 5, 6, 7)  (0, 1, 4, 8, 9, 10)

A shape is placed with its top-left cell at each (r, c) of the board's upper-left part
(``r < ceil((rows - h + 1) / 2)``, ``c < ceil((cols - w + 1) / 2)`` for an h x w shape),
the flips cover the rest; a placement that a symmetry maps onto an earlier one is dropped.
A square board has 8 symmetries (rotations and reflections); another has 4 (the flips and
the half turn), so there each shape is also placed turned a quarter (a column of 4 with 2
cells beside it, a 3x2 rectangle, a column line).

Custom tuples: a string of tuples separated by ``;``, each of 2 to 7 distinct flat cells
separated by ``,`` (``"0,1,2,3;4,5,6,7"``: the first two rows of a 4-wide board), taken as
given (no symmetry pruning) with each tuple's cells sorted, as the kernels read them in
ascending order. A tuple of 7 cells has a table of 16**7 weights (1.07 GB).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "AUTO",
    "LAYOUT_NAMES",
    "SMALL_BOARD_LAYOUT",
    "check_layout",
    "resolve_layout",
    "symmetries",
    "tuple_layout",
]

Layout = tuple[tuple[int, ...], ...]

LAYOUT_NAMES = ("4x6", "5x4", "5x6", "6x6", "8x6")
"""The named layouts: the standard network, the small one, Jaśkowski's and Matsuzaki's."""

SMALL_BOARD_LAYOUT = "5x4"
"""What "4x6" is on a board with fewer than 4 rows or columns."""

MATSUZAKI_8X6: Layout = (
    (0, 1, 2, 4, 5, 6),
    (4, 5, 6, 7, 8, 9),
    (0, 1, 2, 3, 4, 5),
    (2, 3, 4, 5, 6, 9),
    (0, 1, 2, 5, 9, 10),
    (3, 4, 5, 6, 7, 8),
    (1, 3, 4, 5, 6, 7),
    (0, 1, 4, 8, 9, 10),
)
"""Matsuzaki's 8x6 network on 4x4, in TDL2048+'s order ("8x6patt/k.matsuzaki"); his 6x6
network is its first six tuples."""

_FOUR_BY_FOUR_ONLY = {"6x6": MATSUZAKI_8X6[:6], "8x6": MATSUZAKI_8X6}

MIN_TUPLE, MAX_TUPLE = 2, 7
"""Cells in a custom tuple: at least 2; at most 7 (a table of 16**7 float32 is 1.07 GB)."""

_EXAMPLE = "cells like '0,1,2,3;4,5,6,7'"


def _usage(names: tuple[str, ...] = LAYOUT_NAMES) -> str:
    return f"use one of {', '.join(names)} or {_EXAMPLE}"


def _names_for(rows: int, cols: int) -> tuple[str, ...]:
    """The named layouts ``tuple_layout`` places on a ``rows`` x ``cols`` board."""
    names = ["4x6", "5x4"]
    if min(rows, cols) >= 4:
        names.append("5x6")
    if (rows, cols) == (4, 4):
        names += list(_FOUR_BY_FOUR_ONLY)
    return tuple(names)


def _parse_cells(spec: str) -> Layout:
    """The tuples of a custom spec, each sorted: ``"5,4;0,1,2"`` -> ``((4, 5), (0, 1, 2))``.

    Raises a one-line ValueError for a malformed tuple (not whole numbers, a repeated cell,
    fewer than 2 or more than 7 cells) or a repeated tuple."""
    layout: list[tuple[int, ...]] = []
    for i, part in enumerate(spec.split(";"), start=1):
        items = [item.strip() for item in part.split(",")]
        if not all(item.isdigit() for item in items):
            raise ValueError(
                f"tuples layout {spec!r}: tuple {i} ({part.strip()!r}) is not whole numbers "
                f"separated by ','; use {_EXAMPLE}"
            )
        cells = sorted(int(item) for item in items)
        if not MIN_TUPLE <= len(cells) <= MAX_TUPLE:
            raise ValueError(
                f"tuples layout {spec!r}: tuple {i} has {len(cells)} cell"
                f"{'' if len(cells) == 1 else 's'}; a tuple has {MIN_TUPLE} to {MAX_TUPLE}"
            )
        repeated = [a for a, b in zip(cells, cells[1:]) if a == b]
        if repeated:
            raise ValueError(f"tuples layout {spec!r}: tuple {i} has cell {repeated[0]} twice")
        if tuple(cells) in layout:
            raise ValueError(
                f"tuples layout {spec!r}: tuple {i} repeats tuple {layout.index(tuple(cells)) + 1}"
            )
        layout.append(tuple(cells))
    return tuple(layout)


def _is_cells(spec: str) -> bool:
    """Whether ``spec`` is meant as custom cells (digits, ',', ';' and spaces, with a ',')."""
    return "," in spec and set(spec) <= set("0123456789,; ")


AUTO = "auto"
"""The default layout: the best measured for the board, "5x6" on 4x4 (it beat "4x6" at equal
minutes: README, issue 25) and "4x6" on every other board (where "5x6" is larger or does
not fit)."""


def resolve_layout(spec: str, rows: int, cols: int) -> str:
    """``spec`` with ``AUTO`` replaced by the layout it means on a ``rows`` x ``cols`` board."""
    if spec != AUTO:
        return spec
    return "5x6" if (rows, cols) == (4, 4) else "4x6"


def check_layout(spec: str) -> None:
    """Raise a one-line ValueError unless ``spec`` is ``AUTO``, a layout name or well-formed
    custom cells (see the module docstring). Whether the layout fits a board is checked by
    ``tuple_layout``, which knows the board."""
    if spec == AUTO:
        return
    if not isinstance(spec, str) or not (spec in LAYOUT_NAMES or _is_cells(spec)):
        raise ValueError(f"unknown tuples layout {spec!r}; {_usage()}")
    if spec not in LAYOUT_NAMES:
        _parse_cells(spec)


def _shapes(name: str, cols: int) -> list[tuple[list[tuple[int, int]], bool]]:
    """The (row, col) offsets of layout ``name``'s shapes, for rows ``cols`` cells long, each
    with whether it is placed at every row (else only in the upper half)."""
    if name in ("4x6", "5x6"):
        row_and_two = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)]
        rectangle = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
        return [(row_and_two, name == "5x6"), (rectangle, False)]
    line = [(0, c) for c in range(min(cols, 4))]
    square = [(0, 0), (0, 1), (1, 0), (1, 1)]
    return [(line, False), (square, False)]


def _placements(name: str, rows: int, cols: int) -> list[list[tuple[int, int]]]:
    """Each shape of ``name`` at each top-left position of the board's upper-left part (or
    of its left half, for a shape placed at every row)."""
    out = []
    for shape, every_row in _shapes(name, cols):
        h = 1 + max(r for r, _ in shape)
        w = 1 + max(c for _, c in shape)
        for r in range(rows - h + 1 if every_row else (rows - h + 2) // 2):
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


def _custom_layout(spec: str, rows: int, cols: int) -> Layout:
    layout = _parse_cells(spec)
    for cells in layout:
        if cells[-1] >= rows * cols:
            raise ValueError(
                f"cell {cells[-1]} of tuples layout {spec!r} is outside the {rows}x{cols} "
                f"board (cells 0..{rows * cols - 1})"
            )
    return layout


def tuple_layout(name: str, rows: int, cols: int) -> Layout:
    """The tuples of layout ``name`` (a name or custom cells) placed on a ``rows`` x ``cols``
    board (see the module docstring): flat cells, ascending within a tuple.

    >>> tuple_layout("5x4", 3, 3)
    ((0, 1, 2), (3, 4, 5), (0, 1, 3, 4))
    >>> tuple_layout("3,1,0;4,5", 3, 3)
    ((0, 1, 3), (4, 5))
    """
    check_layout(name)
    name = resolve_layout(name, rows, cols)
    if name not in LAYOUT_NAMES:
        return _custom_layout(name, rows, cols)
    if name not in _names_for(rows, cols):
        raise ValueError(
            f"the {name!r} tuples layout does not fit the {rows}x{cols} board; "
            f"{_usage(_names_for(rows, cols))}"
        )
    if name in _FOUR_BY_FOUR_ONLY:
        return _FOUR_BY_FOUR_ONLY[name]
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
