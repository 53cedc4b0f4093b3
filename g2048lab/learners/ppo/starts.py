"""Start states: training games that begin from boards taken from other games.

In a 1,000-move game the agent meets the boards that decide 2048 once, at the end. Starting
some training games from later boards shows it those boards more often: TDL2048's "restart"
(Yeh et al., multi-stage TD learning) replays states recorded in the agent's own earlier
episodes, and PufferLib's PPO for 2048 "scaffolds" with games that begin from boards holding
high tiles. Two sources here: a ``RestartBuffer`` of the agent's own longest games' second
halves, and a teacher's games (``teacher_starts``, any ``Agent`` that can play), whose share
``start_shares`` anneals to 0 so training ends on the normal start.

Pure pieces only: the PPO learner's rollout samples codes with ``choose_starts``, puts the
boards in with ``VecEnv.place`` and feeds finished games' ``GameSnapshots`` to the buffer.
Boards are (R, C) uint8 exponents of the run's game; scores are raw game scores (int64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ... import games as game_registry
from ...engine.env import VecEnv
from ...settings import check_settings, setting

if TYPE_CHECKING:
    from ..base import Agent

__all__ = [
    "NORMAL",
    "OWN",
    "TEACHER",
    "GameSnapshots",
    "RestartBuffer",
    "StartConfig",
    "StartStates",
    "choose_starts",
    "start_shares",
    "teacher_starts",
]

NORMAL, OWN, TEACHER = 0, 1, 2  # the codes of choose_starts: where a new game begins


@dataclass(frozen=True)
class StartConfig:
    """Where new training games begin (the ``--start.*`` flags). ``own_share`` of new games
    begin from a board of the agent's own earlier long games (``RestartBuffer``);
    ``teacher_share`` from a board of the teacher's games, at the start of the run, falling
    linearly to 0 over ``teacher_anneal_steps``; the rest from the normal start. Evaluation
    always plays from the normal start."""

    own_share: float = setting(0.0, ge=0, le=1)  # share of games begun from the restart buffer
    buffer_size: int = setting(4096, ge=1)  # boards the restart buffer keeps
    teacher_share: float = setting(0.0, ge=0, le=1)  # share begun from a teacher's board, at first
    teacher_anneal_steps: int = setting(5_000_000, ge=1)  # env steps until teacher_share is 0
    teacher_games: int = setting(64, ge=1)  # games the teacher plays, once, for its boards

    def __post_init__(self) -> None:
        check_settings(self)
        if self.own_share + self.teacher_share > 1:
            raise ValueError(
                f"--start.own-share + --start.teacher-share must be <= 1 (the rest of the "
                f"games begin normally), got {self.own_share} + {self.teacher_share}"
            )

    @property
    def enabled(self) -> bool:
        """Whether any new game may begin away from the normal start."""
        return self.own_share > 0 or self.teacher_share > 0


def start_shares(config: StartConfig, env_steps: int) -> tuple[float, float]:
    """(own share, teacher share) of new games after ``env_steps`` env steps of the run: the
    teacher's falls linearly from ``teacher_share`` to 0 at ``teacher_anneal_steps``."""
    left = max(0.0, 1.0 - env_steps / config.teacher_anneal_steps)
    return config.own_share, config.teacher_share * left


def choose_starts(rng: np.random.Generator, count: int, own: float, teacher: float) -> np.ndarray:
    """Where each of ``count`` new games begins: (count,) int8 codes, ``NORMAL`` (0), ``OWN``
    (1, the restart buffer) with probability ``own``, ``TEACHER`` (2) with ``teacher``; one
    uniform draw per game."""
    if own < 0 or teacher < 0 or own + teacher > 1:
        raise ValueError(f"start shares must be >= 0 with a sum <= 1, got {own} and {teacher}")
    u = rng.random(count)
    codes = np.full(count, NORMAL, dtype=np.int8)
    codes[u < own + teacher] = TEACHER
    codes[u < own] = OWN
    return codes


class GameSnapshots:
    """Boards sampled along each of N games in play, evenly over the whole game.

    Each slot keeps up to ``capacity`` boards, one every ``stride`` moves (from 1); when a
    slot is full it keeps every other board and doubles its stride, so a game of any length
    ends with between ``capacity / 2`` and ``capacity`` boards (fewer if it was shorter),
    spaced evenly from its first move. Memory: N * capacity boards and scores.
    """

    def __init__(self, slots: int, shape: tuple[int, int], capacity: int = 64):
        if capacity < 2 or capacity % 2:
            raise ValueError(f"GameSnapshots capacity must be an even number >= 2, got {capacity}")
        self.capacity = capacity
        self._boards = np.zeros((slots, capacity, *shape), dtype=np.uint8)  # (N, cap, R, C)
        self._scores = np.zeros((slots, capacity), dtype=np.int64)  # (N, cap)
        self._count = np.zeros(slots, dtype=np.int64)  # boards kept per slot
        self._stride = np.ones(slots, dtype=np.int64)  # moves between kept boards
        self._moves = np.zeros(slots, dtype=np.int64)  # moves made in each slot's game

    def observe(self, boards: np.ndarray, scores: np.ndarray) -> None:
        """Record one step: (N, R, C) uint8 boards about to be moved from, (N,) int64 scores
        of their games so far. Call once per env step, before the step."""
        due = np.flatnonzero(self._moves % self._stride == 0)
        self._moves += 1
        if due.size == 0:
            return
        full = due[self._count[due] == self.capacity]
        if full.size:  # rare: once per doubling of a slot's game length
            half = self.capacity // 2
            self._boards[full, :half] = self._boards[full, ::2]
            self._scores[full, :half] = self._scores[full, ::2]
            self._count[full] = half
            self._stride[full] *= 2  # the move now due is a multiple of the doubled stride
        at = self._count[due]
        self._boards[due, at] = boards[due]
        self._scores[due, at] = scores[due]
        self._count[due] += 1

    def finish(self, slot: int) -> tuple[np.ndarray, np.ndarray, int]:
        """The game in ``slot`` just ended: its boards (k, R, C) uint8 and scores (k,) int64
        in move order, and the moves it lasted. Clears the slot for its next game."""
        k = int(self._count[slot])
        out = self._boards[slot, :k].copy(), self._scores[slot, :k].copy(), int(self._moves[slot])
        self._count[slot] = 0
        self._stride[slot] = 1
        self._moves[slot] = 0
        return out

    def state_dict(self) -> dict[str, Any]:
        """The snapshots of the games in play, as NumPy arrays and an int."""
        return {
            "capacity": self.capacity,
            "boards": self._boards.copy(),
            "scores": self._scores.copy(),
            "count": self._count.copy(),
            "stride": self._stride.copy(),
            "moves": self._moves.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()`` of snapshots of the same slots, shape and capacity."""
        boards = np.asarray(state["boards"], dtype=np.uint8)
        if boards.shape != self._boards.shape or int(state["capacity"]) != self.capacity:
            raise ValueError(
                f"saved game snapshots hold boards {boards.shape}, these {self._boards.shape}: "
                "make them with the saved number of games, game and capacity"
            )
        self._boards[:] = boards
        self._scores[:] = state["scores"]
        self._count[:] = state["count"]
        self._stride[:] = state["stride"]
        self._moves[:] = state["moves"]


class RestartBuffer:
    """A bounded store of (board, score) from the later halves of the agent's longer games.

    ``offer`` keeps a finished game's snapshots from its second half when the game lasted
    at least the median length of the last ``WINDOW`` games offered (this one included):
    endgames from the longer half of games. The first ``WARMUP`` games always count, as
    the median of a few games says little. When full, the oldest boards give way.
    """

    WARMUP = 16  # games offered before the median decides
    WINDOW = 256  # games whose lengths set the median

    def __init__(self, size: int, shape: tuple[int, int]):
        if size < 1:
            raise ValueError(f"RestartBuffer size must be at least 1, got {size}")
        self._boards = np.zeros((size, *shape), dtype=np.uint8)  # (size, R, C)
        self._scores = np.zeros(size, dtype=np.int64)  # (size,)
        self._lengths = np.zeros(self.WINDOW, dtype=np.int64)  # ring of games' moves
        self._next = 0  # row the next board goes to
        self._filled = 0  # rows holding boards
        self._offered = 0  # games offered so far

    def __len__(self) -> int:
        return self._filled

    def offer(self, boards: np.ndarray, scores: np.ndarray, moves: int) -> bool:
        """A finished game: its (k, R, C) uint8 snapshots and (k,) int64 scores in move order
        (evenly spaced, as ``GameSnapshots.finish`` gives them) and the moves it lasted.
        Returns whether its second half was kept."""
        self._lengths[self._offered % self.WINDOW] = moves
        self._offered += 1
        seen = self._lengths[: min(self._offered, self.WINDOW)]
        if self._offered > self.WARMUP and moves < np.median(seen):
            return False
        later = slice(len(boards) // 2, None)
        self._add(np.asarray(boards)[later], np.asarray(scores)[later])
        return True

    def _add(self, boards: np.ndarray, scores: np.ndarray) -> None:
        size = len(self._scores)
        boards, scores = boards[-size:], scores[-size:]
        rows = (self._next + np.arange(len(scores))) % size
        self._boards[rows] = boards
        self._scores[rows] = scores
        self._next = int((self._next + len(scores)) % size)
        self._filled = min(size, self._filled + len(scores))

    def sample(self, rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``k`` boards drawn uniformly with replacement: (k, R, C) uint8 and (k,) int64
        scores."""
        if self._filled == 0:
            raise ValueError("the restart buffer is empty: offer games before sampling")
        rows = rng.integers(0, self._filled, k)
        return self._boards[rows].copy(), self._scores[rows].copy()

    def state_dict(self) -> dict[str, Any]:
        """The stored boards and the window of lengths, as NumPy arrays and ints."""
        return {
            "boards": self._boards.copy(),
            "scores": self._scores.copy(),
            "lengths": self._lengths.copy(),
            "next": self._next,
            "filled": self._filled,
            "offered": self._offered,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()`` of a buffer of the same size and board shape."""
        boards = np.asarray(state["boards"], dtype=np.uint8)
        if boards.shape != self._boards.shape:
            raise ValueError(
                f"saved restart buffer holds boards {boards.shape}, this one "
                f"{self._boards.shape}: set --start.buffer_size and the game as saved"
            )
        self._boards[:] = boards
        self._scores[:] = state["scores"]
        self._lengths[:] = state["lengths"]
        self._next = int(state["next"])
        self._filled = int(state["filled"])
        self._offered = int(state["offered"])


def teacher_starts(
    agent: Agent,
    game: game_registry.Game | str | None,
    games: int,
    seed: int,
    capacity: int = 64,
    max_moves: int = 200_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Boards of ``games`` whole games the ``agent`` plays greedily on
    ``VecEnv(games, seed=seed, game=game)``, sampled evenly along each game by
    ``GameSnapshots(capacity)``: (M, R, C) uint8 boards and (M,) int64 scores, game by game.
    A game the agent cannot go on with (its policy answers -1) ends there. Raises
    RuntimeError if games outlast ``max_moves``."""
    game = game_registry.get(game)
    policy = agent.policy(greedy=True)
    env = VecEnv(games, seed=seed, game=game)
    obs, info = env.reset()
    snapshots = GameSnapshots(games, game.shape, capacity)
    running = np.ones(games, dtype=np.bool_)
    boards, scores = [], []

    def collect(ended: np.ndarray) -> None:
        for slot in np.flatnonzero(ended):
            b, s, _ = snapshots.finish(slot)
            boards.append(b)
            scores.append(s)
        running[ended] = False

    for _ in range(max_moves):
        playing = np.flatnonzero(running)
        # finished slots play on with their first legal move: one step serves every slot
        actions = np.argmax(obs["action_mask"], axis=1).astype(np.int64)
        chosen = np.asarray(
            policy({"board": obs["board"][playing], "action_mask": obs["action_mask"][playing]})
        ).reshape(-1)
        stuck = playing[chosen < 0]
        if stuck.size:
            collect(np.isin(np.arange(games), stuck))
        actions[playing] = np.where(chosen < 0, actions[playing], chosen)
        snapshots.observe(obs["board"], info["score"])
        obs, _, terminated, _, info = env.step(actions)
        collect(terminated & running)
        if not running.any():
            return np.concatenate(boards), np.concatenate(scores)
    raise RuntimeError(f"{running.sum()} teacher games were still running after {max_moves} moves")


class StartStates:
    """Where a run's new training games begin, step by step: the snapshots of the games in
    play, the restart buffer they feed, the teacher's boards and which games began where.

    Games in the first ``protected`` slots (the ones recorded for replay) always begin from
    the normal start, so every replay is a whole game. Only normally started games feed
    the restart buffer and the run's metrics: ``after_step`` says which finished games
    those are.
    """

    def __init__(
        self,
        config: StartConfig,
        slots: int,
        shape: tuple[int, int],
        seed: int,
        protected: int = 0,
        teacher_boards: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        """``teacher_boards``: (M, R, C) uint8 boards and (M,) int64 scores of the
        teacher's games (``teacher_starts``), needed while the teacher's share is > 0."""
        if config.teacher_share > 0 and teacher_boards is None:
            raise ValueError("--start.teacher-share needs a teacher: add --teacher RUN")
        self.config = config
        self.protected = protected
        self.snapshots = GameSnapshots(slots, shape)
        self.buffer = RestartBuffer(config.buffer_size, shape)
        self.codes = np.full(slots, NORMAL, dtype=np.int8)  # (N,) where each game began
        self.teacher_boards = teacher_boards
        self.rng = np.random.default_rng([seed, 0x5747])

    def before_step(self, boards: np.ndarray, scores: np.ndarray) -> None:
        """(N, R, C) uint8 boards about to be moved from and (N,) int64 their scores."""
        self.snapshots.observe(boards, scores)

    def after_step(self, env: VecEnv, terminated: np.ndarray, env_steps: int) -> np.ndarray:
        """After ``env.step`` ended the games ``terminated`` (N,) bool and began new ones
        from the normal start: feed the ended normal games to the buffer, begin some new
        games from its boards or the teacher's (``env.place``). Returns (N,) bool: the
        ended games that had begun from the normal start. Read ``env.observation()`` after."""
        ended = np.flatnonzero(terminated)
        normal = terminated & (self.codes == NORMAL)
        for slot in ended:
            boards, scores, moves = self.snapshots.finish(slot)
            if self.codes[slot] == NORMAL:
                self.buffer.offer(boards, scores, moves)
        self.codes[ended] = NORMAL
        free = ended[ended >= self.protected]
        own, teacher = start_shares(self.config, env_steps)
        if free.size == 0 or own + teacher == 0:
            return normal
        codes = choose_starts(self.rng, free.size, own, teacher)
        if len(self.buffer) == 0:
            codes[codes == OWN] = NORMAL
        for code, source in ((OWN, self._own), (TEACHER, self._teacher)):
            slots = free[codes == code]
            if slots.size:
                env.place(slots, *source(slots.size))
                self.codes[slots] = code
        return normal

    def _own(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.buffer.sample(self.rng, k)

    def _teacher(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        boards, scores = self.teacher_boards
        rows = self.rng.integers(0, len(scores), k)
        return boards[rows], scores[rows]

    def state_dict(self) -> dict[str, Any]:
        """Snapshots, buffer, codes and generator, as NumPy arrays, ints and a dict."""
        return {
            "snapshots": self.snapshots.state_dict(),
            "buffer": self.buffer.state_dict(),
            "codes": self.codes.copy(),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()`` of the same games and settings."""
        codes = np.asarray(state["codes"], dtype=np.int8)
        if codes.shape != self.codes.shape:
            raise ValueError(
                f"saved start states cover {codes.shape[0]} games, this run {len(self.codes)}"
            )
        self.snapshots.load_state_dict(state["snapshots"])
        self.buffer.load_state_dict(state["buffer"])
        self.codes[:] = codes
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
