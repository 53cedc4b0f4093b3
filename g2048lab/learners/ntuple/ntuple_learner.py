"""The n-tuple learner: TD on afterstates with an n-tuple network (``--learner ntuple``).

The classic strong baseline for 2048 (Szubert & Jaskowski 2014; network.py), with the
published programs' techniques as settings (TC, TD(λ), stages, optimism, bigger tuples,
every core; recipes.py): one game a thread in one compiled kernel, greedy over the four
afterstates, learning after every move, on the run's game (``LearnerSetup.game``: the
tuples are placed for its board). An iteration is ``ITERATION_MOVES`` moves in chunks of
``CHUNK_MOVES`` with a tick between chunks, so pause and stop take effect within a few
milliseconds; it ends early where the run's budget ends, so ``--steps N`` trains exactly N
moves. The default network is 1 GB on 4x4 (5x6 float32 weights and their TC statistics);
memory is checked before it is allocated.

For replay, every ``SHOWCASE_EVERY`` iterations the network plays one whole game greedily
on a board of its own (seeded from the run's seed and the iteration) and that game is
recorded: training games are played inside the kernel and are not kept move by move.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from ... import games
from .. import register
from ..base import Agent, Learner, LearnerSetup, LearnerView, RunHooks, softmax_probs
from .layouts import AUTO, LAYOUT_NAMES, resolve_layout
from .network import (
    NTupleConfig,
    NTupleNetwork,
    config_of_state,
    saved_settings,
    weights_shape,
)
from .recipes import RECIPES

__all__ = ["NTupleAgent", "NTupleLearner"]

ITERATION_MOVES = 500_000  # about a third of a second at 1.5 M moves/s
CHUNK_MOVES = 20_000  # moves between ticks: a few milliseconds
SHOWCASE_EVERY = 10  # iterations between recorded greedy games


NO_VALUES = np.full(4, -np.inf, dtype=np.float32)  # a board's move values beyond the tables


def in_range(ask: Callable[[np.ndarray], np.ndarray], boards: np.ndarray, beyond) -> np.ndarray:
    """``ask(boards)`` of the network (N, ...) in one call; where some board is beyond its
    tables (a move would make 65536: ValueError), board by board, ``beyond`` for those."""
    try:
        return ask(boards)
    except ValueError:
        rows = []
        for board in boards:
            try:
                rows.append(ask(board[None])[0])
            except ValueError:
                rows.append(beyond)
        return np.array(rows)


@register
class NTupleLearner(Learner):
    """An n-tuple network learning by TD or TC; see the module docstring. Settings: an
    ``NTupleConfig`` (its seed is the run's), the ``--ntuple.*`` flags."""

    name = "ntuple"
    config_class = NTupleConfig
    flags = {"ntuple": NTupleConfig}
    presets = tuple(RECIPES)  # recipes.py: the published techniques, one at a time
    metrics = {
        "ntuple/td_error": "mean |TD error| per update over the iteration, in game score",
        "ntuple/learning_rate": "the TD step as a share of the error (spread over the features)",
        "ntuple/games_per_s": "training games finished per second over the iteration",
        "ntuple/range_games": "games ended at the table's range (a 65536 tile within reach)",
        "ntuple/final_stage": "mean stage of the iteration's games' last boards (multistage)",
        "ntuple/coherent": "1 while temporal coherence sets each weight's rate, else 0",
    }

    def __init__(self, config, setup: LearnerSetup):
        super().__init__(config, setup)
        self.options = NTupleConfig(**{**asdict(self.settings), "seed": setup.seed})
        # on the run's game; MemoryError, in words, if it cannot fit
        self.network = NTupleNetwork(self.options, setup.game)
        self._iterations = 0
        self._last: dict[str, float | None] = {}

    @property
    def parallel_games(self) -> int:
        return 1

    @classmethod
    def config_from_flags(cls, groups, preset=None, teacher=None, device="auto") -> NTupleConfig:
        """The preset's recipe (``recipes.RECIPES``; none: the defaults), then the flags."""
        return NTupleConfig(**{**RECIPES.get(preset or "", {}), **groups.get("ntuple", {})})

    def describe(self) -> str:
        network, options = self.network, self.options
        stages = len(network.stage_masks) + 1
        rule = "TD(0)"
        if options.coherence:
            rule = (
                "TC"
                if not options.coherence_after
                else f"TD(0), TC from move {options.coherence_after:,}"
            )
        if options.td_horizon > 1:  # horizon 1 is TD(0) whatever λ
            rule += f", λ-return of {options.td_horizon} moves at λ = {options.td_lambda:g}"
        stats = 0 if network.coherence is None else network.coherence.nbytes
        return (
            f"ntuple: {_layout_name(options.tuples, network.game)} network, "
            f"{len(network.layout)} tuples on "
            f"{network.game.rows}x{network.game.cols}"
            + (f" in {stages} stages ({options.stages})" if stages > 1 else "")
            + f" ({(network.weights.nbytes + stats) / 1e6:,.0f} MB), {rule}, learning rate "
            f"{options.learning_rate}"
            + (f", optimistic init {options.optimistic_init:,g}" if options.optimistic_init else "")
            + f", {network.threads} thread{'s' if network.threads > 1 else ''}"
        )

    def config_dict(self) -> dict[str, Any]:
        return {"ntuple": asdict(self.options)}

    def agent(self) -> NTupleAgent:
        return NTupleAgent(self.network)

    def iterate(self, hooks: RunHooks) -> dict[str, float | None] | None:
        start = time.perf_counter()
        error_sum, updates, games, range_games, stage_sum = 0.0, 0, 0, 0, 0
        for _ in range(ITERATION_MOVES // CHUNK_MOVES):
            if not hooks.tick():
                return None
            left = hooks.steps_left()
            moves = CHUNK_MOVES if left is None else min(CHUNK_MOVES, left)
            if moves == 0 or hooks.progress() >= 1:  # the budget is spent
                break
            stats = self.network.train(moves)
            hooks.played(stats.moves, stats.scores, stats.max_tiles)
            error_sum += stats.td_error_sum
            updates += stats.updates
            games += len(stats.scores)
            range_games += stats.range_games
            stage_sum += int(stats.stages.sum())
        if range_games:
            hooks.note(f"{range_games} games reached the n-tuple table's range and were ended")
        self._iterations += 1
        if self._iterations % SHOWCASE_EVERY == 1 and hooks.recorder.slots:
            hooks.recorded(self._showcase(hooks))
        seconds = time.perf_counter() - start
        self._last = {
            "ntuple/td_error": error_sum / updates if updates else None,
            "ntuple/learning_rate": self.options.learning_rate,
            "ntuple/games_per_s": games / seconds if seconds > 0 else None,
            "ntuple/range_games": range_games,
            "ntuple/final_stage": stage_sum / games if games else None,
            "ntuple/coherent": float(self.network.coherent),
        }
        return dict(self._last)

    def _showcase(self, hooks: RunHooks):
        """Play one whole game greedily, recorded for replay."""
        from ...evaluation import record_game

        env_steps, iteration = hooks.position()
        network = self.network
        try:
            game = record_game(
                lambda obs: network.greedy_actions(obs["board"]),
                seed=self.setup.seed * 1_000_003 + iteration,
                move_values=network.move_values,
                game=network.game,
            )
        except ValueError:  # it could make 65536, beyond the tables: it is not recorded
            hooks.note("the replay game reached the n-tuple table's range and was not recorded")
            return []
        game.env_steps, game.iteration = env_steps, iteration
        hooks.recorder.add_game(game)
        return [game]

    def view(self) -> LearnerView:
        board = self.network.board
        q = in_range(self.network.move_values, board[None], NO_VALUES)[0]  # none: no values
        legal = np.isfinite(q)
        move_values = [float(v) if ok else None for v, ok in zip(q, legal)]
        actions: list[float] = []
        value = None
        if legal.any():
            best = int(np.argmax(q))
            actions = [1.0 if a == best else 0.0 for a in range(4)]  # greedy: certain
            value = float(q[best])
        td_error = self._last.get("ntuple/td_error")
        return LearnerView(
            board=board,
            actions=actions,
            value=value,
            move_values=move_values,
            losses={"loss": td_error},
            learning_rate=self.options.learning_rate,
            model_params=self.network.weights.size / 1e6,
        )

    # --- checkpoints -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        # the live tables: the Checkpointer copies them once (checkpoint.snapshot) or, short
        # of memory, writes them before training goes on
        state = self.network.state_dict(copy=False)
        arrays = [k for k in _ARRAYS if k in state]
        tensors = {k: torch.from_numpy(np.ascontiguousarray(state.pop(k))) for k in arrays}
        state["rng_state"] = str(state["rng_state"])  # a uint64: kept exact as text
        return {"ntuple": {**state, **tensors}, "ntuple_iterations": self._iterations}

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        self.network.load_state_dict(_network_state(payload))
        self.options = self.network.config
        self._iterations = payload.get("ntuple_iterations", 0)

    @classmethod
    def check_payload(cls, payload: dict[str, Any], bad: Callable[[str, str], Exception]) -> None:
        from ... import checkpoint as ck

        fields = {
            "ntuple": ck.DICT,
            "ntuple.weights": ck.TENSOR,
            "ntuple.board": ck.BYTES,
            "ntuple.prev_afterstate": ck.BYTES,
            "ntuple.rng_state": ck.TEXT,
            "ntuple.score": ck.COUNT,
            "ntuple.length": ck.COUNT,
            "ntuple.moves": ck.COUNT,
            "ntuple.games": ck.COUNT,
        }
        ck.check_fields(payload, fields, bad)
        state = payload["ntuple"]
        config = ck.build(NTupleConfig, saved_settings(state), "ntuple", bad)
        game = _network_game(payload, bad)
        want = weights_shape(config, game)
        shapes = {"weights": want, "coherence_stats": (*want, 2)}
        for name, shape in shapes.items():
            tensor = state.get(name)
            if name == "coherence_stats" and not config.coherence and tensor is None:
                continue
            if (
                not isinstance(tensor, torch.Tensor)
                or tensor.dtype != torch.float32
                or tuple(tensor.shape) != shape
            ):
                raise bad(f"ntuple.{name}", f"is {ck.show(tensor)}, not float32 {shape}")
        more = state.get("thread_boards"), state.get("thread_games")
        if more != (None, None):
            ok = all(isinstance(t, torch.Tensor) for t in more) and (
                more[0].dtype == torch.uint8
                and more[0].dim() == 4
                and tuple(more[0].shape[1:]) == (2, *game.shape)
                and more[1].dtype == torch.int64
                and tuple(more[1].shape) == (more[0].shape[0], 4)
            )
            if not ok:
                raise bad("ntuple.thread_boards", "does not hold the other threads' games")
        if config.td_horizon > 1:
            workers = 1 + (0 if more[0] is None else int(more[0].shape[0]))
            horizon = config.td_horizon
            pending = {
                "td_pending": (torch.int64, (workers, horizon, None)),
                "td_returns": (torch.float64, (workers, horizon, 2)),
                "td_pending_count": (torch.int64, (workers,)),
            }
            for name, (dtype, shape) in pending.items():
                tensor = state.get(name)
                if not (
                    isinstance(tensor, torch.Tensor)
                    and tensor.dtype == dtype
                    and tensor.dim() == len(shape)
                    and all(w in (None, n) for w, n in zip(shape, tensor.shape))
                ):
                    want = str(shape).replace("None", "features")
                    raise bad(f"ntuple.{name}", f"is {ck.show(tensor)}, not {dtype} {want}")
        for name in ("board", "prev_afterstate"):
            if tuple(state[name].shape) != game.shape:
                shape = f"({game.rows}, {game.cols})"
                raise bad(f"ntuple.{name}", f"is {ck.show(state[name])}, not a {shape} board")
        if not state["rng_state"].isdigit() or int(state["rng_state"]) >= 2**64:
            raise bad("ntuple.rng_state", "is not a 64-bit generator state")

    @classmethod
    def config_from_payload(cls, payload: dict[str, Any]) -> NTupleConfig:
        return config_of_state(payload["ntuple"])

    @classmethod
    def load_agent(cls, payload: dict[str, Any], device: torch.device) -> NTupleAgent:
        # a player needs neither the coherence statistics (2x the weights) nor more threads
        state = {**_network_state(payload), "coherence": False, "td_lambda": 0.0, "td_horizon": 1}
        for name in ("coherence_stats", "td_pending", "td_returns", "td_pending_count"):
            state.pop(name, None)
        return NTupleAgent(NTupleNetwork.from_state_dict(state, threads=1))


def _layout_name(tuples: str, game: games.Game) -> str:
    """ "4x6-tuple" for a named layout, "5x6-tuple (auto)" for the default, "custom-tuple
    (0,1,2,3;...)" for cells."""
    if tuples == AUTO:
        return f"{resolve_layout(tuples, game.rows, game.cols)}-tuple (auto)"
    return f"{tuples}-tuple" if tuples in LAYOUT_NAMES else f"custom-tuple ({tuples})"


_ARRAYS = (
    "weights",
    "coherence_stats",
    "board",
    "prev_afterstate",
    "thread_boards",
    "thread_games",
    "td_pending",
    "td_returns",
    "td_pending_count",
)
"""The state dict's arrays, saved as tensors in a checkpoint."""


def _network_game(payload: dict[str, Any], bad: Callable[[str, str], Exception]) -> games.Game:
    """The game the checkpoint's network plays: its own ``game`` field, else the run's, else
    (written before games) the default, 4x4."""
    name = payload["ntuple"].get("game") or payload.get("game") or games.DEFAULT
    if not isinstance(name, str):
        raise bad("ntuple.game", f"is {name!r}, not a game's name")
    try:
        return games.get(name)
    except games.UnknownGame as error:
        raise bad("ntuple.game", str(error)) from None


def _network_state(payload: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's ``ntuple`` field as ``NTupleNetwork.load_state_dict`` takes it (with
    the game it plays: the run's where the field has none)."""
    state = dict(payload["ntuple"])
    state["game"] = state.get("game") or payload.get("game") or games.DEFAULT
    for name in _ARRAYS:
        if name in state:
            state[name] = state[name].numpy()
    state["rng_state"] = int(state["rng_state"])
    return state


class NTupleAgent(Agent):
    """An n-tuple network as a player: greedy over afterstates, or expectimax over its
    afterstate values (``search_policy``, the engine's search). Boards beyond the tables
    (a 65536 tile, or a move that makes one) are valued by tile-downgrading
    (downgrade.py), so games go on past 32768."""

    def __init__(self, network: NTupleNetwork):
        self.network = network

    def policy(self, greedy: bool = True, seed: int = 0):
        """Greedy over afterstates, -1 where no move is legal."""
        if not greedy:
            raise ValueError("the n-tuple player has no move probabilities: drop --sampled")
        return lambda obs: self._greedy(obs["board"])

    def _greedy(self, boards: np.ndarray) -> np.ndarray:
        q = self._move_values(boards)  # (N, 4)
        actions = q.argmax(axis=1).astype(np.int64)
        actions[np.isneginf(q).all(axis=1)] = -1
        return actions

    def _values(self, boards: np.ndarray) -> np.ndarray:
        """(N, R, C) afterstates -> (N,) float32 V, those beyond the tables downgraded."""
        from .downgrade import downgraded_values
        from .network import TABLE_EXPONENTS

        return downgraded_values(self.network.values, boards, TABLE_EXPONENTS - 1)

    def _move_values(self, boards: np.ndarray) -> np.ndarray:
        """(N, R, C) boards -> (N, 4) float32 score + V(afterstate) per move, -inf where
        illegal; afterstates beyond the tables downgraded."""
        from .downgrade import downgraded_move_values
        from .network import TABLE_EXPONENTS

        network = self.network
        return downgraded_move_values(
            network.move_values, network.values, boards, TABLE_EXPONENTS - 1
        )

    TEMPERATURE = 50.0
    """Score points: a move worth 50 points less than the best gets 1/e of its weight."""

    def move_probs(self, boards, masks, temperature=None):
        """A softmax over each move's reward + afterstate value (score points), at
        ``temperature`` points (``TEMPERATURE`` by default)."""
        values = self._move_values(boards)  # (N, 4)
        return softmax_probs(values, masks, temperature or self.TEMPERATURE)

    def board_values(self, boards, masks):
        """The best legal move's reward + afterstate value (score points) per board, 0 for a
        board without a legal move."""
        values = np.where(masks, self._move_values(boards), -np.inf)  # (N, 4)
        best = values.max(axis=1)
        return np.where(np.isfinite(best), best, 0.0).astype(np.float32)

    def value_model(self):
        """Afterstate values, and the last ply of search fused in the network's compiled
        ``move_values`` kernel; boards beyond the tables downgraded."""
        from ...engine.search import ValueModel

        return ValueModel(
            values=self._values,
            of="afterstate",
            move_values=self._move_values,
            game=self.network.game,
        )

    def describe(self) -> str:
        return f"{self.network.config.tuples}-tuple network"
