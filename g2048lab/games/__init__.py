"""Games, described once: what every layer (engine, learners, search, run, store, dashboard,
exports, CLI) reads instead of assuming 2048 on a 4x4 board.

A ``Game`` is plain data: the board's shape, the moves with their names and arrows, the
spawn rule, the tile range and the tiles worth reporting. The engine (``engine.rules``)
plays any game of the 2048 family from this description; ``get("2048-5x5")`` finds one by
name, ``register`` adds one (a test can add a game in its own file), ``names`` lists them.

The family: ``2048-RxC`` for 3 <= R, C <= 8 (``2048-4x4``, the default, is the original
game). Larger boards make longer games and bigger tiles: ``max_exponent`` (the largest
tile a game can make) grows with the cells, while what a learner can represent (the
n-tuple tables' 4-bit cells, the transformer's tile vocabulary) is the learner's to check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["DEFAULT", "Game", "UnknownGame", "get", "names", "register"]

DEFAULT = "2048-4x4"
"""The game of a run or checkpoint that names none (everything written before games)."""

MOVE_NAMES = ("up", "right", "down", "left")  # in engine.rules.Action order
MOVE_ARROWS = ("↑", "→", "↓", "←")
ENGINE_MAX_EXPONENT = 31  # the engine's exponents are uint8 and its rewards int64


@dataclass(frozen=True)
class Game:
    """One game of the 2048 family: slide-and-merge on a ``rows`` x ``cols`` board.

    name: how runs, checkpoints, flags and JSON name it ("2048-5x5").
    rows, cols: the board's shape; boards are (rows, cols) uint8 tile exponents
        (0 empty, 1 the tile 2, 11 the tile 2048).
    four_probability: a spawned tile is a 4 with this probability, else a 2.
    start_tiles: tiles spawned on the empty board to start a game.
    reach_tiles: the two tiles whose share of games a run's metric rows report
        (``rollout/reach_<tile>``): hard for a fresh learner, reached by a good one.
    eval_tiles: the tiles whose share of games ``eval`` tables report.
    """

    name: str
    rows: int
    cols: int
    four_probability: float = 0.1
    start_tiles: int = 2
    reach_tiles: tuple[int, int] = (1024, 2048)
    eval_tiles: tuple[int, ...] = (256, 512, 1024, 2048, 4096, 8192)
    move_names: tuple[str, ...] = field(default=MOVE_NAMES)
    move_arrows: tuple[str, ...] = field(default=MOVE_ARROWS)

    def __post_init__(self) -> None:
        if not (2 <= self.rows <= 8 and 2 <= self.cols <= 8):
            raise ValueError(f"a board has 2..8 rows and columns, got {self.rows}x{self.cols}")
        if not 0 <= self.four_probability <= 1:
            raise ValueError(f"four_probability is in 0..1, got {self.four_probability}")
        if not 1 <= self.start_tiles <= self.cells:
            raise ValueError(f"start_tiles is in 1..{self.cells}, got {self.start_tiles}")

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of a board."""
        return (self.rows, self.cols)

    @property
    def cells(self) -> int:
        """rows * cols: the board's cells, the transformer's tokens."""
        return self.rows * self.cols

    @property
    def actions(self) -> int:
        """How many moves there are (4: up, right, down, left, in ``engine.rules.Action`` order)."""
        return len(self.move_names)

    @property
    def max_exponent(self) -> int:
        """The largest tile exponent a game can make: a board holding one tile of each
        exponent below it, the last merge fed by a spawned 4 (17, the tile 131072, on 4x4;
        16 where only 2s spawn), capped at the engine's range."""
        largest = self.cells + (1 if self.four_probability > 0 else 0)
        return min(largest, ENGINE_MAX_EXPONENT)

    @property
    def title(self) -> str:
        """Words for a page or a chart: "2048 on 5x5"."""
        return f"2048 on {self.rows}x{self.cols}"


_FAMILY = re.compile(r"2048-([2-8])x([2-8])")
_REGISTRY: dict[str, Game] = {}


class UnknownGame(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def _family_game(rows: int, cols: int) -> Game:
    """2048 on rows x cols, its report tiles scaled to the board: 3x3 reports 256 and 512,
    4x4 1024 and 2048, 5x5 4096 and 8192, 6x6 16384 and 32768."""
    cells = rows * cols
    top = {9: 9, 12: 10, 16: 11, 20: 12, 25: 13, 30: 14, 36: 15}.get(cells)
    if top is None:  # one exponent per ~4 cells beyond 4x4, at least 2**6
        top = max(6, 11 + round((cells - 16) / 5))
    reach = (1 << (top - 1), 1 << top)
    evals = tuple(1 << e for e in range(max(top - 3, 4), top + 3))
    return Game(f"2048-{rows}x{cols}", rows, cols, reach_tiles=reach, eval_tiles=evals)


def register(game: Game) -> Game:
    """Add ``game`` under its name (a name already there is replaced)."""
    if not isinstance(game, Game):
        raise TypeError(f"register takes a Game, got {type(game).__name__}")
    _REGISTRY[game.name] = game
    return game


def get(name: str | Game | None = None) -> Game:
    """The game named ``name`` (``DEFAULT`` for None): a registered one, or ``2048-RxC``; a
    ``Game`` itself is returned as it is, so a caller may take either."""
    if isinstance(name, Game):
        return name
    name = DEFAULT if name is None else name
    if name in _REGISTRY:
        return _REGISTRY[name]
    match = _FAMILY.fullmatch(name) if isinstance(name, str) else None
    if match and min(int(match[1]), int(match[2])) >= 3:
        return register(_family_game(int(match[1]), int(match[2])))
    raise UnknownGame(
        f"no game named {name!r}; choose one of {', '.join(names())} "
        "(or 2048-RxC for any board of 3..8 rows and columns)"
    )


def names() -> list[str]:
    """The games to offer: 2048 on 3x3 to 6x6 boards, and any registered since."""
    family = [f"2048-{n}x{n}" for n in range(3, 7)]
    return family + sorted(set(_REGISTRY) - set(family))
