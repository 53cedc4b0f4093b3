"""Environments over the rules in ``engine.rules``: a fast vector env and a Gymnasium env,
for any game of the 2048 family (``games.Game``; None is ``games.get()``, 2048 on 4x4).

``VecEnv`` plays N games at once in the shape of Gymnasium's vector API, with
automatic reset in the same step (``AutoresetMode.SAME_STEP``): when a game ends,
``step`` returns the first board of the next game, and the finished game's last
board and statistics are in ``info``.

Observation: ``{"board": (N, R, C) uint8 exponents, "action_mask": (N, 4) bool}``,
the mask in ``Action`` order; (R, C) is ``game.shape``, exponents run 0..``game.max_exponent``.
Action: (N,) ints in ``Action`` order.
Reward: the shaped reward of ``RewardConfig`` (float32). The raw game score of the
move (the original game's score) is always reported separately as
``info["score_gain"]``.
Termination: a game ends when no move is legal. Nothing truncates a game.

Illegal actions (a move that would not change the board) are never applied
silently. With ``illegal_action="raise"`` (the default) ``step`` raises
``ValueError`` and changes nothing. With ``"penalize"`` the board is left as it
is, no tile spawns, the move counts towards the game's length, the reward is
``-RewardConfig.illegal_penalty``, and ``info["illegal"]`` marks the game.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from numba import njit

from .. import games
from ..settings import check_settings, setting
from .rules import (
    FAST_LIMIT,
    LEGAL_TABLE,
    MOVE_TABLE,
    is_4x4,
    legal_4x4,
    legal_batch,
    legal_one,
    line_cells,
    max_exponent,
    move_4x4,
    move_one,
    new_boards,
    render,
    spawn_one,
    to_values,
)

__all__ = ["Game2048Env", "Policy", "RewardConfig", "VecEnv"]

Policy = Callable[[dict[str, np.ndarray]], np.ndarray]
"""A player: a ``VecEnv`` observation (``board`` (N, R, C) uint8, ``action_mask`` (N, 4)
bool) -> (N,) int64 moves in ``Action`` order."""

MAX_GAME_EXPONENT = games.get().max_exponent
"""The default game's largest exponent: with 2 and 4 spawns on a 4x4 board no tile can
exceed 2**17. Another game's is ``game.max_exponent``."""


@dataclass(frozen=True)
class RewardConfig:
    """Weights of the shaped reward of one move.

    reward = score_weight * (sum of merged tiles' exponents if log_score else game score)
           + survival_bonus                        (every legal move)
           + merge_bonus * merges                  (each merge frees one cell)
           - game_over_penalty                     (the move that ends the game)
    and ``-illegal_penalty`` for an illegal move under ``illegal_action="penalize"``.

    The default is the log-scaled merge score at 0.1 per exponent (merging two 2s
    gives 0.2, two 1024s 1.1): the value of a merge grows with its tile without
    the raw score's thousand-fold range, which keeps value targets well scaled.
    """

    score_weight: float = setting(0.1, ge=0)
    log_score: bool = True
    survival_bonus: float = setting(0.0, ge=0)
    merge_bonus: float = setting(0.0, ge=0)
    game_over_penalty: float = setting(0.0, ge=0)  # subtracted
    illegal_penalty: float = setting(1.0, ge=0)  # subtracted

    def __post_init__(self) -> None:
        check_settings(self)

    def as_array(self) -> np.ndarray:
        """The weights as the (6,) float64 array the step kernel reads."""
        return np.array(
            [
                self.score_weight,
                float(self.log_score),
                self.survival_bonus,
                self.merge_bonus,
                self.game_over_penalty,
                self.illegal_penalty,
            ]
        )


@njit(nogil=True, cache=True)
def _step_kernel(
    boards,
    mask,
    actions,
    uniforms,
    weights,
    raise_illegal,
    move_table,
    legal_table,
    lines,
    four_probability,
    reward,
    score_gain,
    terminated,
    illegal,
    score,
    length,
    max_exp,
    final_board,
    final_score,
    final_length,
    final_max,
):
    """Advance every game by one move; see ``VecEnv.step``. Mutates the game state in place.

    ``uniforms`` (N, 2) place each game's new tile; ``lines`` and ``four_probability`` are
    the game's (see ``rules``). A game that ends keeps its last board, with no legal move,
    for ``_restart_kernel``. Returns -1 - n if game n's action is out of range (or illegal
    and ``raise_illegal``) before anything changed, else the number of finished games.
    """
    n_games = boards.shape[0]
    for n in range(n_games):
        a = actions[n]
        if a < 0 or a > 3 or (raise_illegal and not mask[n, a]):
            return -1 - n
    square4 = is_4x4(boards[0], lines)
    score_weight, log_score, survival, merge_bonus, over_penalty, illegal_penalty = (
        weights[0],
        weights[1],
        weights[2],
        weights[3],
        weights[4],
        weights[5],
    )
    finished = 0
    for n in range(boards.shape[0]):
        a = actions[n]
        length[n] += 1
        terminated[n] = False
        if not mask[n, a]:
            illegal[n] = True
            reward[n] = -illegal_penalty
            score_gain[n] = 0
            continue
        illegal[n] = False
        board = boards[n]
        # tiles never shrink, so the game's largest exponent bounds this board's
        fast = max_exp[n] < FAST_LIMIT
        if square4 and fast:
            gain, log_gain, merges = move_4x4(board, board, a, move_table)
        else:
            gain, log_gain, merges = move_one(board, board, a, fast, move_table, lines)
        spawn_one(board, uniforms[n, 0], uniforms[n, 1], four_probability)
        score[n] += gain
        score_gain[n] = gain
        r = score_weight * (log_gain if log_score else gain) + survival + merge_bonus * merges
        top = max_exponent(board)
        if top > max_exp[n]:
            max_exp[n] = top
        fast = max_exp[n] < FAST_LIMIT
        if square4 and fast:
            legal = legal_4x4(board, mask[n], legal_table)
        else:
            legal = legal_one(board, mask[n], fast, legal_table, lines)
        if legal == 0:
            terminated[n] = True
            r -= over_penalty
            finished += 1
            final_board[n] = board
            final_score[n] = score[n]
            final_length[n] = length[n]
            final_max[n] = max_exp[n]
        reward[n] = r
    return finished


@njit(nogil=True, cache=True)
def _restart_kernel(
    boards, mask, terminated, uniforms, four_probability, legal_table, lines, score, length, max_exp
):
    """Start a new game in each slot whose game ``terminated``, in slot order, and zero its
    score, length and max exponent. The k-th such game's start tiles come from
    ``uniforms[k]`` (2 per tile: cell, then value; as ``rules.start_one`` draws them).
    NumPy draws them: handing numba the Generator costs more than a small batch's step."""
    k = 0
    for n in range(boards.shape[0]):
        if terminated[n]:
            board = boards[n]
            board[:] = 0
            for t in range(uniforms.shape[1] // 2):
                spawn_one(board, uniforms[k, 2 * t], uniforms[k, 2 * t + 1], four_probability)
            k += 1
            legal_one(board, mask[n], True, legal_table, lines)
            score[n] = 0
            length[n] = 0
            max_exp[n] = max_exponent(board)


class VecEnv(gymnasium.vector.VectorEnv):
    """N games of one game of the 2048 family stepped together; see the module docstring
    for the contract.

    Args:
        num_envs: number of games N.
        seed: seed of the one random generator that spawns every tile; the same
            seed and the same actions give the same games.
        reward: weights of the shaped reward.
        illegal_action: ``"raise"`` or ``"penalize"`` (see the module docstring).
        game: the game played (a ``games.Game`` or its name; None: ``games.get()``).

    ``info`` after ``step`` holds (N,) arrays: ``score`` (raw game score so far,
    of the game now on the board), ``max_tile`` (value of the largest tile so
    far), ``length`` (moves so far), ``score_gain`` (raw score of this move),
    ``illegal``; and for games that just ended (``info["_episode"]``, the same as
    ``terminated``) ``info["episode"]`` = dict of (N,) arrays ``score``,
    ``max_tile``, ``length``, plus ``info["final_board"]`` (N, R, C).

    ``place(slots, boards, scores)`` starts games in some slots from given boards (start
    states, ``learners.ppo.starts``); ``observation()`` then reads the new observation.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int,
        seed: int | None = None,
        reward: RewardConfig | None = None,
        illegal_action: Literal["raise", "penalize"] = "raise",
        game: games.Game | str | None = None,
    ):
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        if illegal_action not in ("raise", "penalize"):
            raise ValueError(
                f"illegal_action must be 'raise' or 'penalize', got {illegal_action!r}"
            )
        self.game = games.get(game)
        self._lines = line_cells(*self.game.shape)
        self._shape = shape = self.game.shape  # read once: step is hot at small batches
        top = self.game.max_exponent
        self.num_envs = num_envs
        self.reward_config = reward or RewardConfig()
        self.illegal_action = illegal_action
        self._weights = self.reward_config.as_array()
        self.single_observation_space = spaces.Dict(
            {
                "board": spaces.Box(0, top, shape, np.uint8),
                "action_mask": spaces.MultiBinary(4),
            }
        )
        self.single_action_space = spaces.Discrete(4)
        self.observation_space = spaces.Dict(
            {
                "board": spaces.Box(0, top, (num_envs, *shape), np.uint8),
                "action_mask": spaces.MultiBinary((num_envs, 4)),
            }
        )
        self.action_space = spaces.MultiDiscrete(np.full(num_envs, 4))
        self._rng = np.random.default_rng(seed)
        self._boards = np.zeros((num_envs, self.game.cells), dtype=np.uint8)
        self._mask = np.zeros((num_envs, 4), dtype=np.bool_)
        self._score = np.zeros(num_envs, dtype=np.int64)
        self._length = np.zeros(num_envs, dtype=np.int64)
        self._max_exp = np.zeros(num_envs, dtype=np.uint8)
        self._needs_reset = True

    @property
    def boards(self) -> np.ndarray:
        """A copy of the current (N, R, C) uint8 boards."""
        return self._boards.reshape(-1, *self._shape).copy()

    @property
    def scores(self) -> np.ndarray:
        """A copy of the (N,) int64 game scores of the boards now in play."""
        return self._score.copy()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start N new games; a ``seed`` reseeds the generator. Returns ``(obs, info)``."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._boards[:] = new_boards(self.num_envs, self._rng, self.game).reshape(self.num_envs, -1)
        legal_batch(self._boards, self._mask, LEGAL_TABLE, self._lines)
        self._score[:] = 0
        self._length[:] = 0
        self._max_exp[:] = self._boards.max(axis=1)
        self._needs_reset = False
        return self._observation(), self._running_info()

    def place(self, slots, boards, scores) -> None:
        """Start the games in ``slots`` from ``boards``, as if they had just begun there.

        Args:
            slots: (K,) distinct int game indices in 0..N-1.
            boards: (K, R, C) uint8 exponents of this env's game, each with a legal move.
            scores: (K,) int64 game score each board was reached with; the game's score
                continues from it. Length restarts at 0.
        Raises ValueError in one line, changing nothing, for a bad slot, a board of another
        shape, an exponent above ``game.max_exponent`` or a board without a legal move.
        """
        if self._needs_reset:
            raise RuntimeError("call reset() before place()")
        slots = np.asarray(slots, dtype=np.int64).reshape(-1)
        boards = np.asarray(boards)
        scores = np.asarray(scores, dtype=np.int64).reshape(-1)
        k = slots.shape[0]
        if boards.shape != (k, *self._shape):
            raise ValueError(
                f"place() needs boards of shape ({k}, {self._shape[0]}, {self._shape[1]}) "
                f"for {k} slots of {self.game.name}, got {boards.shape}"
            )
        if scores.shape != (k,) or (scores < 0).any():
            raise ValueError(f"place() needs {k} scores >= 0, got {scores.tolist()}")
        if ((slots < 0) | (slots >= self.num_envs)).any() or len(np.unique(slots)) != k:
            raise ValueError(
                f"place() needs distinct slots in 0..{self.num_envs - 1}, got {slots.tolist()}"
            )
        flat = np.ascontiguousarray(boards, dtype=np.uint8).reshape(k, -1)
        low, top = int(boards.min(initial=0)), int(boards.max(initial=0))
        if low < 0 or top > self.game.max_exponent:
            raise ValueError(
                f"place() got exponent {low if low < 0 else top}, outside {self.game.name}'s "
                f"0..{self.game.max_exponent}: pass exponents, not tile values"
            )
        mask = np.zeros((k, 4), dtype=np.bool_)
        legal_batch(flat, mask, LEGAL_TABLE, self._lines)
        stuck = np.flatnonzero(~mask.any(axis=1))
        if stuck.size:
            raise ValueError(
                f"place() got board {int(stuck[0])} (slot {int(slots[stuck[0]])}) with no "
                "legal move: a game cannot start from a finished board"
            )
        self._boards[slots] = flat
        self._mask[slots] = mask
        self._score[slots] = scores
        self._length[slots] = 0
        self._max_exp[slots] = flat.max(axis=1)

    def observation(self) -> dict[str, np.ndarray]:
        """The current observation (a copy): what ``reset`` or ``step`` would have returned
        for the boards now in play, e.g. after ``place``."""
        return self._observation()

    def step(self, actions):
        """Advance every game by one move: ``(obs, reward, terminated, truncated, info)``.

        Args:
            actions: (N,) ints in ``Action`` order (a NumPy array, list or CPU tensor).
        Returns:
            obs dict, (N,) float32 shaped reward, (N,) bool terminated, (N,) bool
            truncated (always False), and ``info`` (see the class docstring).
        """
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        acts = np.ascontiguousarray(actions, dtype=np.int64).reshape(-1)
        n = self.num_envs
        if acts.shape[0] != n:
            raise ValueError(f"expected {n} actions, got {acts.shape[0]}")
        reward = np.empty(n, dtype=np.float32)
        score_gain = np.empty(n, dtype=np.int64)
        terminated = np.empty(n, dtype=np.bool_)
        illegal = np.zeros(n, dtype=np.bool_)
        final_board = np.zeros_like(self._boards)
        final_score = np.zeros(n, dtype=np.int64)
        final_length = np.zeros(n, dtype=np.int64)
        final_max = np.zeros(n, dtype=np.uint8)
        status = _step_kernel(
            self._boards,
            self._mask,
            acts,
            self._rng.random((n, 2)),
            self._weights,
            self.illegal_action == "raise",
            MOVE_TABLE,
            LEGAL_TABLE,
            self._lines,
            self.game.four_probability,
            reward,
            score_gain,
            terminated,
            illegal,
            self._score,
            self._length,
            self._max_exp,
            final_board,
            final_score,
            final_length,
            final_max,
        )
        if status < 0:
            self._raise_bad_action(-1 - status, acts)
        if status > 0:
            _restart_kernel(
                self._boards,
                self._mask,
                terminated,
                self._rng.random((status, 2 * self.game.start_tiles)),
                self.game.four_probability,
                LEGAL_TABLE,
                self._lines,
                self._score,
                self._length,
                self._max_exp,
            )
        info = self._running_info()
        info["score_gain"] = score_gain
        info["illegal"] = illegal
        info["episode"] = {
            "score": final_score,
            "max_tile": to_values(final_max),
            "length": final_length,
        }
        info["_episode"] = terminated.copy()
        info["final_board"] = final_board.reshape(n, *self._shape)
        truncated = np.zeros(n, dtype=np.bool_)
        return self._observation(), reward, terminated, truncated, info

    def state_dict(self) -> dict[str, Any]:
        """Every game in play and the generator's state, as NumPy arrays and plain ints;
        ``boards`` (N, R, C) records the game's shape."""
        return {
            "boards": self._boards.reshape(-1, *self.game.shape).copy(),
            "action_mask": self._mask.copy(),
            "score": self._score.copy(),
            "length": self._length.copy(),
            "max_exponent": self._max_exp.copy(),
            "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the games of ``state_dict()``; the next step is the one the saved env
        would have played."""
        boards = np.asarray(state["boards"], dtype=np.uint8)
        if boards.ndim != 3 or boards.shape[1:] != self.game.shape:
            rows, cols = self.game.shape
            raise ValueError(
                f"saved state holds boards of shape {boards.shape[1:]}, this env plays "
                f"{self.game.name} ({rows}, {cols}): make the env with the saved game"
            )
        boards = boards.reshape(boards.shape[0], -1)
        if boards.shape[0] != self.num_envs:
            raise ValueError(f"saved state has {boards.shape[0]} games, this env {self.num_envs}")
        self._boards[:] = boards
        self._mask[:] = np.asarray(state["action_mask"], dtype=np.bool_)
        self._score[:] = np.asarray(state["score"])
        self._length[:] = np.asarray(state["length"])
        self._max_exp[:] = np.asarray(state["max_exponent"])
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state["rng"]
        self._needs_reset = False

    def _raise_bad_action(self, game: int, acts: np.ndarray):
        a = int(acts[game])
        if not 0 <= a <= 3:
            raise ValueError(f"action {a} of game {game} is not in 0..3 (UP, RIGHT, DOWN, LEFT)")
        legal = [name for name, ok in zip(("UP", "RIGHT", "DOWN", "LEFT"), self._mask[game]) if ok]
        raise ValueError(
            f"action {a} is illegal in game {game} (legal: {legal}); mask the policy with "
            f"obs['action_mask'] or use VecEnv(..., illegal_action='penalize')\n"
            + render(self._boards[game].reshape(self.game.shape))
        )

    def _observation(self) -> dict[str, np.ndarray]:
        return {
            "board": self._boards.reshape(-1, *self._shape).copy(),
            "action_mask": self._mask.copy(),
        }

    def _running_info(self) -> dict[str, Any]:
        return {
            "score": self._score.copy(),
            "max_tile": to_values(self._max_exp),
            "length": self._length.copy(),
        }


class Game2048Env(gymnasium.Env):
    """One game of the 2048 family for Gymnasium users, registered as ``g2048lab/Game2048-v0``
    (``gymnasium.make("g2048lab/Game2048-v0", game="2048-5x5")`` for another board).

    Observation: (R, C) uint8 exponents, 0..``game.max_exponent``. Action: ``Discrete(4)``
    in ``Action`` order.
    The legal-action mask is ``env.action_masks()`` ((4,) bool, as sb3-contrib's
    MaskablePPO expects) and ``info["action_mask"]``. An illegal action leaves the
    board unchanged and gives ``-reward.illegal_penalty`` with ``info["illegal"]``
    True. The raw game score is ``info["score"]`` (game so far) and
    ``info["score_gain"]`` (this move). Render modes: "ansi" (text) and "human" (print).
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 4}

    def __init__(
        self,
        reward: RewardConfig | dict | None = None,
        render_mode: str | None = None,
        game: games.Game | str | None = None,
    ):
        if isinstance(reward, dict):
            reward = RewardConfig(**reward)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.game = games.get(game)
        self.observation_space = spaces.Box(0, self.game.max_exponent, self.game.shape, np.uint8)
        self.action_space = spaces.Discrete(4)
        self._vec = VecEnv(1, reward=reward, illegal_action="penalize", game=self.game)
        self._board = np.zeros(self.game.shape, dtype=np.uint8)
        self._mask = np.zeros(4, dtype=np.bool_)
        self._info: dict[str, Any] = {}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        # Gymnasium seeds self.np_random; the game's tiles come from the same generator.
        self._vec._rng = self.np_random
        obs, info = self._vec.reset()
        return self._set(obs["board"][0], obs["action_mask"][0], info, 0)

    def step(self, action):
        obs, reward, terminated, truncated, info = self._vec.step(np.array([int(action)]))
        if terminated[0]:  # the vector env already started the next game: show the last board
            board = info["final_board"][0]
            mask = np.zeros(4, dtype=np.bool_)
            info = {
                **info,
                "score": info["episode"]["score"],
                "length": info["episode"]["length"],
                "max_tile": info["episode"]["max_tile"],
            }
        else:
            board, mask = obs["board"][0], obs["action_mask"][0]
        out_obs, out_info = self._set(board, mask, info, int(info["score_gain"][0]))
        out_info["illegal"] = bool(info["illegal"][0])
        if self.render_mode == "human":
            self.render()
        return out_obs, float(reward[0]), bool(terminated[0]), False, out_info

    def _set(self, board, mask, info, gain):
        self._board = board.copy()
        self._mask = mask.copy()
        self._info = {
            "action_mask": self._mask.copy(),
            "score": int(info["score"][0]),
            "score_gain": gain,
            "max_tile": int(info["max_tile"][0]),
            "length": int(info["length"][0]),
        }
        return self._board.copy(), dict(self._info)

    def action_masks(self) -> np.ndarray:
        """(4,) bool legal moves of the current board in ``Action`` order."""
        return self._mask.copy()

    def render(self) -> str | None:
        """ "ansi": the board as text with the score; "human": print it."""
        text = f"score {self._info.get('score', 0)}\n{render(self._board)}"
        if self.render_mode == "human":
            print(text, end="\n\n")
            return None
        return text if self.render_mode == "ansi" else None
