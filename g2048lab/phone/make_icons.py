"""Write the app's PNG icons with a tiny pure-Python PNG writer (zlib + struct).

Run ``python -m g2048lab.phone.make_icons`` after changing the design; the PNGs are committed.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

STATIC = Path(__file__).parent / "share/jupyter/voila/templates/g2048lab/static"
BACKGROUND = (0xFA, 0xF8, 0xEF)
BOARD = (0xBB, 0xAD, 0xA0)
TILES = [(0xED, 0xC2, 0x2E), (0xF6, 0x5E, 0x3B), (0xF2, 0xB1, 0x79), (0xEE, 0xE4, 0xDA)]


def png(width: int, height: int, pixel) -> bytes:
    """A truecolour PNG whose pixel (x, y) is ``pixel(x, y)`` -> (r, g, b)."""
    raw = b"".join(
        b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def icon(size: int, safe: float) -> bytes:
    """A 2x2 board of 2048 tiles; ``safe`` is the share of the icon the board may use
    (0.8 or less for a maskable icon, whose edges a launcher may crop)."""
    board = size * safe
    start = (size - board) / 2
    gap = board * 0.06
    tile = (board - 3 * gap) / 2

    def pixel(x: int, y: int):
        u, v = x - start, y - start
        if not (0 <= u < board and 0 <= v < board):
            return BACKGROUND
        for i in range(2):
            for j in range(2):
                left, top = gap + j * (tile + gap), gap + i * (tile + gap)
                if left <= u < left + tile and top <= v < top + tile:
                    return TILES[2 * i + j]
        return BOARD

    return png(size, size, pixel)


def main() -> None:
    STATIC.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        (STATIC / f"icon-{size}.png").write_bytes(icon(size, 0.92))
    (STATIC / "icon-maskable-512.png").write_bytes(icon(512, 0.7))
    (STATIC / "apple-touch-icon.png").write_bytes(icon(180, 0.8))


if __name__ == "__main__":
    main()
