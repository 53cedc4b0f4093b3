"""The n-tuple learner: TD(0) on afterstates with a 4x6-tuple network (``--learner ntuple``).

The classic strong baseline for 2048 (Szubert & Jaskowski 2014; network.py): one game at
a time in one compiled kernel, greedy over the four afterstates, learning after every
move, on the run's game (``LearnerSetup.game``: the tuples are placed for its board). An
iteration is ``ITERATION_MOVES`` moves in chunks of ``CHUNK_MOVES`` with a tick between
chunks, so pause and stop take effect within a few milliseconds; it ends early where the
run's budget ends, so ``--steps N`` trains exactly N moves. The weights are 268 MB on 4x4
(float32, 4 x 16**6; 403 MB on 5x5); memory is checked before they are allocated.

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
from .network import NTupleConfig, NTupleNetwork, weights_shape

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
    """TD(0) n-tuple network; see the module docstring. Settings: an ``NTupleConfig`` (its
    seed is the run's), the ``--ntuple.*`` flags."""

    name = "ntuple"
    config_class = NTupleConfig
    flags = {"ntuple": NTupleConfig}
    metrics = {
        "ntuple/td_error": "mean |TD error| per update over the iteration, in game score",
        "ntuple/learning_rate": "the TD step as a share of the error (spread over the features)",
        "ntuple/games_per_s": "training games finished per second over the iteration",
        "ntuple/range_games": "games ended at the table's range (a 65536 tile within reach)",
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

    def describe(self) -> str:
        network = self.network
        return (
            f"ntuple: {self.options.tuples}-tuple network, {len(network.layout)} tuples on "
            f"{network.game.rows}x{network.game.cols} ({network.weights.nbytes / 1e6:,.0f} MB "
            f"of weights), TD(0), learning rate {self.options.learning_rate}"
        )

    def config_dict(self) -> dict[str, Any]:
        return {"ntuple": asdict(self.options)}

    def agent(self) -> NTupleAgent:
        return NTupleAgent(self.network)

    def iterate(self, hooks: RunHooks) -> dict[str, float | None] | None:
        start = time.perf_counter()
        error_sum, updates, games, range_games = 0.0, 0, 0, 0
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
        state = self.network.state_dict(copy=False)  # saved in this thread before training goes on
        tensors = {
            "weights": torch.from_numpy(state.pop("weights")),
            "board": torch.from_numpy(np.ascontiguousarray(state.pop("board"))),
            "prev_afterstate": torch.from_numpy(np.ascontiguousarray(state.pop("prev_afterstate"))),
        }
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
        settings = {k: state[k] for k in asdict(NTupleConfig()) if k in state}
        config = ck.build(NTupleConfig, settings, "ntuple", bad)
        game = _network_game(payload, bad)
        weights = state["weights"]
        want = weights_shape(config, game)
        if weights.dtype != torch.float32 or tuple(weights.shape) != want:
            raise bad("ntuple.weights", f"is {ck.show(weights)}, not float32 {want}")
        for name in ("board", "prev_afterstate"):
            if tuple(state[name].shape) != game.shape:
                shape = f"({game.rows}, {game.cols})"
                raise bad(f"ntuple.{name}", f"is {ck.show(state[name])}, not a {shape} board")
        if not state["rng_state"].isdigit() or int(state["rng_state"]) >= 2**64:
            raise bad("ntuple.rng_state", "is not a 64-bit generator state")

    @classmethod
    def config_from_payload(cls, payload: dict[str, Any]) -> NTupleConfig:
        state = payload["ntuple"]
        return NTupleConfig(**{k: state[k] for k in asdict(NTupleConfig())})

    @classmethod
    def load_agent(cls, payload: dict[str, Any], device: torch.device) -> NTupleAgent:
        return NTupleAgent(NTupleNetwork.from_state_dict(_network_state(payload)))


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
    for name in ("weights", "board", "prev_afterstate"):
        state[name] = state[name].numpy()
    state["rng_state"] = int(state["rng_state"])
    return state


class NTupleAgent(Agent):
    """An n-tuple network as a player: greedy over afterstates, or expectimax over its
    afterstate values (``search_policy``, the engine's search)."""

    def __init__(self, network: NTupleNetwork):
        self.network = network

    def policy(self, greedy: bool = True, seed: int = 0):
        """Greedy over afterstates; -1 for a board a move of which would make a tile beyond
        the tables (65536): ``evaluate`` ends that game there and counts it."""
        if not greedy:
            raise ValueError("the n-tuple player has no move probabilities: drop --sampled")
        return lambda obs: self._greedy(obs["board"])

    def _greedy(self, boards: np.ndarray) -> np.ndarray:
        return in_range(self.network.greedy_actions, boards, -1).astype(np.int64)

    TEMPERATURE = 50.0
    """Score points: a move worth 50 points less than the best gets 1/e of its weight."""

    def move_probs(self, boards, masks, temperature=None):
        """A softmax over each move's reward + afterstate value (score points), at
        ``temperature`` points (``TEMPERATURE`` by default)."""
        # (N, 4); a board past the table's range is not taught (-inf everywhere)
        values = in_range(self.network.move_values, boards, NO_VALUES).astype(np.float32)
        return softmax_probs(values, masks, temperature or self.TEMPERATURE)

    def value_model(self):
        """Afterstate values, and the last ply of search fused in the network's compiled
        ``move_values`` kernel."""
        from ...engine.search import ValueModel

        network = self.network
        return ValueModel(
            values=network.values,
            of="afterstate",
            move_values=network.move_values,
            game=network.game,
        )

    def describe(self) -> str:
        return f"{self.network.config.tuples}-tuple network"
