"""Rich tables for the terminal: a board, evaluation summaries.

Tables fit 80 columns and never cut a number: number columns do not wrap and are as
wide as their longest entry; only names and headers wrap, at spaces where they have any.
"""

from __future__ import annotations

import numpy as np

from ..engine.rules import to_values
from ..palette import tile_colors


def board_table(board: np.ndarray, title: str = "", caption: str = ""):
    """A rich Table of one (R, C) exponent board, tiles coloured like the original game;
    ``title`` above it, ``caption`` (the game, say) under it."""
    from rich.table import Table
    from rich.text import Text

    values = to_values(board)
    # six digits (131072, 4x4's largest tile) unless a bigger board made a longer one
    width = max(6, len(str(values.max(initial=0))))
    table = Table(show_header=False, show_lines=True, title=title, caption=caption, padding=(0, 1))
    for _ in range(values.shape[1]):
        table.add_column(justify="center", width=width)
    for row in values:
        cells = []
        for value in row:
            background, text = tile_colors(int(value))
            cells.append(Text(str(value) if value else "", style=f"bold {text} on {background}"))
        table.add_row(*cells)
    return table


def summary_table(rows: dict[str, dict]):
    """Evaluation summaries, one per policy or checkpoint: scores in one table, one row
    per policy; the share of games reaching each tile in a second, one column per policy
    (one table of both is 95 columns wide). Where a summary has 95% intervals, the mean's
    is shown under it and each share's beside it: three policies fit 80 columns. The tiles
    are those the summaries report (the game's ``eval_tiles``), less those past the first
    one no game reached; a tile one summary lacks shows "–"."""
    from rich.console import Group

    intervals = any(s.get("mean_score_ci") for s in rows.values())
    scores = _numbers_table(
        "whole games",
        ["games", "mean score\n95% interval" if intervals else "mean score"]
        + ["median score", "best score"],
        {
            name: [
                f"{s['games']:,}",
                _mean_with_interval(s),
                f"{s['median_score']:,.0f}",
                f"{s['max_score']:,}",
            ]
            for name, s in rows.items()
        },
    )
    shares = {
        name: {int(t): share for t, share in s["tile_share"].items()} for name, s in rows.items()
    }
    reported = sorted({t for s in shares.values() for t in s})
    reached = [t for t in reported if any(s.get(t, 0) > 0 for s in shares.values())]
    first = reported[0] if reported else 0
    tiles = [t for t in reported if t <= 2 * max(reached, default=first // 2)]
    return Group(scores, _shares_table(rows, tiles))


def _mean_with_interval(summary: dict) -> str:
    """``12,345``, and ``11,667–13,023`` on a second line where the interval is known."""
    text = f"{summary['mean_score']:,.0f}"
    if summary.get("mean_score_ci"):
        low, high = summary["mean_score_ci"]
        text += f"\n{low:,.0f}–{high:,.0f}"
    return text


def _shares_table(rows: dict[str, dict], tiles: list[int]):
    """One row per tile, one column per policy: ``72.0%``, or ``72.0% (62.6–79.8)`` with
    the share's interval. Columns are as wide as their widest entry; headers wrap."""
    from rich.table import Table

    columns = {}
    for name, s in rows.items():
        share = {int(t): v for t, v in s["tile_share"].items()}
        ci = {int(t): v for t, v in (s.get("tile_share_ci") or {}).items()}
        columns[name] = [
            (f"{100 * share[t]:.1f}%" if t in share else "–")
            + (f" ({100 * ci[t][0]:.1f}–{100 * ci[t][1]:.1f})" if t in ci else "")
            for t in tiles
        ]
    intervals = any(s.get("tile_share_ci") for s in rows.values())
    title = "share of games reaching a tile" + (" (95% interval)" if intervals else "")
    table = Table(title=title)
    table.add_column(
        "tile", justify="right", min_width=max((len(str(t)) for t in tiles), default=4)
    )
    for name, cells in columns.items():
        table.add_column(name, justify="right", min_width=max(map(len, cells)))
    for i, tile in enumerate(tiles):
        table.add_row(str(tile), *(cells[i] for cells in columns.values()))
    return table


def _numbers_table(title: str, headers: list[str], rows: dict[str, list[str]]):
    """A Table with a ``policy`` column, which wraps, and right-aligned number columns,
    which never do: each is at least as wide as its widest entry (a cell may hold
    several lines)."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("policy", overflow="fold")
    for i, header in enumerate(headers):
        widest = max(
            (len(line) for cells in rows.values() for line in cells[i].splitlines()), default=0
        )
        if any("\n" in cells[i] for cells in rows.values()):
            # a number over its interval is the widest column, and rich narrows the widest
            # first (below its minimum, then back): a fixed width leaves that to the others
            width = max(widest, *map(len, header.splitlines()))
            table.add_column(header, justify="right", width=width)
        else:
            table.add_column(header, justify="right", min_width=widest)
    for name, cells in rows.items():
        table.add_row(name, *cells)
    return table
