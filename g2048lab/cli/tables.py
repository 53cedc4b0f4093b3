"""Rich tables for the terminal: a board, evaluation summaries.

Tables fit 80 columns and never cut a number: number columns do not wrap and are as
wide as their longest entry; only names and headers wrap, at spaces where they have any.
"""

from __future__ import annotations

import numpy as np

from ..evaluation import TILE_THRESHOLDS
from ..game import to_values
from ..palette import tile_colors


def board_table(board: np.ndarray, title: str = ""):
    """A rich Table of one (4, 4) exponent board, tiles coloured like the original game."""
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, show_lines=True, title=title, padding=(0, 1))
    for _ in range(4):
        table.add_column(justify="center", width=6)  # up to 131072: six digits
    for row in to_values(board):
        cells = []
        for value in row:
            background, text = tile_colors(int(value))
            cells.append(Text(str(value) if value else "", style=f"bold {text} on {background}"))
        table.add_row(*cells)
    return table


def summary_table(rows: dict[str, dict]):
    """Evaluation summaries, one row per policy or checkpoint: scores in one table, the
    share of games reaching each tile in a second (one table of both is 95 columns wide).
    Tiles past the first one no game reached are left out."""
    from rich.console import Group

    scores = _numbers_table(
        "whole games",
        ["games", "mean score", "median score", "best score"],
        {
            name: [
                f"{s['games']:,}",
                f"{s['mean_score']:,.0f}",
                f"{s['median_score']:,.0f}",
                f"{s['max_score']:,}",
            ]
            for name, s in rows.items()
        },
    )
    reached = [t for t in TILE_THRESHOLDS if any(s["tile_share"][t] > 0 for s in rows.values())]
    tiles = [t for t in TILE_THRESHOLDS if t <= 2 * max(reached, default=TILE_THRESHOLDS[0] // 2)]
    shares = _numbers_table(
        "share of games reaching a tile",
        [str(t) for t in tiles],
        {name: [f"{100 * s['tile_share'][t]:.1f}%" for t in tiles] for name, s in rows.items()},
    )
    return Group(scores, shares)


def _numbers_table(title: str, headers: list[str], rows: dict[str, list[str]]):
    """A Table with a ``policy`` column, which wraps, and right-aligned number columns,
    which never do: each is at least as wide as its widest entry."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("policy", overflow="fold")
    for i, header in enumerate(headers):
        widest = max((len(cells[i]) for cells in rows.values()), default=0)
        table.add_column(header, justify="right", min_width=widest)
    for name, cells in rows.items():
        table.add_row(name, *cells)
    return table
