"""An n-tuple network that learns a game of the 2048 family by TD on afterstates, in
kernels compiled with numba.

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

That is TD(0); the settings (``NTupleConfig``) add what the published programs do: per-weight
rates (TC), λ-returns, stages, optimistic values, bigger tuples, several threads; ``td``
holds the step they share.

The rules are the engine's, for the network's game (``games.Game``): on 4x4
``packed_kernels`` work on boards packed in a uint64 (``engine.packed``), on any other
board ``flat_kernels`` work on flat (R*C,) boards with ``engine.rules``' kernels. The tables
hold 4-bit cells: a training game that could make the tile 65536 ends there and is
counted (``TrainStats.range_games``). The random numbers come from a splitmix64
generator whose whole state is one uint64, saved with the network: training resumes
bit-exactly.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from ... import games
from ...device import usable_cores
from ...engine.packed import (
    EXPONENTS,
    MOVE_SCORE,
    MOVE_XOR,
    check_exponents,
    pack_boards,
    unpack_boards,
)
from ...engine.rules import LEGAL_TABLE, MOVE_TABLE, flat_boards, line_cells
from ...meminfo import available_bytes
from ...settings import check_settings, setting
from . import flat_kernels, packed_kernels
from .layouts import LAYOUT_NAMES, check_layout, symmetries, tuple_layout
from .packed_kernels import BOARD, LENGTH, PENDING, PREV, SCORE, START
from .td import lambda_weights

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


MAX_STAGES = 16
"""The most sets of weights a network may have (Jaśkowski 2018 uses 16)."""


def parse_stages(text: str) -> tuple[int, ...]:
    """``NTupleConfig.stages`` -> one bit mask per stage after the first (bit e: the tile
    2**e), in order: ``"16384,16384+8192"`` -> ``(1 << 14, 1 << 14 | 1 << 13)``. ValueError
    in words for anything else (tiles must be powers of two from 4 to 32768, each stage's
    tiles a superset of the one before's, or the stages would not follow one another)."""
    if not text.strip():
        return ()
    masks: list[int] = []
    for item in text.split(","):
        mask = 0
        for tile in item.split("+"):
            tile = tile.strip()
            value = int(tile) if tile.isdigit() else 0
            if value < 4 or value > 2 ** (TABLE_EXPONENTS - 1) or value & (value - 1):
                raise ValueError(
                    f"--ntuple.stages: {tile!r} is not a tile from 4 to 32768; write the tiles "
                    "that start each stage, e.g. '16384' or '16384,16384+8192'"
                )
            mask |= 1 << (value.bit_length() - 1)
        if masks and (mask & masks[-1] != masks[-1] or mask == masks[-1]):
            raise ValueError(
                f"--ntuple.stages: stage {item.strip()!r} must hold the tiles of the stage "
                f"before it and more, e.g. '16384,16384+8192'"
            )
        masks.append(mask)
    if len(masks) + 1 > MAX_STAGES:
        raise ValueError(f"--ntuple.stages: {len(masks) + 1} stages, at most {MAX_STAGES}")
    return tuple(masks)


def weights_shape(config: NTupleConfig, game: games.Game | None = None) -> tuple[int, int]:
    """(S * T, 16**L): the weights of ``config``'s layout on ``game``'s board (None: the
    default game, 4x4), one table per tuple and stage (stage s's tuple t is row s * T + t),
    L the longest tuple's cells (a shorter tuple uses the first 16**length weights of its
    table)."""
    layout = _game_layout(config.tuples, games.get() if game is None else game)
    stages = 1 + len(parse_stages(config.stages))
    return stages * len(layout), TABLE_EXPONENTS ** max(len(cells) for cells in layout)


def network_bytes(config: NTupleConfig, game: games.Game | None = None) -> int:
    """Size in bytes of the weights (float32) of ``config``'s layout on ``game``'s board,
    with the coherence statistics (two more floats per weight) where it learns with them."""
    rows, table = weights_shape(config, game)
    return 4 * rows * table * (3 if config.coherence else 1)


@dataclass(frozen=True)
class NTupleConfig:
    """Hyper-parameters of an n-tuple network and its TD learning.

    learning_rate: the step on the value of an afterstate per update, as a fraction
        of the TD error; it is spread over the features (each of the 32 weights of
        "4x6" moves by ``learning_rate * delta / 32``), so it does not depend on the
        layout. With ``coherence`` it is the meta rate that each weight's own rate
        multiplies (1.0, the default, as in Jaśkowski 2018). Plain TD, 30 s of training,
        200 greedy games: 0.025, 0.05, 0.1, 0.2, 0.4, 0.8 reached mean scores 28k, 33k,
        44k, 44k, 54k, 45k; 0.4 is plain TD's rate (``--preset td``).
    optimistic_init: the initial value of every afterstate, in game score (each
        weight starts at ``optimistic_init / features``); 0 turns it off. An
        optimistic value makes unseen afterstates look good, so the greedy player
        explores them; it pays over long training (Guei et al. 2022's OTD), not in the
        first minutes.
    coherence: temporal coherence (TC), on by default: each weight moves at its own rate,
        ``|E| / A`` of the errors it was updated with (``td``), and the weights' statistics
        take two more floats per weight (3x the memory: 805 MB for "4x6" on 4x4). It
        learns more per move than TD(0) at its best rate and trains ~25% fewer moves/s
        (README: the recipes sweep).
    coherence_after: moves of plain TD before coherence takes over; with
        ``optimistic_init``, the OTD+TC schedule of Guei et al.
    td_lambda, td_horizon: what an afterstate is moved toward: the truncated λ-return of
        its next ``td_horizon`` moves (``td.lambda_weights``); the default, λ = 0.5 over 3
        moves, learned 16% more per move than TD(0) (README: the λ sweep). Horizon 1 is
        TD(0) whatever λ; λ = 1 with horizon n is n-step TD; 0 < λ < 1 with horizon h > 1
        is truncated TD(λ) (TC(λ) with ``coherence``; Jaśkowski 2018's delayed TC(λ)); λ =
        0 with h > 1 is TD(0) updated h - 1 moves late. A sweep over the horizon at one λ
        (``--grid ntuple.td-horizon=1,2,3``) compares them with TD(0).
    stages: tiles that start a new set of weights (multistage): "16384" gives two sets,
        the second for boards holding a 16384; "16384,16384+8192" three. A new stage's
        weights start as its predecessor's (``td``). "" is one set.
    threads: training threads sharing the weights without locks (Hogwild); 0: every
        core this process may use. One thread resumes bit-exactly; more continue
        correctly but not bit-exactly (the threads' updates interleave by timing).
    tuples: a layout, placed for the game's board (``layouts.tuple_layout``): "auto" (the
        default: "5x6" on 4x4, which beat "4x6" at equal minutes, and "4x6" elsewhere), "4x6" (the
        standard: 268 MB on 4x4, 403 MB on 5x5, 805 MB on 6x6; lines and squares on a
        board with a side under 4), "5x4" (1.3 MB on 4x4), the bigger published "5x6",
        "6x6", "8x6" (336, 403, 537 MB on 4x4), or cells "0,1,2,3;4,5,6,7".
    seed: seeds the generator of the spawned tiles (any int in 0 .. 2**64 - 1).
    """

    learning_rate: float = setting(
        1.0, gt=0, le=1, hint="1.0 with coherence (the default), 0.4 without"
    )  # TD step as a share of the error; with coherence, the meta rate
    optimistic_init: float = setting(0.0, ge=0, hint="0 turns it off")  # initial V, in score
    coherence: bool = True  # temporal coherence: per-weight rates |E|/A (3x the memory)
    coherence_after: int = setting(0, ge=0)  # moves of plain TD before coherence starts
    td_lambda: float = setting(0.5, ge=0, le=1)  # λ of the λ-return
    td_horizon: int = setting(3, ge=1, le=16)  # moves the λ-return looks ahead; 1: TD(0)
    stages: str = ""  # tiles starting each further set of weights, e.g. 16384,16384+8192
    threads: int = setting(0, ge=0, hint="0 uses every core")  # training threads, 0: all
    tuples: str = "auto"  # auto (5x6 on 4x4, else 4x6), 4x6, 5x4, 5x6, 6x6, 8x6, or cells
    seed: int = 0

    def __post_init__(self) -> None:
        check_settings(self)
        check_layout(self.tuples)
        parse_stages(self.stages)
        if not (isinstance(self.seed, (int, np.integer)) and 0 <= self.seed < 2**64):
            raise ValueError(f"seed must be an int in 0 .. 2**64 - 1, got {self.seed!r}")

    @property
    def features(self) -> int:
        """Lookups per value on the 4x4 board: tuples times the 8 symmetries (32 for "4x6");
        ``NTupleNetwork.features`` counts them on the network's board."""
        return SYMMETRIES * len(tuple_layout(self.tuples, 4, 4))


NETWORK_BYTES = network_bytes(NTupleConfig())
"""What the default network takes on 4x4: the "5x6" weights (335,544,320 bytes) and their
coherence statistics (twice that), 1,006,632,960 bytes."""


def training_threads(threads: int) -> int:
    """``NTupleConfig.threads`` -> how many threads train: 0 is every usable core."""
    return threads or usable_cores()


def check_memory(nbytes: int) -> None:
    """Raise MemoryError if ``nbytes`` (plus 10% headroom) exceeds MemAvailable.

    Reads /proc/meminfo; where it cannot be read (not Linux) nothing is checked.
    """
    available = available_bytes()
    if available is not None and nbytes * 1.1 > available:
        raise MemoryError(
            f"the n-tuple network needs {nbytes / 1e6:,.0f} MB but only "
            f"{available / 1e6:,.0f} MB is free; close other programs, or use a smaller "
            f"layout (--ntuple.tuples 5x4), fewer --ntuple.stages or no --ntuple.coherence"
        )


# --- the network ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainStats:
    """What one ``NTupleNetwork.train`` call did; finished games are in the order they ended."""

    moves: int  # moves played
    scores: np.ndarray  # (G,) int64 game score of each finished game
    max_tiles: np.ndarray  # (G,) int64 value of its largest tile
    lengths: np.ndarray  # (G,) int64 its moves
    stages: np.ndarray  # (G,) int64 the stage of its last board (0 with one set of weights)
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
    """An n-tuple value function over afterstates of one game, its TD training games, and
    players.

    ``game`` (a ``games.Game``; None: the default, 2048 on 4x4) decides the board, the
    tuples placed on it (``layouts.tuple_layout``), the symmetries they are read on and the
    rules training plays by. ``packed`` picks the kernels: the bit-packed ones (4x4 only)
    or the flat ones (any board); None takes the packed ones where the board is 4x4. Both
    play and learn exactly alike on 4x4 (the packed ones are faster).

    Training plays ``threads`` games at once (``NTupleConfig.threads``), one per thread,
    all updating the one set of weights without locks (Hogwild: a rare lost update costs
    nothing measurable). Each thread's game (current board, score and length, previous
    afterstate, its generator) lives here with the weights, so ``train`` can be called in
    chunks and a saved ``state_dict`` resumes; with one thread, bit-exactly.
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
        self.stage_masks = np.array(parse_stages(config.stages), dtype=np.int64)
        self.stage_size = len(self.layout) * shape[1] if len(self.stage_masks) else 0
        self.init = np.float32(config.optimistic_init / self.features)
        # (S * T, 16**L) float32; zeros come as lazy pages, a constant is written out
        self.weights = (
            np.full(shape, self.init, np.float32) if self.init else np.zeros(shape, np.float32)
        )
        # (S * T, 16**L, 2) float32 E and A of each weight, interleaved; None without TC
        self.coherence = np.zeros((*shape, 2), np.float32) if config.coherence else None
        if packed:
            self._runs = packed_kernels.layout_runs(self.layout)
        else:
            self._reads = flat_kernels.feature_reads(self.layout, perms, shape[1])
            self._lines = line_cells(game.rows, game.cols)
        self.threads = training_threads(config.threads)
        self._pool: ThreadPoolExecutor | None = None
        # each thread's game: its (board, newest afterstate) flat, the kernels' state slots
        # (BOARD..START), its generator, and its afterstates waiting for their targets
        self._cells = np.zeros((self.threads, 2, game.cells), dtype=np.uint8)
        self._games = np.zeros((self.threads, 6), dtype=np.uint64)
        self._rngs = np.zeros((self.threads, 1), dtype=np.uint64)
        self._make_rings()
        for worker in range(self.threads):
            self._start_game(worker, _worker_seed(config.seed, worker))
        self.moves = 0  # moves trained, over all calls
        self.games = 0  # games finished in training

    def _make_rings(self) -> None:
        """Empty rings of the afterstates waiting for their targets, one a thread, for the
        config's λ-return: features and (reward, reward + value), H + 1 long
        (``td.learn_move``), and the weights of the k-step returns."""
        config = self.config
        self._lambda = lambda_weights(config.td_lambda, config.td_horizon)
        ring = config.td_horizon + 1
        self._pending = np.zeros((self.threads, ring, self.features), dtype=np.int64)
        self._returns = np.zeros((self.threads, ring, 2), dtype=np.float64)

    def _start_game(self, worker: int, seed: int) -> None:
        """A fresh game for ``worker``, its generator seeded with ``seed``."""
        game = self.game
        self._rngs[worker, 0] = seed
        self._games[worker] = 0
        if self.packed:
            self._games[worker, BOARD] = packed_kernels.start_board(
                self._rngs[worker], game.start_tiles, game.four_probability
            )
        else:
            self._cells[worker] = 0
            flat_kernels.start_board(
                self._cells[worker, 0], self._rngs[worker], game.start_tiles, game.four_probability
            )

    # -- training --

    @property
    def _stages(self) -> tuple:
        """What the kernels take of the stages: ``(masks (K,) int64, stage_size, init)``."""
        return self.stage_masks, np.int64(self.stage_size), self.init

    @property
    def coherent(self) -> bool:
        """Whether training updates with temporal coherence now (after ``coherence_after``)."""
        return self._coherence_now().size > 0

    def _coherence_now(self) -> np.ndarray:
        """The TC statistics as the kernels take them, empty while plain TD trains."""
        config = self.config
        if self.coherence is None or self.moves < config.coherence_after:
            return _NO_COHERENCE
        return self.coherence.reshape(-1)

    def train(self, moves: int) -> TrainStats:
        """Play greedily and learn for exactly ``moves`` moves, continuing the current
        games; a game that ends is followed by a new one. The threads share the moves
        (thread 0 takes the remainder); finished games come thread by thread.

        With one thread ``train(a); train(b)`` plays and learns exactly as
        ``train(a + b)``; the games that end are reported by the call in which they end.
        Compiled calls, which release the GIL. The switch from TD to TC
        (``coherence_after``) falls on its exact move.
        """
        if moves < 0:
            raise ValueError(f"moves must be >= 0, got {moves}")
        switch = self.config.coherence_after - self.moves
        if self.coherence is not None and 0 < switch < moves:
            return _merge(self.train(switch), self.train(moves - switch))
        shares = [moves // self.threads] * self.threads
        shares[0] += moves - sum(shares)
        if self.threads == 1:
            results = [self._train_worker(0, moves)]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads - 1, "ntuple-train")
            futures = [
                self._pool.submit(self._train_worker, worker, shares[worker])
                for worker in range(1, self.threads)
            ]
            results = [self._train_worker(0, shares[0])] + [f.result() for f in futures]
        self.moves += moves
        stats = _merge(*results)
        self.games += len(stats.scores)
        return stats

    def _train_worker(self, worker: int, moves: int) -> TrainStats:
        """One thread's share of ``train``: its game, on the shared weights."""
        game = self.game
        # a game fills the board (cells - start tiles moves) before it can end: a bound on
        # the games ending, with room to spare
        finished = np.empty(
            (moves // max(1, (game.cells - game.start_tiles) // 2) + 2, 4), np.int64
        )
        step_size = self.config.learning_rate / self.features
        if self.packed:
            n, range_games, error_sum, updates = packed_kernels.train_kernel(
                moves,
                self._games[worker],
                self._rngs[worker],
                self._flat,
                self._runs,
                step_size,
                MOVE_XOR,
                MOVE_SCORE,
                LEGAL_TABLE,
                game.four_probability,
                game.start_tiles,
                finished,
                self._stages,
                self._coherence_now(),
                self._pending[worker],
                self._returns[worker],
                self._lambda,
            )
        else:
            n, range_games, error_sum, updates = flat_kernels.train_kernel(
                moves,
                self._cells[worker],
                self._games[worker],
                self._rngs[worker],
                self._flat,
                self._reads,
                step_size,
                self._lines,
                MOVE_TABLE,
                LEGAL_TABLE,
                game.four_probability,
                game.start_tiles,
                finished,
                self._stages,
                self._coherence_now(),
                self._pending[worker],
                self._returns[worker],
                self._lambda,
            )
        return TrainStats(
            moves=moves,
            scores=finished[:n, 0].copy(),
            max_tiles=finished[:n, 1].copy(),
            lengths=finished[:n, 2].copy(),
            stages=finished[:n, 3].copy(),
            td_error_sum=float(error_sum),
            updates=int(updates),
            range_games=int(range_games),
        )

    @property
    def _flat(self) -> np.ndarray:
        """The weights as one (S * T * 16**L,) float32 view, as the kernels index them."""
        return self.weights.reshape(-1)

    @property
    def board(self) -> np.ndarray:
        """(rows, cols) uint8 board of the current training game (thread 0's)."""
        return self._boards(0)[0]

    def stage(self, board: np.ndarray) -> int:
        """The stage (0 .. S - 1) whose weights value a (rows, cols) board (``td.stage_of``)."""
        present = sum(1 << int(e) for e in np.unique(board))
        return 1 + max(
            (k for k, mask in enumerate(self.stage_masks) if present & mask == mask), default=-1
        )

    def _boards(self, worker: int) -> np.ndarray:
        """(2, rows, cols) uint8: a thread's training board and previous afterstate."""
        if self.packed:
            return unpack_boards(self._games[worker, [BOARD, PREV]])
        return self._cells[worker].reshape(2, *self.game.shape).copy()

    def _flat_boards(self, boards) -> np.ndarray:
        """(N, rows, cols) uint8 boards of this game in the tables' range -> (N, cells)."""
        return check_exponents(flat_boards(boards, self.game.shape))

    # -- playing --

    def values(self, boards) -> np.ndarray:
        """(N, rows, cols) uint8 boards, each taken as an afterstate -> (N,) float32 V."""
        if not self.packed:
            flat = self._flat_boards(boards)
            out = np.empty(flat.shape[0], dtype=np.float32)
            flat_kernels.values_kernel(flat, self._flat, self._reads, out, self._stages)
            return out
        packed = pack_boards(boards)
        out = np.empty(packed.shape[0], dtype=np.float32)
        packed_kernels.values_kernel(packed, self._flat, self._runs, out, self._stages)
        return out

    def move_values(self, boards) -> np.ndarray:
        """(N, rows, cols) uint8 boards -> (N, 4) float32 reward + V(afterstate) per move in
        ``Action`` order, -inf where the move is illegal."""
        if self.packed:
            packed = pack_boards(boards)
            out = np.empty((packed.shape[0], 4), dtype=np.float32)
            bad = packed_kernels.move_values_kernel(
                packed, self._flat, self._runs, MOVE_XOR, MOVE_SCORE, out, self._stages
            )
        else:
            flat = self._flat_boards(boards)
            out = np.empty((flat.shape[0], 4), dtype=np.float32)
            bad = flat_kernels.move_values_kernel(
                flat, self._flat, self._reads, self._lines, MOVE_TABLE, out, self._stages
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
        """Everything needed to resume training: the config's fields, the game's name, the
        weights and coherence statistics (``coherence_stats``; copies, unless ``copy=False``:
        then the live tables, for a caller that writes them out before training goes on),
        thread 0's game (board, previous afterstate, score, length, generator) and, with more
        threads, the others' (``thread_boards`` (W-1, 2, rows, cols) uint8, ``thread_games``
        (W-1, 4) int64: has_prev, score, length and the generator's bits) and, with a
        λ-return (``td_horizon`` > 1), every thread's afterstates that wait for their targets,
        oldest first (``td_pending`` (W, H, F) int64 features, ``td_returns`` (W, H, 2)
        float64, ``td_pending_count`` (W,) int64), as NumPy arrays and plain Python values."""
        game = self._games[0]
        board, prev = self._boards(0)
        keep = (lambda a: a.copy()) if copy else (lambda a: a)
        state = {
            **asdict(self.config),
            "game": self.game.name,
            "weights": keep(self.weights),
            "board": board,
            "prev_afterstate": prev,
            "has_prev": bool(game[PENDING]),
            "score": int(game[SCORE]),
            "length": int(game[LENGTH]),
            "rng_state": int(self._rngs[0, 0]),
            "moves": self.moves,
            "games": self.games,
        }
        if self.coherence is not None:
            state["coherence_stats"] = keep(self.coherence)
        if self.threads > 1:
            others = range(1, self.threads)
            state["thread_boards"] = np.stack([self._boards(w) for w in others])
            slots = self._games[1:][:, [PENDING, SCORE, LENGTH]].astype(np.int64)
            slots[:, 0] = slots[:, 0] > 0  # has_prev
            state["thread_games"] = np.concatenate([slots, self._rngs[1:].view(np.int64)], 1)
        horizon = self.config.td_horizon
        if horizon > 1:
            starts = self._games[:, START].astype(np.int64)
            rows = (starts[:, None] + np.arange(horizon)) % (horizon + 1)  # oldest first
            workers = np.arange(self.threads)[:, None]
            state["td_pending"] = self._pending[workers, rows]
            state["td_returns"] = self._returns[workers, rows]
            state["td_pending_count"] = self._games[:, PENDING].astype(np.int64)
        return state

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (from ``state_dict``); its config replaces this one's but
        for ``threads``, which stays this network's: saved games of threads it lacks are
        dropped, threads it has more of start fresh games. A state without a game (written
        before games) is of the default game, 4x4; one without the later settings
        (coherence, stages, threads) trained with their defaults, on one thread.

        Raises ValueError naming what does not fit (a missing key, another layout or game).
        """
        missing = sorted(
            {"learning_rate", "tuples", "seed", "weights", "board", "rng_state"} - set(state)
        )
        if missing:
            raise ValueError(f"not an n-tuple state dict: {', '.join(missing)} missing")
        config = config_of_state(state, threads=self.config.threads)
        game_name = state.get("game", games.DEFAULT)
        if game_name != self.game.name:
            raise ValueError(
                f"the state is of a network for {game_name}, this one plays {self.game.name}; "
                f"create NTupleNetwork(config, games.get({game_name!r}))"
            )
        for name in ("tuples", "stages", "coherence"):
            if getattr(config, name) != getattr(self.config, name):
                raise ValueError(
                    f"the state is of a network with {name} {getattr(config, name)!r}, this "
                    f"one has {getattr(self.config, name)!r}; create NTupleNetwork(NTupleConfig("
                    f"{name}={getattr(config, name)!r}))"
                )
        weights = np.asarray(state["weights"])
        if weights.shape != self.weights.shape or weights.dtype != np.float32:
            raise ValueError(
                f"weights must be float32 {self.weights.shape}, got {weights.dtype} "
                f"{weights.shape}; the state dict is damaged"
            )
        coherence = state.get("coherence_stats")
        if config.coherence and (
            coherence is None or np.asarray(coherence).shape != self.coherence.shape
        ):
            raise ValueError(
                f"coherence must be float32 {self.coherence.shape}; the state dict is damaged"
            )
        boards = np.stack([np.asarray(state["board"]), np.asarray(state["prev_afterstate"])])
        # the other threads' games, if it had more than one
        more_boards = state.get("thread_boards", np.zeros((0, 2, *self.game.shape), np.uint8))
        more_games = np.asarray(state.get("thread_games", np.zeros((0, 4), np.int64)))
        saved = [boards, *np.asarray(more_boards)]
        rows = [[int(state["has_prev"]), int(state["score"]), int(state["length"])]]
        rows += more_games[:, :3].tolist()
        rngs = [np.uint64(state["rng_state"]), *more_games[:, 3].view(np.uint64)]
        cells = [self._flat_boards(b) for b in saved]  # their shape and range, checked
        pending, returns, counts = self._saved_pending(state, config, len(saved))
        check_memory(network_bytes(config, self.game))
        self.weights = None  # let the old tables go before the copies are made
        self.weights = np.array(weights, dtype=np.float32, copy=True)
        if config.coherence:
            self.coherence = None
            self.coherence = np.array(coherence, dtype=np.float32, copy=True)
        self.config = config
        self._make_rings()  # the saved λ-return, whatever this network was built with
        self.moves = int(state["moves"])
        self.games = int(state["games"])
        for worker in range(self.threads):
            if worker >= len(saved):  # a thread the saved run did not have: a fresh game
                self._start_game(worker, _worker_seed(config.seed, worker) ^ self.moves)
                continue
            self._cells[worker] = cells[worker]
            self._games[worker] = 0
            if self.packed:
                self._games[worker, [BOARD, PREV]] = pack_boards(saved[worker])
            self._games[worker, [PENDING, SCORE, LENGTH]] = rows[worker]
            self._rngs[worker, 0] = rngs[worker]
            if pending is not None:
                self._pending[worker, : len(pending[worker])] = pending[worker]
                self._returns[worker, : len(pending[worker])] = returns[worker]
                self._games[worker, PENDING] = counts[worker]
            elif rows[worker][0]:  # TD(0): the previous afterstate waits for its target
                self._pending[worker, 0] = self._features_of(cells[worker][1:])[0]

    def _saved_pending(self, state: dict, config: NTupleConfig, workers: int) -> tuple:
        """``(td_pending, td_returns, td_pending_count)`` of a state with a λ-return, checked
        against this network (``(None, None, None)`` for TD(0): its one waiting afterstate
        is the saved previous one)."""
        horizon = config.td_horizon
        if horizon == 1:
            return None, None, None
        pending = np.asarray(state.get("td_pending", np.zeros(0)))
        returns = np.asarray(state.get("td_returns", np.zeros(0)))
        counts = np.asarray(state.get("td_pending_count", np.zeros(0)))
        shapes = {
            "td_pending": (pending, (workers, horizon, self.features)),
            "td_returns": (returns, (workers, horizon, 2)),
            "td_pending_count": (counts, (workers,)),
        }
        for name, (array, shape) in shapes.items():
            if array.shape != shape:
                raise ValueError(
                    f"{name} must be {shape} for td_horizon {horizon}, got {array.shape}; "
                    "the state dict is damaged"
                )
        if (
            not ((counts >= 0) & (counts <= horizon)).all()
            or not ((pending >= 0) & (pending < self.weights.size)).all()
        ):
            raise ValueError("td_pending is out of range; the state dict is damaged")
        return pending.astype(np.int64), returns.astype(np.float64), counts.astype(np.uint64)

    def _features_of(self, cells: np.ndarray) -> np.ndarray:
        """(N, F) int64 features of flat boards (N, R*C) uint8, as training indexes them."""
        out = np.empty((len(cells), self.features), dtype=np.int64)
        masks, size = self.stage_masks, np.int64(self.stage_size)
        if self.packed:
            packed_kernels.features_kernel(
                pack_boards(cells.reshape(-1, 4, 4)), self._runs, out, masks, size
            )
        else:
            flat_kernels.features_kernel(cells, self._reads, out, masks, size)
        return out

    @classmethod
    def from_state_dict(cls, state: dict, threads: int = 1) -> NTupleNetwork:
        """A network built with the config and game saved in ``state`` and loaded from it,
        training on ``threads`` threads (a player needs one)."""
        config = config_of_state(state, threads=threads)
        game = games.get(state.get("game", games.DEFAULT))
        network = cls(config, game)
        network.load_state_dict(state)
        return network


_NO_COHERENCE = np.zeros(0, dtype=np.float32)


_BEFORE_SETTINGS = {"threads": 1, "coherence": False, "td_lambda": 0.0, "td_horizon": 1}
"""What trained every state written before these settings existed (the others' defaults
are what trained it: no stages, TD from the first move)."""


def saved_settings(state: dict) -> dict:
    """The ``NTupleConfig`` fields saved in a state dict (or checkpoint field), unchecked; a
    setting added after it was written takes the value that trained it then."""
    return {k: state.get(k, _BEFORE_SETTINGS.get(k, v)) for k, v in asdict(NTupleConfig()).items()}


def config_of_state(state: dict, threads: int | None = None) -> NTupleConfig:
    """The ``NTupleConfig`` saved in a state dict (``saved_settings``); ``threads`` replaces
    the saved one where given."""
    fields = saved_settings(state)
    if threads is not None:
        fields["threads"] = threads
    return NTupleConfig(**fields)


def _worker_seed(seed: int, worker: int) -> int:
    """Thread ``worker``'s generator seed: the config's for thread 0 (as with one thread),
    spread by the golden-ratio step of splitmix64 for the others."""
    return (seed + worker * 0x9E3779B97F4A7C15 * 0x5851F42D) % 2**64


def _merge(*parts: TrainStats) -> TrainStats:
    """One ``TrainStats`` of several calls' or threads', their games in order."""
    return TrainStats(
        moves=sum(p.moves for p in parts),
        scores=np.concatenate([p.scores for p in parts]),
        max_tiles=np.concatenate([p.max_tiles for p in parts]),
        lengths=np.concatenate([p.lengths for p in parts]),
        stages=np.concatenate([p.stages for p in parts]),
        td_error_sum=sum(p.td_error_sum for p in parts),
        updates=sum(p.updates for p in parts),
        range_games=sum(p.range_games for p in parts),
    )


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
