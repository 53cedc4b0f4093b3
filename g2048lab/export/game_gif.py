"""A recorded game as an animated GIF: the score, the move number, the board and the four
move probabilities as small bars, one frame per shown position. The frame follows the
board's shape (``frame_size``): 320 x 412 px for 4x4.

Drawn with Pillow, an optional dependency (``pip install "g2048lab[gif]"``), with its
bundled scalable font: nothing is fetched. Text is drawn without antialiasing, so every
pixel is one of a few fixed colours: the frames share one palette, Pillow stores each as
what changed since the one before, and the file is a quarter smaller than with
antialiased text. A frame takes 2.5 to 3.5 kB, and a long game is sampled to at most
``MAX_FRAMES`` frames: a GIF is at most about 2 MB.
"""

from __future__ import annotations

import io
import math

import numpy as np

from ..engine.rules import Action, to_values
from ..palette import BIG_TILE_BACKGROUND, DARK_TEXT, LIGHT_TEXT, TILE_BACKGROUND, tile_colors
from ..recording import GameRecord
from .games import has_policy, score_before

__all__ = ["GIF_MISSING", "frame_positions", "frame_size", "frame_step", "game_gif"]

GIF_MISSING = 'GIF export needs Pillow: pip install "g2048lab[gif]"'
MAX_FRAMES = 600
FRAME_MS = 100  # per frame
LAST_FRAME_MS = 2000  # the final board stays this long before the loop starts again

# layout in pixels, top to bottom: a header line, the board, the bars. The board is as wide
# as the frame: tiles of CELL px with GAP between, wider on a board of few columns (the
# header and the bars need MIN_WIDTH), narrower on one of many (at most MAX_WIDTH)
CELL, GAP = 70, 8
MIN_WIDTH, MAX_WIDTH = 320, 480  # 4x4: 4 * CELL + 5 * GAP = 320
HEADER, FOOTER = 40, 52
TILE_FONT = {1: 34, 2: 34, 3: 28, 4: 22}  # px by number of digits, on a tile of CELL px
BIG_TILE_FONT = 18  # 5 digits and more
TEXT_FONT = 16

PAGE = "#faf8ef"
BOARD = "#bbada0"
TRACK = "#eee4da"  # an empty bar
CHOSEN = "#f67c5f"  # the move taken
OTHER = "#8f7a66"
COLOURS = tuple(  # every colour a frame holds: the GIF's palette
    dict.fromkeys(
        [*TILE_BACKGROUND.values(), BIG_TILE_BACKGROUND, DARK_TEXT, LIGHT_TEXT, PAGE, BOARD]
        + [TRACK, CHOSEN, OTHER]
    )
)


def frame_step(length: int, max_frames: int = MAX_FRAMES) -> int:
    """Moves between frames: 1 while the ``length`` + 1 positions fit in ``max_frames``,
    else the least k that keeps every k-th position and the final board within it.

    ``frame_step(598) -> 1``; ``frame_step(600) -> 2``; ``frame_step(10, 4) -> 4``
    """
    return max(1, math.ceil(length / max(max_frames - 1, 1)))


def frame_positions(length: int, max_frames: int = MAX_FRAMES) -> np.ndarray:
    """Positions (0: the start, ``length``: the final board) the frames show: every
    ``frame_step``-th, and always the final board.

    ``frame_positions(3) -> [0 1 2 3]``; ``frame_positions(10, 4) -> [0 4 8 10]``
    """
    positions = np.arange(0, length + 1, frame_step(length, max_frames))
    return positions if positions[-1] == length else np.append(positions, length)


def tile_size(cols: int) -> int:
    """Px of a tile on a board of ``cols`` columns: CELL, unless the board would be narrower
    than MIN_WIDTH or wider than MAX_WIDTH.

    ``tile_size(4) -> 70``; ``tile_size(3) -> 96``; ``tile_size(5) -> 70``; ``tile_size(8) -> 51``
    """
    natural = cols * CELL + (cols + 1) * GAP
    width = min(max(natural, MIN_WIDTH), MAX_WIDTH)
    return (width - (cols + 1) * GAP) // cols


def frame_size(rows: int, cols: int) -> tuple[int, int]:
    """(width, height) px of a frame showing a (rows, cols) board.

    ``frame_size(4, 4) -> (320, 412)``; ``frame_size(3, 3) -> (320, 412)``;
    ``frame_size(5, 5) -> (398, 490)``
    """
    cell = tile_size(cols)
    return cols * cell + (cols + 1) * GAP, HEADER + rows * cell + (rows + 1) * GAP + FOOTER


def game_gif(record: GameRecord, max_frames: int = MAX_FRAMES, frame_ms: int = FRAME_MS) -> bytes:
    """The GIF file of ``record``, looping: ``len(frame_positions(record.length,
    max_frames))`` frames of ``frame_size(R, C)`` px (320 x 412 for a 4x4 board),
    ``frame_ms`` each, the final board held ``LAST_FRAME_MS``.

    A frame shows the board before a move, the score so far, "move k of L" and the move
    probabilities (the move taken highlighted); the last one the final board, the length,
    the max tile and, for a game of more than ``max_frames`` - 1 moves, the sampling
    ("1 frame per 2 moves"). Without Pillow, a ValueError says how to install it.
    """
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise ValueError(GIF_MISSING) from None
    positions = frame_positions(record.length, max_frames)
    rows, cols = record.boards.shape[1:]
    cell = tile_size(cols)
    width, height = frame_size(rows, cols)
    tile_fonts = {
        digits: round(px * cell / CELL) for digits, px in [*TILE_FONT.items(), (0, BIG_TILE_FONT)]
    }  # digits (0: more than TILE_FONT has) -> px
    sizes = {TEXT_FONT, *tile_fonts.values()}
    fonts = {size: ImageFont.load_default(size=size) for size in sizes}
    tiles = {digits: fonts[px] for digits, px in tile_fonts.items()}
    palette = Image.new("P", (1, 1))
    palette.putpalette([channel for colour in COLOURS for channel in _rgb(colour)])
    scores = score_before(record)
    policy = has_policy(record)
    every = frame_step(record.length, max_frames)
    frames = []
    for step in positions.tolist():
        image = Image.new("RGB", (width, height), PAGE)
        draw = ImageDraw.Draw(image)
        draw.fontmode = "1"  # no antialiasing (see the module doc)
        over = step >= record.length
        move = "game over" if over else f"move {step + 1:,} of {record.length:,}"
        _header(draw, fonts[TEXT_FONT], width, f"score {int(scores[step]):,}", move)
        _board(draw, tiles, cell, to_values(record.boards[step]))
        footer = height - FOOTER
        if over:
            _summary(draw, fonts[TEXT_FONT], footer, record, every)
        else:
            probs, chosen = record.probs[step], record.actions[step]
            _bars(draw, fonts[TEXT_FONT], width, footer, probs, chosen, policy)
        frames.append(image.quantize(palette=palette, dither=Image.Dither.NONE))
    out = io.BytesIO()
    frames[0].save(
        out,
        format="GIF",
        save_all=True,
        append_images=frames[1:],
        duration=[frame_ms] * (len(frames) - 1) + [LAST_FRAME_MS],
        loop=0,
    )
    return out.getvalue()


def _header(draw, font, width: int, left: str, right: str) -> None:
    draw.text((GAP, HEADER // 2), left, font=font, fill=DARK_TEXT, anchor="lm")
    draw.text((width - GAP, HEADER // 2), right, font=font, fill=DARK_TEXT, anchor="rm")


def tile_origin(row: int, col: int, cell: int) -> tuple[int, int]:
    """(x, y) px of the top left corner of the tile at (row, col), tiles ``cell`` px wide."""
    return GAP + col * (cell + GAP), HEADER + GAP + row * (cell + GAP)


def _board(draw, fonts, cell: int, values: np.ndarray) -> None:
    """``values``: (R, C) tile values, 0 for empty, on tiles of ``cell`` px; numbers bold
    (stroked), as in the game; ``fonts``: by digits, 0 for more than TILE_FONT has."""
    rows, cols = values.shape
    right, bottom = tile_origin(rows, cols, cell)
    draw.rounded_rectangle((0, HEADER, right - 1, bottom - 1), radius=8, fill=BOARD)
    for (row, col), value in np.ndenumerate(values):
        x, y = tile_origin(row, col, cell)
        background, text = tile_colors(int(value))
        draw.rounded_rectangle((x, y, x + cell - 1, y + cell - 1), radius=4, fill=background)
        if value:
            label = str(value)
            font = fonts.get(len(label), fonts[0])
            centre = (x + cell // 2, y + cell // 2)
            draw.text(centre, label, font=font, fill=text, anchor="mm", stroke_width=1)


def _bars(
    draw, font, frame_width: int, top: int, probs: np.ndarray, chosen: int, policy: bool
) -> None:
    """Four columns in ``Action`` order under the board (which ends at ``top``): an arrow and
    the probability, a bar under them; the move taken in the highlight colour. A player
    without a policy: the arrows only, and a full bar under the move it took."""
    width = (frame_width - GAP) // 4 - GAP
    top += 8
    for action in Action:
        x = GAP + action * (width + GAP)
        colour = CHOSEN if action == chosen else OTHER
        draw.polygon(_arrow(action, x + 6, top + 8), fill=colour)
        if policy:
            label = f"{100 * probs[action]:.0f}%"
            draw.text((x + 18, top + 8), label, font=font, fill=colour, anchor="lm")
        bar = (x, top + 22, x + width - 1, top + 33)
        draw.rounded_rectangle(bar, radius=3, fill=TRACK)
        filled = round(width * float(probs[action]))
        if filled > 0:
            draw.rounded_rectangle((x, bar[1], x + filled - 1, bar[3]), radius=3, fill=colour)


def _arrow(action: Action, x: int, y: int) -> list[tuple[int, int]]:
    """A triangle 12 px wide pointing the way ``action`` moves, centred on (x, y)."""
    up = [(0, -6), (6, 5), (-6, 5)]
    turns = {Action.UP: 0, Action.RIGHT: 1, Action.DOWN: 2, Action.LEFT: 3}[action]
    for _ in range(turns):  # a quarter turn clockwise on screen: (dx, dy) -> (-dy, dx)
        up = [(-dy, dx) for dx, dy in up]
    return [(x + dx, y + dy) for dx, dy in up]


def _summary(draw, font, top: int, record: GameRecord, every: int) -> None:
    """Under the final board (which ends at ``top``): the length, the max tile and the
    sampling, if any."""
    top += 14
    text = f"{record.length:,} moves · max tile {record.max_tile:,}"
    draw.text((GAP, top), text, font=font, fill=DARK_TEXT, anchor="lm")
    if every > 1:
        note = f"1 frame per {every} moves"
        draw.text((GAP, top + 22), note, font=font, fill=DARK_TEXT, anchor="lm")


def _rgb(colour: str) -> tuple[int, int, int]:
    """``"#f67c5f" -> (246, 124, 95)``"""
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)
