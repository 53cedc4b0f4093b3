"""How the game looks everywhere (console, dashboard, exported games): the original 2048's
tile colours, darker ones for the bigger tiles of big boards, and an arrow per move."""

from __future__ import annotations

from .engine.rules import Action
from .games import MOVE_ARROWS

ARROWS = dict(zip(Action, MOVE_ARROWS))  # the 2048 family's; a game's own: Game.move_arrows

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
    # beyond the original game (a 5x5 or 6x6 board gets there): dark, one hue per tile, so
    # that 8192 and 32768 side by side read apart; white text on each
    4096: "#3c3a32",
    8192: "#2f4858",
    16384: "#33415c",
    32768: "#4a3b6b",
    65536: "#6b2f4f",
    131072: "#7a2e2e",
}
BIG_TILE_BACKGROUND = "#1f1d18"  # beyond 131072
DARK_TEXT = "#776e65"  # on 2 and 4
LIGHT_TEXT = "#f9f6f2"


def tile_colors(value: int) -> tuple[str, str]:
    """(background, text) hex colours of a tile value (0 for an empty cell)."""
    background = TILE_BACKGROUND.get(value, BIG_TILE_BACKGROUND)
    return background, DARK_TEXT if value <= 4 else LIGHT_TEXT
