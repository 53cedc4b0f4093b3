"""Expectimax at play time over any learner's value function, for every game of the family.

The one search of the package: the PPO transformer and the n-tuple network both play
through it (``Agent.search_policy``), on any board a ``games.Game`` describes. A learner
hands search a ``ValueModel``: a batched ``values(boards)``, whether those values score
*afterstates* (the board right after a move, before the new tile: n-tuple TD networks)
or *states* (the board after the new tile, the player to move: an actor-critic's value
head), and the game, whose board shape and spawn rule the tree follows. Search looks
``depth`` plies ahead, a ply being one move and the tile spawned after it::

    Q_d(s, a) = r(s, a) + discount * C_d(after(s, a))       (-inf if a is illegal in s)
    C_1(x)    = V(x)                                        afterstate models
    C_1(x)    = E_spawn[ W(s') ],  W(s') = V(s')            state models
    C_d(x)    = E_spawn[ W(s') ],  W(s') = max_a' Q_{d-1}(s', a')    d > 1
    W(s')     = terminal_value (0 by default) where s' has no legal move

``E_spawn`` weighs every empty cell of ``x`` equally, a 2 with probability
``1 - p`` and a 4 with ``p = game.four_probability`` (0.1 in 2048). Depth 1 is one
move: greedy over afterstate values, or over the expected value of the states the
spawn makes.

The tree is expanded one level at a time over the whole batch, in compiled loops: every
board's four moves (the engine's ``rules.move_one``), then every spawn of every
afterstate. Each level's boards go through a transposition table (open addressing on
the boards' Zobrist keys), so a board reached by several paths, from one root or from
several, is expanded and scored once. The leaves are scored in one call to ``values``
per slice of the last level (a torch model sees thousands of boards at a time), or, for
an afterstate model that has it, in one call to ``move_values``: the last move and its
value fused in the learner's compiled kernel (the n-tuple network's), which saves the
last level of afterstates. Levels wider than ``max_boards`` spawned boards are processed
in slices, which bounds memory at about ``(5 * cells + 150) bytes * max_boards`` per ply
below the root (some 15 MB per ply on 4x4 at the default), plus what ``values`` needs
for one call, which gets at most ``4 * max_boards`` boards.

At play time a move may be given a budget instead of a depth (``SearchBudget``,
``search_policy(model, seconds=..., nodes=...)``): iterative deepening searches depth 1,
2, 3, ... up to a cap and keeps the answer of the deepest depth that completed. Depth 1
always completes; a deeper one is started only if its cost, predicted from the last
ones (each ply costs some 30 times the one before on 4x4), fits what is left, and is
abandoned mid-way if the clock or the node count runs out all the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
from numba import njit

from .. import games
from .env import RewardConfig
from .rules import (
    FAST_LIMIT,
    MAX_SIDE,
    MOVE_TABLE,
    legal_mask,
    line_cells,
    max_exponent,
    move_one,
)

if TYPE_CHECKING:
    from ..model import GameTransformer

__all__ = [
    "MAX_BOARDS",
    "MAX_BUDGET_DEPTH",
    "MAX_DEPTH",
    "Deepening",
    "SearchBudget",
    "SearchPolicy",
    "ValueModel",
    "check_play_depth",
    "deepening_values",
    "expectimax_actions",
    "expectimax_values",
    "search_policy",
    "shaped_reward",
    "transformer_value_model",
]

MAX_BOARDS = 1 << 16
"""Default number of spawned boards one slice of a search level may hold."""

MAX_DEPTH = 3
"""The deepest fixed-depth search whole games are played with (``search_policy``,
``g2048lab eval --search``; one with a budget may go to ``MAX_BUDGET_DEPTH``). Each move
deeper costs some 30 times more on 4x4 (more on larger boards): on one CPU thread a move
at depth 3 takes about 0.1-0.5 s per board for the tiny transformer, under a millisecond
for a small n-tuple network; at depth 4 seconds, so hours for one game.
``expectimax_values`` itself takes any depth, for looking at a few boards."""

MAX_BUDGET_DEPTH = 8
"""The deepest a search with a time or node budget may go (its default cap): the budget,
not the depth, bounds the cost of a move."""

GROWTH = 30.0
"""The assumed ratio of one depth's spawned boards to the one before's, until two depths
have been measured (about 30 on 4x4 mid-game boards)."""

MIN_RATE = 1e-9
"""The least seconds per spawned board a measured rate is taken as (timer noise can
make two depths' difference 0 or less)."""

DEADLINE_MAX_BOARDS = 1 << 13
"""Spawned boards per slice of a search with a time budget (``max_boards``): the deadline
is looked at between slices, and a slice of the 4x6 network's leaves takes some 10 ms."""

STALE_RATE = 0.5
"""What a rate from an earlier call is multiplied by when it kept a depth from starting:
one slow measurement (a compile, a busy moment) does not keep search shallow for good,
it is tried again a few moves later and measured afresh."""

RewardFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ValueModel:
    """What search needs of a learner: a batched value function, its units, its game.

    values: (N, R, C) uint8 boards -> (N,) float values. Search only asks it about
        boards with a legal move (``of="state"``) or about afterstates
        (``of="afterstate"``).
    of: ``"afterstate"`` if ``values`` scores boards right after a move, before the
        spawn; ``"state"`` if it scores boards after the spawn, the player to move.
    discount: applied per move to everything that follows the move's reward.
    reward: ``(boards, afterstates, scores) -> (N,) float`` the reward of each move in
        the units of ``values``, from the (N, R, C) boards before the move, the (N, R, C)
        afterstates and the (N,) int64 game score of the move; None: the game score.
    terminal_value: ``W`` of a spawned board with no legal move. A reward paid on the
        move that ends the game (``RewardConfig.game_over_penalty``) goes here, divided
        by ``discount``, since the move's reward does not know the spawn yet.
    move_values: optional, afterstate models only: (N, R, C) boards -> (N, 4) ``Q_1``,
        ``reward + discount * values(afterstate)`` of each move in ``Action`` order,
        -inf where illegal, computed in one go (a compiled kernel); search then scores
        its last ply with it. It must agree with ``values`` and ``reward``.
    game: the game whose rules the tree follows: the board shape and the spawn rule.
    """

    values: Callable[[np.ndarray], np.ndarray]
    of: Literal["afterstate", "state"]
    discount: float = 1.0
    reward: RewardFn | None = None
    terminal_value: float = 0.0
    move_values: Callable[[np.ndarray], np.ndarray] | None = None
    game: games.Game = field(default_factory=games.get)

    def __post_init__(self) -> None:
        if self.of not in ("afterstate", "state"):
            raise ValueError(f"ValueModel.of must be 'afterstate' or 'state', got {self.of!r}")
        if not 0 < self.discount <= 1:
            raise ValueError(f"ValueModel.discount must be in (0, 1], got {self.discount}")
        if self.move_values is not None and self.of != "afterstate":
            raise ValueError("ValueModel.move_values is for afterstate models (of='afterstate')")


def expectimax_values(
    boards: np.ndarray, model: ValueModel, depth: int, max_boards: int = MAX_BOARDS
) -> np.ndarray:
    """(N, R, C) uint8 boards of ``model.game`` -> (N, 4) float64 ``Q_depth`` of each move in
    ``Action`` order, ``-inf`` for illegal moves (all four on a board with no legal move).

    ``depth`` >= 1 plies (see the module docstring); ``max_boards`` bounds memory.
    """
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"depth must be an int >= 1 (plies; 1 is greedy), got {depth!r}")
    return _q_values(_checked_flat(boards, model, max_boards), model, int(depth), max_boards)


def _checked_flat(boards: np.ndarray, model: ValueModel, max_boards: int) -> np.ndarray:
    """(N, R, C) uint8 boards of ``model.game`` -> (N, cells), or ValueError saying why not."""
    game = model.game
    if max_boards < 2 * (game.cells - 1):
        raise ValueError(
            f"max_boards must be at least {2 * (game.cells - 1)} (one afterstate's spawns), "
            f"got {max_boards}"
        )
    boards = np.asarray(boards)
    if boards.ndim != 3 or boards.shape[1:] != game.shape or boards.dtype != np.uint8:
        rows, cols = game.shape
        raise ValueError(
            f"boards must be (N, {rows}, {cols}) uint8 exponents for {game.name}, got "
            f"{boards.dtype} {boards.shape}; use board[None] for one board"
        )
    return np.ascontiguousarray(boards).reshape(-1, game.cells)


def expectimax_actions(
    boards: np.ndarray, model: ValueModel, depth: int, max_boards: int = MAX_BOARDS
) -> np.ndarray:
    """(N, R, C) uint8 boards -> (N,) int64 move of highest ``Q_depth``, the first in
    ``Action`` order on a tie; -1 for a board with no legal move."""
    return _best_moves(expectimax_values(boards, model, depth, max_boards))


def _best_moves(q: np.ndarray) -> np.ndarray:
    """(N, 4) Q -> (N,) int64 first best move, -1 where all four are -inf."""
    actions = q.argmax(axis=1)
    actions[np.isneginf(q).all(axis=1)] = -1
    return actions


def check_play_depth(depth: int, budgeted: bool = False) -> None:
    """ValueError saying why not, unless whole games can be played ``depth`` moves deep:
    1 to ``MAX_DEPTH``, or with a time or node budget (``budgeted``) a cap of 1 to
    ``MAX_BUDGET_DEPTH``."""
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"search depth must be a whole number of moves, at least 1, got {depth!r}")
    if budgeted and depth > MAX_BUDGET_DEPTH:
        raise ValueError(
            f"search depth cap {depth} is too deep: use 1 to {MAX_BUDGET_DEPTH} (the time or "
            "node budget bounds each move)"
        )
    if not budgeted and depth > MAX_DEPTH:
        raise ValueError(
            f"search depth {depth} is too deep: use 1 to {MAX_DEPTH} (each move deeper costs "
            "some 30 times more; at depth 4 a move takes seconds, a game hours), or give a "
            "time or node budget per move"
        )


# --- play time: a depth, or a budget per move through iterative deepening -------------------


@dataclass(frozen=True)
class SearchBudget:
    """How far search looks for each move.

    depth: the depth (moves, 1 = greedy) without a budget; with one, the deepest that
        iterative deepening may reach. None: ``MAX_DEPTH`` without a budget,
        ``MAX_BUDGET_DEPTH`` with one.
    seconds: wall-clock seconds per board and move (a call on N boards gets N times
        this), or None.
    nodes: spawned boards (the distinct boards of the chance levels, summed over every
        depth searched) per board and move, or None.

    Depth 1 is always searched, whatever the budget.
    """

    depth: int | None = None
    seconds: float | None = None
    nodes: int | None = None

    def __post_init__(self) -> None:
        if self.seconds is not None and not (
            isinstance(self.seconds, (int, float)) and 0 < self.seconds < float("inf")
        ):
            raise ValueError(f"search seconds per move must be above 0, got {self.seconds!r}")
        if self.nodes is not None and (
            isinstance(self.nodes, bool)
            or not isinstance(self.nodes, (int, np.integer))
            or self.nodes < 1
        ):
            raise ValueError(
                f"search nodes per move must be a whole number >= 1, got {self.nodes!r}"
            )
        if self.depth is not None:
            check_play_depth(self.depth, self.budgeted)

    @property
    def budgeted(self) -> bool:
        """Whether a time or node budget decides the depth (iterative deepening)."""
        return self.seconds is not None or self.nodes is not None

    @property
    def cap(self) -> int:
        """The fixed depth, or the deepest iterative deepening may go."""
        if self.depth is not None:
            return self.depth
        return MAX_BUDGET_DEPTH if self.budgeted else MAX_DEPTH

    def describe(self) -> str:
        """A few words: "search depth 2", "search 0.1 s per move, depth at most 8"."""
        if not self.budgeted:
            return f"search depth {self.cap}"
        parts = []
        if self.seconds is not None:
            parts.append(f"{self.seconds:g} s")
        if self.nodes is not None:
            parts.append(f"{self.nodes:,} nodes")
        return f"search {' and '.join(parts)} per move, depth at most {self.cap}"


@dataclass(frozen=True)
class Deepening:
    """What iterative deepening found for a batch of boards.

    q: (N, 4) float64 ``Q_depth`` of the deepest completed depth, -inf where illegal.
    depth: that depth (every board of the batch is searched to the same depth).
    nodes: spawned boards of the completed depths, summed.
    seconds: wall-clock time of the call.
    rate: seconds per spawned board the last depths took (the marginal cost), None if
        unknown; the next call's ``rate``.
    """

    q: np.ndarray
    depth: int
    nodes: int
    seconds: float
    rate: float | None = None


def deepening_values(
    boards: np.ndarray,
    model: ValueModel,
    budget: SearchBudget,
    max_boards: int = MAX_BOARDS,
    rate: float | None = None,
) -> Deepening:
    """Iterative deepening over (N, R, C) uint8 boards within ``budget`` (N times its
    per-board seconds and nodes): depth 1, 2, ... up to ``budget.cap``, keeping the
    deepest depth that completed.

    A depth is started only if its predicted cost fits what is left. Its spawned boards:
    the last depth's times the last ratio of two depths (``GROWTH`` before two are
    known; after depth 1 of an afterstate model, which spawns nothing, the count of the
    first level's spawns). Its time: the last depth's plus ``rate`` seconds per spawned
    board more, ``rate`` measured between the last two depths of this call, else the
    one given (``Deepening.rate`` of an earlier call: ``SearchPolicy`` passes it on from
    move to move; halved, ``STALE_RATE``, each time it keeps a depth from starting),
    else unknown, and the depth is tried. A depth that overruns all the same is
    abandoned between slices (and its rate so far kept), so the nodes reported
    never exceed the budget and the time exceeds it by at most one slice's work (a time
    budget slices levels at ``DEADLINE_MAX_BOARDS`` spawned boards at most).
    """
    start = time.perf_counter()
    flat = _checked_flat(boards, model, max_boards)
    if budget.seconds is not None:  # the deadline is looked at between slices
        max_boards = max(min(max_boards, DEADLINE_MAX_BOARDS), 2 * (model.game.cells - 1))
    n = flat.shape[0]
    max_nodes = None if budget.nodes is None else n * budget.nodes
    deadline = None if budget.seconds is None else start + n * budget.seconds
    tally = _Tally()
    q = _q_values(flat, model, 1, max_boards, tally)  # depth 1 always completes
    depth, spent, measured = 1, tally.nodes, False
    counts, took = [tally.nodes], [time.perf_counter() - start]  # per completed depth
    while depth < budget.cap and budget.budgeted and n:
        if counts[-1] == 0:  # depth 1 of an afterstate model: the first level's spawns
            guess = _first_spawns(flat, model)
        elif len(counts) >= 2 and counts[-2] > 0:
            guess = counts[-1] * counts[-1] / counts[-2]
        else:
            guess = counts[-1] * GROWTH
        if max_nodes is not None and spent + guess > max_nodes:
            break
        # an unknown rate: the depth is tried, and the deadline stops it if it must
        guess_seconds = 0.0 if rate is None else took[-1] + rate * (guess - counts[-1])
        if deadline is not None and time.perf_counter() + guess_seconds > deadline:
            # a rate from an earlier call (a compile, a busy moment?) is trusted less
            if rate is not None and not measured:
                rate = rate * STALE_RATE
            break
        left = None if max_nodes is None else max_nodes - spent
        tally = _Tally(left, deadline)
        began = time.perf_counter()
        try:
            deeper = _q_values(flat, model, depth + 1, max_boards, tally)
        except _OutOfBudget:
            if tally.nodes:  # what it cost so far: a rate, if an upper one
                rate, measured = (time.perf_counter() - began) / tally.nodes, True
            break
        q, depth, spent = deeper, depth + 1, spent + tally.nodes
        counts.append(tally.nodes)
        took.append(time.perf_counter() - began)
        if counts[-1] > counts[-2]:  # the marginal cost: fixed costs per call cancel
            rate = max((took[-1] - took[-2]) / (counts[-1] - counts[-2]), MIN_RATE)
            measured = True
    return Deepening(q, depth, spent, time.perf_counter() - start, rate)


class SearchPolicy:
    """A policy for ``evaluation.evaluate``: the best move of an expectimax search of each
    board, to a fixed depth or within a budget (``SearchBudget``), -1 where no move is
    legal. It counts what it did: ``boards`` searched, ``mean_depth`` reached, ``nodes``
    (spawned boards, with a budget)."""

    def __init__(self, model: ValueModel, budget: SearchBudget, max_boards: int = MAX_BOARDS):
        self.model, self.budget, self.max_boards = model, budget, max_boards
        self.boards = 0
        self.depths = 0  # sum over searched boards of the depth reached
        self.nodes = 0
        self.rate: float | None = None  # seconds per spawned board, from move to move

    def __call__(self, obs: dict) -> np.ndarray:
        boards = obs["board"]
        if self.budget.budgeted:
            found = deepening_values(boards, self.model, self.budget, self.max_boards, self.rate)
            q, depth, self.rate = found.q, found.depth, found.rate
            self.nodes += found.nodes
        else:
            depth = self.budget.cap
            q = expectimax_values(boards, self.model, depth, self.max_boards)
        self.boards += len(boards)
        self.depths += depth * len(boards)
        return _best_moves(q)

    @property
    def mean_depth(self) -> float | None:
        """Mean depth reached per board and move, None before the first move."""
        return self.depths / self.boards if self.boards else None


def search_policy(
    model: ValueModel,
    depth: int | None = None,
    seconds: float | None = None,
    nodes: int | None = None,
    max_boards: int = MAX_BOARDS,
) -> SearchPolicy:
    """A policy for ``evaluation.evaluate`` that plays the best move of an expectimax
    search: ``depth`` moves deep (at most ``MAX_DEPTH``; None: ``MAX_DEPTH``), or, given
    ``seconds`` or ``nodes`` per board and move, as deep as that budget allows (iterative
    deepening, ``depth`` then the cap, at most ``MAX_BUDGET_DEPTH``). See ``SearchBudget``."""
    return SearchPolicy(model, SearchBudget(depth, seconds, nodes), max_boards)


class _OutOfBudget(Exception):
    """A depth of iterative deepening ran out of time or nodes before it completed."""


class _Tally:
    """Counts the spawned boards of one search and stops it (``_OutOfBudget``) past
    ``max_nodes`` or ``deadline`` (a ``time.perf_counter()`` value)."""

    def __init__(self, max_nodes: int | None = None, deadline: float | None = None):
        self.nodes, self.max_nodes, self.deadline = 0, max_nodes, deadline

    def spend(self, nodes: int) -> None:
        if self.max_nodes is not None and self.nodes + nodes > self.max_nodes:
            raise _OutOfBudget
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise _OutOfBudget
        self.nodes += nodes


def _first_spawns(flat: np.ndarray, model: ValueModel) -> int:
    """Spawned boards of the first chance level below (n, cells) roots, before the
    transposition table merges the same ones: one per empty cell and tile of each distinct
    afterstate."""
    after = _moves(flat, line_cells(*model.game.shape), MOVE_TABLE)[0]
    p = model.game.four_probability
    kinds = (1 if p < 1 else 0) + (1 if p > 0 else 0)
    return kinds * int((after == 0).sum())


# --- the tree, one level at a time ----------------------------------------------------------


def _q_values(
    boards: np.ndarray, model: ValueModel, depth: int, max_boards: int, tally: _Tally | None = None
) -> np.ndarray:
    """(n, cells) flat boards -> (n, 4) Q_depth, -inf for illegal moves (all four on a board
    with no legal move). ``tally`` counts the spawned boards and may stop the search."""
    if depth == 1 and model.move_values is not None:
        return _call_move_values(model, boards)
    after, pairs, inverse, scores = _moves(boards, line_cells(*model.game.shape), MOVE_TABLE)
    q = np.full(4 * boards.shape[0], -np.inf)
    if pairs.size:
        rewards = _rewards(model, boards[pairs // 4], after[inverse], scores)
        chance = _chance_values(after, model, depth, max_boards, tally)
        q[pairs] = rewards + model.discount * chance[inverse]
    return q.reshape(-1, 4)


def _chance_values(
    after: np.ndarray, model: ValueModel, depth: int, max_boards: int, tally: _Tally | None
) -> np.ndarray:
    """(m, cells) distinct afterstates -> (m,) C_depth, in slices of at most ``max_boards``
    spawns."""
    if depth == 1 and model.of == "afterstate":
        return _call_values(model, after)
    if 2 * after.size <= max_boards:  # two spawns per cell at most: one slice
        return _chance_slice(after, model, depth, max_boards, tally)
    spawns = np.cumsum(2 * (after == 0).sum(axis=1))  # (m,) spawned boards up to each afterstate
    out = np.empty(after.shape[0])
    start = 0
    while start < after.shape[0]:
        before = spawns[start - 1] if start else 0
        stop = max(int(np.searchsorted(spawns, before + max_boards, side="right")), start + 1)
        out[start:stop] = _chance_slice(after[start:stop], model, depth, max_boards, tally)
        start = stop
    return out


def _chance_slice(
    after: np.ndarray, model: ValueModel, depth: int, max_boards: int, tally: _Tally | None
) -> np.ndarray:
    """(m, cells) afterstates -> (m,) expectation over their spawns of W (see the module
    docstring)."""
    children, inverse, probs, parents = _spawns(after, model.game.four_probability)
    if tally is not None:
        tally.spend(children.shape[0])
    if depth == 1:  # a state model's leaves: V where a move is left
        alive = legal_mask(children.reshape(-1, *model.game.shape)).any(axis=1)
        w = np.full(children.shape[0], model.terminal_value)
        w[alive] = _call_values(model, children[alive])
    else:  # a board with no legal move has Q = -inf for all four moves
        q = _q_values(children, model, depth - 1, max_boards, tally)
        w = _best_or(q, model.terminal_value)
    return _expectation(w, inverse, probs, parents, after.shape[0])


# --- compiled: the moves and spawns of a level, through its transposition table ------------


@njit(nogil=True, cache=True)
def _moves(boards, lines, move_table):
    """Every legal move of each of (n, cells) uint8 boards, ``lines = rules.line_cells(R, C)``.

    Returns ``(after (u, cells) uint8, pairs (k,) int64, inverse (k,) int64, scores (k,)
    int64)``: the distinct afterstates, and for each of the k legal (board, move) pairs
    its index ``4 * board + move``, its afterstate ``after[inverse]`` and its game score.
    """
    n, cells = boards.shape
    slid = np.empty((4 * n, cells), dtype=np.uint8)
    pairs = np.empty(4 * n, dtype=np.int64)
    scores = np.empty(4 * n, dtype=np.int64)
    k = 0
    for i in range(n):
        fast = max_exponent(boards[i]) < FAST_LIMIT
        for action in range(4):
            score = move_one(boards[i], slid[k], action, fast, move_table, lines)[0]
            for c in range(cells):
                if slid[k, c] != boards[i, c]:
                    pairs[k] = 4 * i + action
                    scores[k] = score
                    k += 1
                    break
    keys = np.empty(k, dtype=np.uint64)
    for j in range(k):
        keys[j] = _zobrist(slid[j])
    first, inverse = _distinct_rows(slid[:k], keys)
    return slid[first], pairs[:k], inverse, scores[:k]


@njit(nogil=True, cache=True)
def _spawns(after, four_probability):
    """Every board one spawn can make from each of (m, cells) uint8 afterstates: on each
    empty cell a 2 (exponent 1) with probability ``1 - four_probability`` and a 4 with
    ``four_probability``, the cell uniform among the empty ones (a tile of probability 0
    is left out).

    Returns ``(children (u, cells) uint8, inverse (k,) int64, probs (k,) float64, parents
    (k,) int64)``: the distinct spawned boards, and for each of the k spawns its board
    ``children[inverse]``, its probability and its afterstate; the probabilities of each
    afterstate's spawns sum to 1 (one with no empty cell has none).
    """
    m, cells = after.shape
    tiles = (1, 2)
    tile_probs = (1.0 - four_probability, four_probability)
    kinds = (1 if tile_probs[0] > 0 else 0) + (1 if tile_probs[1] > 0 else 0)
    empty = np.zeros(m, dtype=np.int64)
    for i in range(m):
        for c in range(cells):
            if after[i, c] == 0:
                empty[i] += 1
    k = kinds * empty.sum()
    children = np.empty((k, cells), dtype=np.uint8)
    keys = np.empty(k, dtype=np.uint64)
    probs = np.empty(k)
    parents = np.empty(k, dtype=np.int64)
    j = 0
    for i in range(m):
        key = _zobrist(after[i])
        for c in range(cells):
            if after[i, c] != 0:
                continue
            for t in range(2):
                if tile_probs[t] <= 0:
                    continue
                children[j] = after[i]
                children[j, c] = tiles[t]
                keys[j] = key ^ ZOBRIST[c, tiles[t]]  # the key of one more tile
                probs[j] = tile_probs[t] / empty[i]
                parents[j] = i
                j += 1
    first, inverse = _distinct_rows(children, keys)
    return children[first], inverse, probs, parents


@njit(nogil=True, cache=True)
def _best_or(q, terminal):
    """(u, 4) Q of each move -> (u,) float64 the best, ``terminal`` where all four are -inf."""
    w = np.empty(q.shape[0])
    for i in range(q.shape[0]):
        best = -np.inf
        for a in range(4):
            if q[i, a] > best:
                best = q[i, a]
        w[i] = terminal if best == -np.inf else best
    return w


@njit(nogil=True, cache=True)
def _expectation(w, inverse, probs, parents, m):
    """(m,) float64: for each afterstate, the sum over its spawns j of ``probs[j] *
    w[inverse[j]]`` (``w`` (u,) of the distinct spawned boards)."""
    out = np.zeros(m)
    for j in range(inverse.shape[0]):
        out[parents[j]] += probs[j] * w[inverse[j]]
    return out


ZOBRIST = np.random.default_rng(2048).integers(
    0, 2**64, (MAX_SIDE * MAX_SIDE, 256), dtype=np.uint64, endpoint=False
)
ZOBRIST[:, 0] = 0  # an empty cell adds nothing: a spawn's key is its afterstate's ^ one entry
"""(cell, exponent) random uint64, every uint8 exponent: a board's key is the XOR of its
cells' entries (Zobrist hashing)."""


@njit(inline="always")
def _zobrist(board):
    """The Zobrist key of one flat board (cells,) uint8."""
    key = np.uint64(0)
    for c in range(board.shape[0]):
        key ^= ZOBRIST[c, board[c]]
    return key


@njit(nogil=True)
def _distinct_rows(rows, keys):
    """The transposition table of one level: (n, cells) uint8 boards and their (n,) uint64
    Zobrist keys -> ``(first (u,) int64, inverse (n,) int64)``, the row where each distinct
    board first occurs and, per row, its distinct board's number, so ``rows[first][inverse]
    == rows``.

    Open addressing over a table of at least twice ``n`` slots, indexed by the key's low
    bits; boards that share a slot are compared cell by cell.
    """
    n, cells = rows.shape
    size = 16
    while size < 2 * n:
        size *= 2
    mask = size - 1
    table = np.full(size, -1, dtype=np.int64)  # slot -> distinct board number, -1 free
    first = np.empty(n, dtype=np.int64)
    inverse = np.empty(n, dtype=np.int64)
    u = 0
    for i in range(n):
        slot = np.int64(keys[i] & np.uint64(mask))
        while True:
            d = table[slot]
            if d < 0:
                table[slot] = u
                first[u] = i
                inverse[i] = u
                u += 1
                break
            same = True
            other = first[d]
            for c in range(cells):
                if rows[other, c] != rows[i, c]:
                    same = False
                    break
            if same:
                inverse[i] = d
                break
            slot = (slot + 1) & mask
    return first[:u], inverse


def _rewards(
    model: ValueModel, boards: np.ndarray, after: np.ndarray, scores: np.ndarray
) -> np.ndarray:
    if model.reward is None:
        return scores.astype(np.float64)
    shape = (-1, *model.game.shape)
    rewards = model.reward(boards.reshape(shape), after.reshape(shape), scores)
    return _as_array(rewards, (scores.shape[0],), "reward")


def _call_values(model: ValueModel, flat: np.ndarray) -> np.ndarray:
    if flat.shape[0] == 0:
        return np.zeros(0)
    values = model.values(flat.reshape(-1, *model.game.shape))
    return _as_array(values, (flat.shape[0],), "values")


def _call_move_values(model: ValueModel, flat: np.ndarray) -> np.ndarray:
    if flat.shape[0] == 0:
        return np.zeros((0, 4))
    q = model.move_values(flat.reshape(-1, *model.game.shape))
    return _as_array(q, (flat.shape[0], 4), "move_values")


def _as_array(x, shape: tuple[int, ...], name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.shape != shape:
        n = shape[0]
        raise ValueError(
            f"ValueModel.{name} must return shape {shape} for {n} boards, got {x.shape}"
        )
    return x


# --- the PPO transformer as a value model ---------------------------------------------------


def shaped_reward(config: RewardConfig) -> RewardFn:
    """The reward of ``VecEnv(reward=config)`` for a move, as a ``ValueModel.reward``.

    Exact for every field but ``game_over_penalty``, which depends on the spawn (see
    ``ValueModel.terminal_value``), and ``illegal_penalty`` (search never plays an
    illegal move). The move's merge count and merged exponents follow from the boards:
    a merge of two tiles ``e`` removes one tile and lowers the exponent sum by ``e - 1``,
    so ``merges = tiles before - tiles after`` and the log score, the sum of the
    created exponents ``e + 1``, is ``2 merges + exponent sum before - after``.
    """

    def reward(boards: np.ndarray, after: np.ndarray, scores: np.ndarray) -> np.ndarray:
        merges = np.count_nonzero(boards, axis=(1, 2)) - np.count_nonzero(after, axis=(1, 2))
        if config.log_score:
            total = boards.sum(axis=(1, 2), dtype=np.int64) - after.sum(axis=(1, 2), dtype=np.int64)
            gain = 2 * merges + total
        else:
            gain = scores
        return config.score_weight * gain + config.survival_bonus + config.merge_bonus * merges

    return reward


def transformer_value_model(
    model: GameTransformer,
    *,
    gamma: float,
    return_mean: float = 0.0,
    return_std: float = 1.0,
    reward: RewardConfig | None = None,
    batch_size: int = 4096,
    game: games.Game | None = None,
) -> ValueModel:
    """A ``"state"`` ValueModel from a PPO-trained ``GameTransformer``'s value head.

    The head predicts the discounted return of the shaped reward, normalised by the
    trainer's running return statistics; search un-normalises it (``value * return_std
    + return_mean``: pass the trainer's ``return_stats.mean`` and ``.std``, or 0 and 1
    if it ran with ``normalize_values=False``) and adds the shaped reward of
    ``reward`` (the run's ``RewardConfig``, default ``RewardConfig()``) along the path,
    discounted by ``gamma`` (the run's ``PPOConfig.gamma``), so search maximises what
    PPO was trained to maximise. The model runs on its own device under
    ``torch.inference_mode`` in batches of ``batch_size`` boards; put it in ``eval()``
    mode first, or dropout makes the values noisy. ``game``: the game it was trained on
    (None: ``games.get()``, 2048 on 4x4).
    """
    import torch

    config = reward or RewardConfig()
    device = next(model.parameters()).device

    def values(boards: np.ndarray) -> np.ndarray:
        masks = legal_mask(boards)
        out = np.empty(boards.shape[0])
        with torch.inference_mode():
            for start in range(0, boards.shape[0], batch_size):
                stop = start + batch_size
                b = torch.from_numpy(np.ascontiguousarray(boards[start:stop])).to(device)
                m = torch.from_numpy(np.ascontiguousarray(masks[start:stop])).to(device)
                out[start:stop] = model(b, m).value.float().cpu().numpy()  # (B,) normalised
        return out * return_std + return_mean

    return ValueModel(
        values=values,
        of="state",
        discount=gamma,
        reward=shaped_reward(config),
        terminal_value=-config.game_over_penalty / gamma,
        game=games.get() if game is None else game,
    )
