"""How the game looks everywhere (console, dashboard, exported games): the original 2048's
tile colours and an arrow per move."""

from __future__ import annotations

from .engine.rules import Action

ARROWS = {Action.UP: "↑", Action.RIGHT: "→", Action.DOWN: "↓", Action.LEFT: "←"}

TILE_BACKGROUND = {
    0: "#cdc1b4",
    2: "#eee4da",
    4: "#ede0c8",
    8: "#f2b179",
    16: "#f59563",
    32: "#f67c5f",
    64: "#f65e3b",
    128: "#edcf72",
    256: "#edcc61",
    512: "#edc850",
    1024: "#edc53f",
    2048: "#edc22e",
}
BIG_TILE_BACKGROUND = "#3c3a32"  # beyond 2048
DARK_TEXT = "#776e65"  # on 2 and 4
LIGHT_TEXT = "#f9f6f2"


def tile_colors(value: int) -> tuple[str, str]:
    """(background, text) hex colours of a tile value (0 for an empty cell)."""
    background = TILE_BACKGROUND.get(value, BIG_TILE_BACKGROUND)
    return background, DARK_TEXT if value <= 4 else LIGHT_TEXT
