"""The game as HTML: the board (tiles coloured like the original game), the policy's action
probabilities as bars in ``Action`` order, and a widget that shows both.

Plain HTML in an ``ipywidgets.HTML``: no JavaScript, nothing to load, and it scales with
its container (CSS grid, ``aspect-ratio``, font sizes in container units). A board of any
shape (R, C) is drawn as it comes: the grid, its aspect ratio and the font follow it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import ipywidgets as widgets

from .. import games
from ..palette import tile_colors

__all__ = ["GameView", "action_bars_html", "board_html", "empty_board"]

_BOARD_STYLE = (
    "display:grid;grid-template-columns:repeat({cols},1fr);grid-template-rows:repeat({rows},1fr);"
    "gap:{gap:.2g}%;padding:{gap:.2g}%;box-sizing:border-box;width:calc(100% - 16px);"
    "max-width:{max_width}px;margin:4px auto 4px 4px;aspect-ratio:{cols}/{rows};"
    "background:#bbada0;border-radius:8px;container-type:inline-size;"
    "font-family:'Clear Sans','Helvetica Neue',Arial,sans-serif"
)
_TILE_STYLE = (
    "display:flex;align-items:center;justify-content:center;border-radius:4px;"
    "font-weight:700;background:{background};color:{text};font-size:{px}px;font-size:{cqw}cqw"
)
# digits: (px, cqw) on a board 4 columns wide; a board of C columns scales both by 4 / C
_FONT = {1: (32, 13), 2: (32, 13), 3: (28, 11), 4: (22, 8.5), 5: (18, 7)}
_SMALL_FONT = (14, 5.5)  # 6 digits and more


def board_html(values: Sequence[Sequence[int]]) -> str:
    """An (R, C) board of tile values (0 for empty) as a responsive HTML grid of R rows and
    C columns, C / R as wide as high."""
    rows, cols = len(values), len(values[0])
    scale = 4 / cols  # tiles as wide as on a 4x4 board get the same font
    cells = []
    for row in values:
        for value in row:
            value = int(value)
            background, text = tile_colors(value)
            px, cqw = _FONT.get(len(str(value)), _SMALL_FONT)
            px, cqw = round(px * min(scale, 1)), f"{cqw * scale:.3g}"
            style = _TILE_STYLE.format(background=background, text=text, px=px, cqw=cqw)
            label = str(value) if value else ""
            cells.append(
                f'<div class="g2048lab-tile" data-value="{value}" style="{style}">{label}</div>'
            )
    gap = 12 / max(rows, cols)  # 3% on 4x4: gaps as wide as there, relative to a tile
    max_width = round(420 * min(1, cols / rows))  # a tall board no higher than a square one
    style = _BOARD_STYLE.format(rows=rows, cols=cols, gap=gap, max_width=max_width)
    return (
        f'<div class="g2048lab-board" data-shape="{rows}x{cols}" style="{style}">'
        f"{''.join(cells)}</div>"
    )


def action_bars_html(
    probs: Sequence[float], chosen: int | None = None, game: games.Game | None = None
) -> str:
    """A bar per move of ``game`` (the default game's four when None) with its probability,
    in ``Action`` order; ``chosen`` is highlighted."""
    game = game or games.get()
    rows = []
    for action, (arrow, name, p) in enumerate(zip(game.move_arrows, game.move_names, probs)):
        p = float(p)
        mark = action == chosen
        colour = "#f67c5f" if mark else "#8f7a66"
        weight = "700" if mark else "400"
        rows.append(
            f'<div class="g2048lab-action" data-action="{html.escape(name.upper())}" '
            f'data-p="{p:.4f}" style="display:flex;align-items:center;gap:6px;'
            f'font-weight:{weight}">'
            f'<span style="flex:0 0 5em">{arrow} {html.escape(name)}</span>'
            '<span style="flex:1 1 auto;background:#eee4da;height:14px;border-radius:3px">'
            f'<span style="display:block;width:{100 * p:.1f}%;height:100%;background:{colour};'
            'border-radius:3px"></span></span>'
            f'<span style="flex:0 0 3.5em;text-align:right">{100 * p:.1f}%</span></div>'
        )
    return (
        '<div class="g2048lab-actions" style="display:grid;gap:4px;padding:0 12px 0 4px;'
        f'box-sizing:border-box;width:100%">{"".join(rows)}</div>'
    )


class GameView(widgets.VBox):
    """The board, the action bars and a caption; ``show()`` sends only what changed."""

    def __init__(self, game: games.Game | None = None, **kwargs):
        game = game or games.get()
        self.board = widgets.HTML(board_html(empty_board(game)))
        self.bars = widgets.HTML(action_bars_html([1 / game.actions] * game.actions, None, game))
        self.caption = widgets.HTML("")
        for child in (self.board, self.bars, self.caption):
            child.layout = widgets.Layout(width="100%", max_width="420px")
        super().__init__([self.board, self.bars, self.caption], **kwargs)
        self.add_class("g2048lab-game")

    def show(
        self,
        values: Sequence[Sequence[int]],
        probs: Sequence[float],
        chosen: int | None = None,
        caption: str = "",
        game: games.Game | None = None,
    ) -> None:
        """Draw an (R, C) board of tile values, its action probabilities (named as ``game``
        names its moves; the default game's when None) and a caption (plain text, escaped
        here). Unchanged parts are not resent: traitlets skips equal values."""
        self.board.value = board_html(values)
        self.bars.value = action_bars_html(probs, chosen, game)
        self.caption.value = f'<div class="g2048lab-caption">{html.escape(caption)}</div>'


def empty_board(game: games.Game) -> list[list[int]]:
    """(rows, cols) zeros: ``game``'s board before the first tiles."""
    return [[0] * game.cols for _ in range(game.rows)]
