"""Rich tables for the terminal: a board, evaluation summaries."""

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
        table.add_column(justify="center", width=6)
    for row in to_values(board):
        cells = []
        for value in row:
            background, text = tile_colors(int(value))
            cells.append(Text(str(value) if value else "", style=f"bold {text} on {background}"))
        table.add_row(*cells)
    return table


def summary_table(rows: dict[str, dict]):
    """A rich Table of evaluation summaries, one row per policy or checkpoint."""
    from rich.table import Table

    table = Table(title="whole games")
    for column in ["policy", "games", "mean score", "median score", *map(str, TILE_THRESHOLDS)]:
        table.add_column(column, justify="right")
    for name, s in rows.items():
        shares = [f"{100 * s['tile_share'][t]:.1f}%" for t in TILE_THRESHOLDS]
        table.add_row(
            name, str(s["games"]), f"{s['mean_score']:,.0f}", f"{s['median_score']:,.0f}", *shares
        )
    return table
