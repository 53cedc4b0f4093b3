"""An n-tuple network that learns a game of the 2048 family by TD(0) on afterstates,
compiled with numba.

After Szubert & Jaśkowski (2014), "Temporal difference learning of n-tuple networks
for the game 2048". The value of an afterstate (a board after a move, before the
tile spawns) is a sum of table lookups: each tuple is a fixed set of cells, the
exponents on those cells (0..15, one hex digit each) form an index into that
tuple's weight table, and each tuple is read on all symmetric images of the
board (8 on a square board: rotations and reflections; 4 on another), so the
images share one table::

    V(x) = sum over tuples t, symmetries s of  weights[t, index(t, s(x))]

The standard "4x6" network on 4x4 has four 6-cell tuples (cells in row-major order
0..15), 32 features and a (4, 16**6) float32 table: 268 MB. Its tuples are placed for
each board by ``layouts.tuple_layout`` (6 tuples, 403 MB on 5x5; lines and 2x2 squares
on 3x3).

Learning plays games greedily over afterstates (the move with the largest
``reward + V(afterstate)``) and, after each move, moves the value of the previous
afterstate toward ``reward + V(new afterstate)`` (toward 0 when the game ends):

    delta = r + V(x') - V(x)        each of x's features += learning_rate * delta / features

The rules are the engine's, for the network's game (``games.Game``): on 4x4 the kernels
below work on boards packed in a uint64 (``engine.packed``), on any other board
``flat_kernels`` works on flat (R*C,) boards with ``engine.rules``' kernels. The tables
hold 4-bit cells: a training game that could make the tile 65536 ends there and is
counted (``TrainStats.range_games``). The random numbers come from a splitmix64
generator whose whole state is one uint64, saved with the network: training resumes
bit-exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numba import njit

from ... import games
from ...engine.packed import (
    EXPONENTS,
    MOVE_SCORE,
    MOVE_XOR,
    check_exponents,
    flip,
    has_move,
    max_exponent,
    mirror,
    move,
    new_game,
    pack_boards,
    spawn,
    transpose,
    unpack_boards,
)
from ...engine.rules import LEGAL_TABLE, MOVE_TABLE, flat_boards, line_cells
from ...meminfo import available_bytes
from ...settings import check_settings, setting
from . import flat_kernels
from .layouts import LAYOUT_NAMES, symmetries, tuple_layout
from .td import prefetch, td_update, weight_sum

__all__ = [
    "NETWORK_BYTES",
    "TABLE_EXPONENTS",
    "TUPLE_LAYOUTS",
    "NTupleConfig",
    "NTupleNetwork",
    "TrainStats",
    "check_memory",
    "network_bytes",
    "weights_shape",
    "pack_boards",
    "unpack_boards",
]

TABLE_EXPONENTS = EXPONENTS
"""Each cell of a tuple indexes the table with 4 bits: exponents 0..15, tiles up to 32768."""

TUPLE_LAYOUTS: dict[str, tuple[tuple[int, ...], ...]] = {
    name: tuple_layout(name, 4, 4) for name in LAYOUT_NAMES
}
"""The named layouts on the 4x4 board: cells in row-major order (0 top-left, 15
bottom-right), ascending. "4x6" is the standard network (a row and two cells below it,
the same one row down, and two 2x3 rectangles); "5x4" is Szubert & Jaśkowski's small
network (rows and 2x2 squares), 1.3 MB: for tests and quick experiments; it learns, to a
lower level than "4x6". ``layouts.tuple_layout`` places them on other boards."""

SYMMETRIES = 8
"""Symmetric images of a square board (4 of another)."""


def _game_layout(tuples: str, game: games.Game) -> tuple[tuple[int, ...], ...]:
    return tuple_layout(tuples, game.rows, game.cols)


def weights_shape(config: NTupleConfig, game: games.Game | None = None) -> tuple[int, int]:
    """(T, 16**L): the weights of ``config``'s layout on ``game``'s board (None: the default
    game, 4x4), one table per tuple, L the longest tuple's cells (a shorter tuple uses the
    first 16**length weights of its table)."""
    layout = _game_layout(config.tuples, games.get() if game is None else game)
    return len(layout), TABLE_EXPONENTS ** max(len(cells) for cells in layout)


def network_bytes(config: NTupleConfig, game: games.Game | None = None) -> int:
    """Size in bytes of the weights (float32) of ``config``'s layout on ``game``'s board."""
    tuples, table = weights_shape(config, game)
    return 4 * tuples * table


@dataclass(frozen=True)
class NTupleConfig:
    """Hyper-parameters of an n-tuple network and its TD(0) learning.

    learning_rate: the step on the value of an afterstate per update, as a fraction
        of the TD error; it is spread over the features (each of the 32 weights of
        "4x6" moves by ``learning_rate * delta / 32``), so it does not depend on the
        layout. Measured with bench/ntuple_throughput.py (30 s of training, 200 greedy
        games): 0.025, 0.05, 0.1, 0.2, 0.4, 0.8 reached mean scores 28k, 33k, 44k,
        44k, 54k, 45k and 2048 in 58, 65, 78, 81, 89, 83% of games; 0.4 is the default.
        A smaller rate may end higher after hours of training.
    optimistic_init: the initial value of every afterstate, in game score (each
        weight starts at ``optimistic_init / features``); 0 turns it off. An
        optimistic value makes unseen afterstates look good, so the greedy player
        explores them. In the first minute it does not pay: at learning rate 0.1,
        320_000 gave a mean score of 14k after 30 s and 100_000 39k, against 44k
        without, so the default is 0.
    tuples: a layout, placed for the game's board (``layouts.tuple_layout``): "4x6" (the
        standard: 268 MB on 4x4, 403 MB on 5x5, 805 MB on 6x6; lines and squares on a
        board with a side under 4) or "5x4" (1.3 MB on 4x4).
    seed: seeds the generator of the spawned tiles (any int in 0 .. 2**64 - 1).
    """

    learning_rate: float = setting(0.4, gt=0, le=1, hint="0.4 is a good start")
    optimistic_init: float = setting(0.0, ge=0, hint="0 turns it off")
    tuples: str = "4x6"
    seed: int = 0

    def __post_init__(self) -> None:
        check_settings(self)
        if self.tuples not in LAYOUT_NAMES:
            raise ValueError(
                f"unknown tuples layout {self.tuples!r}; use one of {sorted(LAYOUT_NAMES)}"
            )
        if not (isinstance(self.seed, (int, np.integer)) and 0 <= self.seed < 2**64):
            raise ValueError(f"seed must be an int in 0 .. 2**64 - 1, got {self.seed!r}")

    @property
    def features(self) -> int:
        """Lookups per value on the 4x4 board: tuples times the 8 symmetries (32 for "4x6");
        ``NTupleNetwork.features`` counts them on the network's board."""
        return SYMMETRIES * len(TUPLE_LAYOUTS[self.tuples])


NETWORK_BYTES = network_bytes(NTupleConfig())
"""Size of the default ("4x6") network's weights: 268,435,456 bytes."""


def check_memory(nbytes: int) -> None:
    """Raise MemoryError if ``nbytes`` (plus 10% headroom) exceeds MemAvailable.

    Reads /proc/meminfo; where it cannot be read (not Linux) nothing is checked.
    """
    available = available_bytes()
    if available is not None and nbytes * 1.1 > available:
        raise MemoryError(
            f"the n-tuple network needs {nbytes / 1e6:,.0f} MB but only "
            f"{available / 1e6:,.0f} MB is free; close other programs or use a smaller "
            f"layout (NTupleConfig(tuples='5x4'))"
        )


# --- packed boards: how the kernels read a tuple off a uint64 board -----------------------


def _layout_runs(layout: tuple[tuple[int, ...], ...]) -> tuple[tuple[np.uint64, ...], ...]:
    """How the kernels read each tuple's weight off a packed board: one tuple per tuple,
    ``(offset, shift, mask, shift, mask, ...)`` uint64.

    Digit k of a tuple's index is the exponent on its k-th cell, so the index is
    ``sum_k ((board >> 4 * cell_k) & 15) << 4k``. Neighbouring digits whose cells are
    neighbours too come out of the packed board with one shift and one mask, so
    ``index = OR_j (board >> shift_j) & mask_j``, and ``offset = t * 16**L`` places
    tuple t's table in the flat weights. Every tuple gets as many runs as the longest
    (a mask of 0 adds nothing); a tuple is a fixed-length numba tuple, so the kernels'
    loops over it unroll.
    """
    per_tuple: list[list[tuple[int, int]]] = []
    for cells in layout:
        if list(cells) != sorted(cells) or len(set(cells)) != len(cells):
            raise ValueError(f"tuple cells must be distinct and ascending, got {cells}")
        runs: dict[int, int] = {}
        for k, cell in enumerate(cells):
            runs[4 * (cell - k)] = runs.get(4 * (cell - k), 0) | (15 << (4 * k))
        per_tuple.append(sorted(runs.items()))
    width = max(len(runs) for runs in per_tuple)
    table = TABLE_EXPONENTS ** len(layout[0])
    return tuple(
        tuple(
            np.uint64(x)
            for x in [t * table]
            + [v for shift, mask in runs + [(0, 0)] * (width - len(runs)) for v in (shift, mask)]
        )
        for t, runs in enumerate(per_tuple)
    )


# --- compiled kernels on packed 4x4 boards ------------------------------------------------


@njit(inline="always")
def _features(board, runs, out):
    """Write the flat weight indices of a packed board's features into ``out`` (F,) int64,
    image by image (the 8 symmetries), tuple by tuple.

    ``runs[t]`` is ``(offset of tuple t's table in the flat weights, shift, mask, shift,
    mask, ...)``: the index is ``offset + OR_j (image >> shift_j) & mask_j``.
    """
    mirrored = mirror(board)
    transposed = transpose(board)
    transposed_mirrored = mirror(transposed)
    images = (
        board,
        mirrored,
        flip(board),
        flip(mirrored),
        transposed,
        transposed_mirrored,
        flip(transposed),
        flip(transposed_mirrored),
    )
    k = 0
    for image in images:
        for tuple_runs in runs:
            index = np.uint64(0)
            for j in range(1, len(tuple_runs), 2):
                index |= (image >> tuple_runs[j]) & tuple_runs[j + 1]
            out[k] = np.int64(tuple_runs[0] + index)
            k += 1


@njit(inline="always")
def _value(board, weights, runs, features):
    """V of a packed board (float32); ``features`` (F,) int64 is scratch."""
    _features(board, runs, features)
    return weight_sum(weights, features)


@njit(inline="always")
def _expand(board, weights, runs, xor, score, afters, rewards, features):
    """The four moves of a packed board: fill ``afters`` (4,) uint64, ``rewards`` (4,)
    int64 and, for the legal ones, ``features`` (4, F) int64, prefetching their weights.

    Returns False (and stops) if a move would create 2**16, beyond the tables.
    """
    transposed = transpose(board)
    for action in range(4):
        after, reward = move(board, transposed, action, xor, score)
        if reward < 0:
            return False
        afters[action] = after
        rewards[action] = reward
        if after != board:
            _features(after, runs, features[action])
            for k in range(features.shape[1]):
                prefetch(weights, features[action, k])
    return True


@njit(inline="always")
def _greedy(board, weights, afters, rewards, features):
    """``(action, reward + V(afterstate))`` of the best legal move after ``_expand``, the
    first on ties; ``(-1, -inf)`` if no move is legal."""
    best_action = -1
    best_value = np.float32(-np.inf)
    for action in range(4):
        if afters[action] != board:
            v = np.float32(rewards[action]) + weight_sum(weights, features[action])
            if v > best_value:
                best_action = action
                best_value = v
    return best_action, best_value


# slots of the game-state array the training kernel reads and writes (uint64)
_BOARD, _PREV, _HAS_PREV, _SCORE, _LENGTH = range(5)


@njit(nogil=True, cache=True)
def _train_kernel(
    moves,
    game,
    rng,
    weights,
    runs,
    step_size,
    xor,
    score,
    legal_table,
    four_probability,
    start_tiles,
    finished,
):
    """Play and learn for exactly ``moves`` moves; see ``NTupleNetwork.train``.

    ``game`` (5,) uint64 and ``rng`` (1,) uint64 are the resumable state, updated in
    place; ``weights`` is the flat table; ``four_probability`` and ``start_tiles`` the
    game's spawn rule. ``finished`` (G, 3) int64 receives score, max tile and length of
    each game that ends. Returns ``(games finished, games ended at the table's range, sum
    of |TD error|, updates)``.

    The board at the top of the loop always has a legal move: a game ends (and the
    next one starts) as soon as its board has none.
    """
    n_features = 8 * len(runs)
    afters = np.empty(4, dtype=np.uint64)
    rewards = np.empty(4, dtype=np.int64)
    features = np.empty((4, n_features), dtype=np.int64)
    prev_features = np.empty(n_features, dtype=np.int64)
    cells = np.empty(16, dtype=np.uint8)
    board = game[_BOARD]
    prev = game[_PREV]
    has_prev = game[_HAS_PREV] != 0
    if has_prev:
        _features(prev, runs, prev_features)
    game_score = np.int64(game[_SCORE])
    length = np.int64(game[_LENGTH])
    n_finished = 0
    range_games = 0
    error_sum = 0.0
    updates = 0
    played = 0
    while played < moves:
        end = False
        if not _expand(board, weights, runs, xor, score, afters, rewards, features):
            # a move could create 2**16, which the tables cannot index: the game ends
            # here, and its last afterstate keeps its value (no target is known)
            range_games += 1
            end = True
        else:
            action, value = _greedy(board, weights, afters, rewards, features)
            if has_prev:
                error_sum += abs(td_update(prev_features, value, step_size, weights))
                updates += 1
            prev = afters[action]
            prev_features[:] = features[action]
            has_prev = True
            game_score += rewards[action]
            length += 1
            played += 1
            board = spawn(prev, rng, cells, four_probability)
            if not has_move(board, legal_table):
                error_sum += abs(td_update(prev_features, 0.0, step_size, weights))
                updates += 1
                end = True
        if end:
            finished[n_finished, 0] = game_score
            finished[n_finished, 1] = np.int64(1) << max_exponent(board)
            finished[n_finished, 2] = length
            n_finished += 1
            board = new_game(rng, cells, start_tiles, four_probability)
            has_prev = False
            game_score = 0
            length = 0
    game[_BOARD] = board
    game[_PREV] = prev
    game[_HAS_PREV] = np.uint64(1 if has_prev else 0)
    game[_SCORE] = np.uint64(game_score)
    game[_LENGTH] = np.uint64(length)
    return n_finished, range_games, error_sum, updates


@njit(nogil=True, cache=True)
def _values_kernel(boards, weights, runs, out):
    """(N,) packed boards -> fill (N,) float32 ``out`` with their values."""
    features = np.empty(8 * len(runs), dtype=np.int64)
    for n in range(boards.shape[0]):
        out[n] = _value(boards[n], weights, runs, features)


@njit(nogil=True, cache=True)
def _move_values_kernel(boards, weights, runs, xor, score, out):
    """(N,) packed boards -> fill (N, 4) float32 ``out`` with reward + V(afterstate), -inf
    where illegal. Returns the first board with a move that would create 2**16, or -1."""
    afters = np.empty(4, dtype=np.uint64)
    rewards = np.empty(4, dtype=np.int64)
    features = np.empty((4, 8 * len(runs)), dtype=np.int64)
    for n in range(boards.shape[0]):
        board = boards[n]
        if not _expand(board, weights, runs, xor, score, afters, rewards, features):
            return n
        for action in range(4):
            if afters[action] == board:
                out[n, action] = -np.inf
            else:
                out[n, action] = np.float32(rewards[action]) + weight_sum(weights, features[action])
    return -1


@njit(cache=True)
def _start_board(rng, start_tiles, four_probability):
    """A packed starting board drawn from ``rng`` (1,) uint64."""
    return new_game(rng, np.empty(16, dtype=np.uint8), start_tiles, four_probability)


# --- the network ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainStats:
    """What one ``NTupleNetwork.train`` call did; finished games are in the order they ended."""

    moves: int  # moves played
    scores: np.ndarray  # (G,) int64 game score of each finished game
    max_tiles: np.ndarray  # (G,) int64 value of its largest tile
    lengths: np.ndarray  # (G,) int64 its moves
    td_error_sum: float  # sum of |TD error| over the updates, in game score
    updates: int  # TD updates made
    range_games: int  # games ended because a move could create 2**16 (beyond the tables)

    @property
    def mean_td_error(self) -> float:
        """Mean |TD error| per update (nan if there was none)."""
        return self.td_error_sum / self.updates if self.updates else math.nan

    @property
    def hit_table_range(self) -> bool:
        """Whether some game reached the tables' range (see ``range_games``)."""
        return self.range_games > 0


class NTupleNetwork:
    """An n-tuple value function over afterstates of one game, its TD(0) training game,
    and players.

    ``game`` (a ``games.Game``; None: the default, 2048 on 4x4) decides the board, the
    tuples placed on it (``layouts.tuple_layout``), the symmetries they are read on and the
    rules training plays by. ``packed`` picks the kernels: the bit-packed ones (4x4 only)
    or the flat ones (any board); None takes the packed ones where the board is 4x4. Both
    play and learn exactly alike on 4x4 (the packed ones are faster).

    The training state (current board, score and length, previous afterstate, the
    generator) lives here with the weights, so ``train`` can be called in chunks and
    a saved ``state_dict`` resumes bit-exactly.
    """

    def __init__(
        self,
        config: NTupleConfig | None = None,
        game: games.Game | None = None,
        packed: bool | None = None,
    ) -> None:
        config = NTupleConfig() if config is None else config
        game = games.get() if game is None else game
        if packed is None:
            packed = game.shape == (4, 4)
        elif packed and game.shape != (4, 4):
            raise ValueError(
                f"the packed kernels play 4x4 boards, {game.name} is {game.rows}x{game.cols}; "
                "leave packed=None"
            )
        check_memory(network_bytes(config, game))
        self.config = config
        self.game = game
        self.packed = packed
        self.layout = _game_layout(config.tuples, game)
        perms = symmetries(game.rows, game.cols)
        self.features = len(perms) * len(self.layout)  # lookups per value
        shape = weights_shape(config, game)
        if config.optimistic_init:
            self.weights = np.full(shape, config.optimistic_init / self.features, np.float32)
        else:
            self.weights = np.zeros(shape, dtype=np.float32)  # (T, 16**L), pages come lazily
        self._rng = np.array([config.seed], dtype=np.uint64)
        self._game = np.zeros(5, dtype=np.uint64)
        # the flat kernels' board and previous afterstate (the packed ones keep theirs in _game)
        self._cells = np.zeros((2, game.cells), dtype=np.uint8)
        if packed:
            self._runs = _layout_runs(self.layout)
            self._game[_BOARD] = _start_board(self._rng, game.start_tiles, game.four_probability)
        else:
            self._reads = flat_kernels.feature_reads(self.layout, perms, shape[1])
            self._lines = line_cells(game.rows, game.cols)
            flat_kernels.start_board(
                self._cells[0], self._rng, game.start_tiles, game.four_probability
            )
        self.moves = 0  # moves trained, over all calls
        self.games = 0  # games finished in training

    # -- training --

    def train(self, moves: int) -> TrainStats:
        """Play greedily and learn for exactly ``moves`` moves, continuing the current
        game; a game that ends is followed by a new one.

        ``train(a); train(b)`` plays and learns exactly as ``train(a + b)``; the games
        that end are reported by the call in which they end. One compiled call, which
        releases the GIL.
        """
        if moves < 0:
            raise ValueError(f"moves must be >= 0, got {moves}")
        game = self.game
        # a game fills the board (cells - start tiles moves) before it can end: a bound on
        # the games ending, with room to spare
        finished = np.empty(
            (moves // max(1, (game.cells - game.start_tiles) // 2) + 2, 3), np.int64
        )
        step_size = self.config.learning_rate / self.features
        if self.packed:
            n, range_games, error_sum, updates = _train_kernel(
                moves,
                self._game,
                self._rng,
                self._flat,
                self._runs,
                step_size,
                MOVE_XOR,
                MOVE_SCORE,
                LEGAL_TABLE,
                game.four_probability,
                game.start_tiles,
                finished,
            )
        else:
            n, range_games, error_sum, updates = flat_kernels.train_kernel(
                moves,
                self._cells,
                self._game,
                self._rng,
                self._flat,
                self._reads,
                step_size,
                self._lines,
                MOVE_TABLE,
                LEGAL_TABLE,
                game.four_probability,
                game.start_tiles,
                finished,
            )
        self.moves += moves
        self.games += n
        return TrainStats(
            moves=moves,
            scores=finished[:n, 0].copy(),
            max_tiles=finished[:n, 1].copy(),
            lengths=finished[:n, 2].copy(),
            td_error_sum=float(error_sum),
            updates=int(updates),
            range_games=int(range_games),
        )

    @property
    def _flat(self) -> np.ndarray:
        """The weights as one (T * 16**L,) float32 view, as the kernels index them."""
        return self.weights.reshape(-1)

    @property
    def board(self) -> np.ndarray:
        """(rows, cols) uint8 board of the current training game."""
        return self._boards()[0]

    def _boards(self) -> np.ndarray:
        """(2, rows, cols) uint8: the training game's board and previous afterstate."""
        if self.packed:
            return unpack_boards(self._game[[_BOARD, _PREV]])
        return self._cells.reshape(2, *self.game.shape).copy()

    def _flat_boards(self, boards) -> np.ndarray:
        """(N, rows, cols) uint8 boards of this game in the tables' range -> (N, cells)."""
        return check_exponents(flat_boards(boards, self.game.shape))

    # -- playing --

    def values(self, boards) -> np.ndarray:
        """(N, rows, cols) uint8 boards, each taken as an afterstate -> (N,) float32 V."""
        if not self.packed:
            flat = self._flat_boards(boards)
            out = np.empty(flat.shape[0], dtype=np.float32)
            flat_kernels.values_kernel(flat, self._flat, self._reads, out)
            return out
        packed = pack_boards(boards)
        out = np.empty(packed.shape[0], dtype=np.float32)
        _values_kernel(packed, self._flat, self._runs, out)
        return out

    def move_values(self, boards) -> np.ndarray:
        """(N, rows, cols) uint8 boards -> (N, 4) float32 reward + V(afterstate) per move in
        ``Action`` order, -inf where the move is illegal."""
        if self.packed:
            packed = pack_boards(boards)
            out = np.empty((packed.shape[0], 4), dtype=np.float32)
            bad = _move_values_kernel(packed, self._flat, self._runs, MOVE_XOR, MOVE_SCORE, out)
        else:
            flat = self._flat_boards(boards)
            out = np.empty((flat.shape[0], 4), dtype=np.float32)
            bad = flat_kernels.move_values_kernel(
                flat, self._flat, self._reads, self._lines, MOVE_TABLE, out
            )
        if bad >= 0:
            raise ValueError(_beyond_range_message(f"board {bad}"))
        return out

    def greedy_actions(self, boards) -> np.ndarray:
        """(N, rows, cols) uint8 boards -> (N,) int64 move with the largest reward +
        V(afterstate) (the first on ties), -1 where no move is legal."""
        return _argmax_or_minus_one(self.move_values(boards))

    # -- saving --

    def state_dict(self, copy: bool = True) -> dict:
        """Everything needed to resume training bit-exactly: the config's fields, the game's
        name, the weights (a copy, unless ``copy=False``: then the live table, for a caller
        that writes it out before training goes on), the current game (board, previous
        afterstate, score, length) and the generator's state, as NumPy arrays and plain
        Python values."""
        game = self._game
        board, prev = self._boards()
        return {
            **asdict(self.config),
            "game": self.game.name,
            "weights": self.weights.copy() if copy else self.weights,
            "board": board,
            "prev_afterstate": prev,
            "has_prev": bool(game[_HAS_PREV]),
            "score": int(game[_SCORE]),
            "length": int(game[_LENGTH]),
            "rng_state": int(self._rng[0]),
            "moves": self.moves,
            "games": self.games,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (from ``state_dict``); its config replaces this one's.
        A state without a game (written before games) is of the default game, 4x4.

        Raises ValueError naming what does not fit (a missing key, another layout or game).
        """
        missing = sorted({*asdict(self.config), "weights", "board", "rng_state"} - set(state))
        if missing:
            raise ValueError(f"not an n-tuple state dict: {', '.join(missing)} missing")
        config = NTupleConfig(**{k: state[k] for k in asdict(self.config)})
        game_name = state.get("game", games.DEFAULT)
        if game_name != self.game.name:
            raise ValueError(
                f"the state is of a network for {game_name}, this one plays {self.game.name}; "
                f"create NTupleNetwork(config, games.get({game_name!r}))"
            )
        if config.tuples != self.config.tuples:
            raise ValueError(
                f"the state is of a {config.tuples!r} network, this one is "
                f"{self.config.tuples!r}; create NTupleNetwork(NTupleConfig(tuples="
                f"{config.tuples!r}))"
            )
        weights = np.asarray(state["weights"])
        if weights.shape != self.weights.shape or weights.dtype != np.float32:
            raise ValueError(
                f"weights must be float32 {self.weights.shape}, got {weights.dtype} "
                f"{weights.shape}; the state dict is damaged"
            )
        boards = np.stack([np.asarray(state["board"]), np.asarray(state["prev_afterstate"])])
        game = np.zeros(5, dtype=np.uint64)
        cells = self._flat_boards(boards)  # its shape and range, checked
        if self.packed:
            game[[_BOARD, _PREV]] = pack_boards(boards)
        game[_HAS_PREV] = 1 if state["has_prev"] else 0
        game[_SCORE] = state["score"]
        game[_LENGTH] = state["length"]
        check_memory(weights.nbytes)
        self.weights = None  # let the old table go before the copy is made
        self.weights = np.array(weights, dtype=np.float32, copy=True)
        self.config = config
        self._game = game
        self._cells = cells.copy()
        self._rng = np.array([state["rng_state"]], dtype=np.uint64)
        self.moves = int(state["moves"])
        self.games = int(state["games"])

    @classmethod
    def from_state_dict(cls, state: dict) -> NTupleNetwork:
        """A network built with the config and game saved in ``state`` and loaded from it."""
        config = NTupleConfig(**{k: state[k] for k in asdict(NTupleConfig())})
        game = games.get(state.get("game", games.DEFAULT))
        network = cls(NTupleConfig(tuples=config.tuples, seed=config.seed), game)
        network.load_state_dict(state)
        return network


def _argmax_or_minus_one(q: np.ndarray) -> np.ndarray:
    """(N, 4) move values, -inf where illegal -> (N,) int64 first best move, -1 if none."""
    actions = np.argmax(q, axis=1).astype(np.int64)
    actions[np.isneginf(q).all(axis=1)] = -1
    return actions


def _beyond_range_message(where: str) -> str:
    return (
        f"a move on {where} would create the tile 65536 (exponent 16); the n-tuple tables "
        f"cover exponents 0..15 (tiles up to 32768), so this network cannot value it"
    )
