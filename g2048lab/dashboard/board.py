"""The game as HTML: the board (tiles coloured like the original game), the policy's action
probabilities as bars in ``Action`` order, and a widget that shows both.

Plain HTML in an ``ipywidgets.HTML``: no JavaScript, nothing to load, and it scales with
its container (CSS grid, ``aspect-ratio``, font sizes in container units).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import ipywidgets as widgets

from ..engine.rules import Action
from ..palette import ARROWS, tile_colors

__all__ = ["ARROWS", "GameView", "action_bars_html", "board_html"]

_BOARD_STYLE = (
    "display:grid;grid-template-columns:repeat(4,1fr);grid-template-rows:repeat(4,1fr);"
    "gap:3%;padding:3%;box-sizing:border-box;width:calc(100% - 16px);max-width:420px;"
    "margin:4px auto 4px 4px;aspect-ratio:1/1;"
    "background:#bbada0;border-radius:8px;container-type:inline-size;"
    "font-family:'Clear Sans','Helvetica Neue',Arial,sans-serif"
)
_TILE_STYLE = (
    "display:flex;align-items:center;justify-content:center;border-radius:4px;"
    "font-weight:700;background:{background};color:{text};font-size:{px}px;font-size:{cqw}cqw"
)
_FONT = {1: (32, 13), 2: (32, 13), 3: (28, 11), 4: (22, 8.5), 5: (18, 7)}  # digits: (px, cqw)


def board_html(values: Sequence[Sequence[int]]) -> str:
    """A (4, 4) board of tile values (0 for empty) as a square, responsive HTML grid."""
    cells = []
    for row in values:
        for value in row:
            value = int(value)
            background, text = tile_colors(value)
            px, cqw = _FONT.get(len(str(value)), (14, 5.5))
            style = _TILE_STYLE.format(background=background, text=text, px=px, cqw=cqw)
            label = str(value) if value else ""
            cells.append(
                f'<div class="g2048lab-tile" data-value="{value}" style="{style}">{label}</div>'
            )
    return f'<div class="g2048lab-board" style="{_BOARD_STYLE}">{"".join(cells)}</div>'


def action_bars_html(probs: Sequence[float], chosen: int | None = None) -> str:
    """Four bars of action probabilities in ``Action`` order; ``chosen`` is highlighted."""
    rows = []
    for action, p in zip(Action, probs):
        p = float(p)
        mark = action == chosen
        colour = "#f67c5f" if mark else "#8f7a66"
        weight = "700" if mark else "400"
        rows.append(
            f'<div class="g2048lab-action" data-action="{action.name}" data-p="{p:.4f}" '
            f'style="display:flex;align-items:center;gap:6px;font-weight:{weight}">'
            f'<span style="flex:0 0 5em">{ARROWS[action]} {action.name.lower()}</span>'
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

    def __init__(self, **kwargs):
        self.board = widgets.HTML(board_html([[0] * 4] * 4))
        self.bars = widgets.HTML(action_bars_html([0.25] * 4))
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
    ) -> None:
        """Draw a board of tile values, its action probabilities and a caption (plain text,
        escaped here). Unchanged parts are not resent: traitlets skips equal values."""
        self.board.value = board_html(values)
        self.bars.value = action_bars_html(probs, chosen)
        self.caption.value = f'<div class="g2048lab-caption">{html.escape(caption)}</div>'
