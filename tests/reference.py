"""A slow, obviously correct pure-Python 2048, to test the fast engine against."""

from __future__ import annotations

UP, RIGHT, DOWN, LEFT = range(4)


def slide_line(line: list[int]) -> tuple[list[int], int]:
    """Slide exponents toward index 0; return (new line, game score of the merges)."""
    tiles = [v for v in line if v]
    out: list[int] = []
    score = 0
    i = 0
    while i < len(tiles):
        if i + 1 < len(tiles) and tiles[i] == tiles[i + 1]:
            out.append(tiles[i] + 1)
            score += 2 ** (tiles[i] + 1)
            i += 2
        else:
            out.append(tiles[i])
            i += 1
    return out + [0] * (len(line) - len(out)), score


def lines_of(board: list[list[int]], action: int) -> list[list[int]]:
    """The four lines of a board, each read from the wall the action moves toward."""
    rows = [list(r) for r in board]
    cols = [[board[r][c] for r in range(4)] for c in range(4)]
    return {
        LEFT: rows,
        RIGHT: [r[::-1] for r in rows],
        UP: cols,
        DOWN: [c[::-1] for c in cols],
    }[action]


def board_from_lines(lines: list[list[int]], action: int) -> list[list[int]]:
    if action == LEFT:
        return [list(line) for line in lines]
    if action == RIGHT:
        return [line[::-1] for line in lines]
    cols = lines if action == UP else [line[::-1] for line in lines]
    return [[cols[c][r] for c in range(4)] for r in range(4)]


def move(board: list[list[int]], action: int) -> tuple[list[list[int]], int, bool]:
    """(new board, score, changed) of one move, without a spawn."""
    slid = [slide_line(line) for line in lines_of(board, action)]
    new = board_from_lines([line for line, _ in slid], action)
    return new, sum(s for _, s in slid), new != [list(r) for r in board]


def legal(board: list[list[int]]) -> list[bool]:
    return [move(board, a)[2] for a in range(4)]
