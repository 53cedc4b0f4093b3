"""The seam between a run and the algorithm that learns in it.

A run (``trainer.Trainer``) owns what every algorithm shares: the thread and its
states, budgets, pause/resume/stop, message cadence, subscribers, counters, the
recorded games and assembling checkpoints. A ``Learner`` owns its algorithm: its
model or tables, optimiser, how it plays and learns, its state, its metrics, the
live insight it can show (``LearnerView``) and, when it has one, a value function
for search. A run talks to its learner only through this module's types; the
learner talks back to the run only through ``RunHooks``.

A trained learner also yields an ``Agent``: what ``eval``, ``play`` and search need
of it, built from a checkpoint without a run (``Learner.load_agent``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from .. import games

if TYPE_CHECKING:
    import torch

    from ..distributed import DistContext
    from ..engine.env import Policy
    from ..engine.search import SearchPolicy, ValueModel
    from ..recording import GameRecord, GameRecorder

__all__ = ["Agent", "Learner", "LearnerSetup", "LearnerView", "RunHooks", "softmax_probs"]


@dataclass(frozen=True)
class LearnerSetup:
    """What the run decided for its learner: the game, where it computes, how it is seeded."""

    device: torch.device
    seed: int
    dist: DistContext | None = None
    threads: int | None = None  # torch CPU threads, None on CUDA
    env_steps: int = 0  # the run's env steps so far: a resumed run's, from its checkpoint
    game: games.Game = field(default_factory=games.get)  # the run's game (TrainerConfig.game)


class RunConfig(Protocol):
    """What a learner reads of its run's settings (``trainer.TrainerConfig``)."""

    learner: str
    learner_config: Any  # the learner's ``config_class`` instance, None for its defaults
    game: str
    seed: int


class RunHooks(Protocol):
    """What a learner may ask of its run while it plays and learns."""

    recorder: GameRecorder

    def tick(self) -> bool:
        """Between two small steps (a move of every game, a minibatch, a chunk of moves):
        honours pause and stop, sends a message when one is due. False: stop now."""

    def pausing(self) -> bool:
        """A pause was asked for or is on: the next ``tick`` waits (a learner playing on
        another thread parks it before that tick, so that no move lands while paused)."""

    def progress(self) -> float:
        """The share of the run's budget spent, 0..1 (0 without a budget)."""

    def steps_left(self) -> int | None:
        """Env steps (all ranks') left in the run's budget, None without a step budget: a
        learner whose iteration is long ends it here rather than overshoot."""

    def played(self, steps: int, scores: np.ndarray, tiles: np.ndarray) -> None:
        """``steps`` moves played (all games; the run multiplies by the ranks) and the raw
        scores and largest tile values of the games that ended with them, (G,) each."""

    def recorded(self, games: list[GameRecord]) -> None:
        """Whole games cut out by ``recorder``, for replay."""

    def note(self, event: str) -> None:
        """A line for the next message's ``events`` (an out-of-memory halving, say)."""

    def position(self) -> tuple[int, int]:
        """(env steps, iterations) of the run so far, to stamp recorded games."""


@dataclass
class LearnerView:
    """What a learner shows of itself in a training update (messages.TrainingUpdate).
    What a learner does not have stays None or empty: viewers hide those panels."""

    board: np.ndarray  # (4, 4) uint8 exponents of the board on show
    actions: list[float] = field(default_factory=list)  # (4,) move probabilities, Action order
    value: float | None = None  # value estimate of the board on show
    move_values: list[float | None] | None = None  # (4,) reward + afterstate value, None illegal
    losses: dict[str, float | None] = field(default_factory=dict)  # loss, policy_loss, ...
    learning_rate: float | None = None
    attention: list | None = None  # (heads, 16, 16), last layer
    attention_layers: list | None = None  # (layers, heads, 16, 16) when small enough
    expert_usage: list[list[float]] = field(default_factory=list)  # (layers, experts)
    model_params: float | None = None  # millions of trained numbers
    minibatch_size: int | None = None
    # its own insights, keyed by the dashboard panel that draws each (plain JSON data):
    # a new insight is this entry and one ``dashboard.panels.InsightPanel``, nothing else
    insights: dict[str, Any] = field(default_factory=dict)


def softmax_probs(scores: np.ndarray, masks: np.ndarray, temperature: float) -> np.ndarray:
    """(N, 4) move scores and (N, 4) bool legal moves -> (N, 4) float32
    ``softmax(scores / temperature)`` over the legal moves, 0 elsewhere; a row without a
    legal move with a finite score is all 0."""
    scaled = np.where(masks, scores, -np.inf).astype(np.float64) / temperature  # (N, 4)
    top = scaled.max(-1, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    weights = np.where(masks, np.exp(scaled - top), 0.0)
    total = weights.sum(-1, keepdims=True)
    probs = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    return probs.astype(np.float32)


class Agent(ABC):
    """A player made from a learner's weights: a policy, and a value for search if it has
    one. Built by ``Learner.load_agent`` from a checkpoint, or ``Learner.agent()``."""

    @abstractmethod
    def policy(self, greedy: bool = True, seed: int = 0) -> Policy:
        """``obs -> actions`` (engine.env.Policy); ``greedy``: the best move, else sampled
        where the learner has a distribution over moves."""

    def move_probs(
        self, boards: np.ndarray, masks: np.ndarray, temperature: float | None = None
    ) -> np.ndarray:
        """(N, 4, 4) uint8 boards and their (N, 4) bool legal moves -> (N, 4) float32
        probability of each move, 0 where illegal (all 0 for a board without a move): what
        it teaches a student (kickstart.py). ``temperature`` None: the agent's own. An
        agent that does not override this cannot teach."""
        raise ValueError(f"{self.describe()} cannot rank moves, so it cannot teach")

    def board_values(self, boards: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """(N, R, C) uint8 boards and their (N, 4) bool legal moves -> (N,) float32 value of
        each board in score points (the raw game score still to come, undiscounted; 0 for a
        board without a move): what it teaches a student's value head (kickstart.py). An
        agent that does not override this cannot teach the value."""
        raise ValueError(f"{self.describe()} cannot value boards, so it cannot teach the value")

    def value_model(self) -> ValueModel | None:
        """The value function expectimax search uses (search.ValueModel), None if none."""
        return None

    def search_policy(
        self, depth: int | None = None, seconds: float | None = None, nodes: int | None = None
    ) -> SearchPolicy:
        """Expectimax over ``value_model()``, on its game (engine.search, the one search of
        every learner; a learner with compiled values speeds it up through
        ``ValueModel.move_values``, not with a search of its own): ``depth`` plies deep,
        or as deep as ``seconds`` or ``nodes`` per board and move allow, ``depth`` then
        the cap (``search.SearchBudget``)."""
        from ..engine.search import search_policy

        model = self.value_model()
        if model is None:
            raise ValueError(f"{self.describe()} has no value function to search with")
        return search_policy(model, depth, seconds, nodes)

    def describe(self) -> str:
        """A few words for listings: "GameTransformer 0.04 M parameters"."""
        return type(self).__name__


class Learner(ABC):
    """An algorithm that learns to play inside a run; see the module docstring.

    Subclasses set ``name`` (the ``--learner`` value, stored per run and per checkpoint),
    ``config_class`` (the dataclass of their settings, which a run's
    ``TrainerConfig.learner_config`` holds), ``flags`` (their ``--PREFIX.*`` flag groups:
    prefix -> the dataclass whose fields are the flags; ``g2048lab train`` generates them),
    and ``metrics`` (the namespaced metric names of their rows, each with its meaning), and
    register with ``learners.register``. What their ``view`` leaves None or empty, the
    dashboard hides; their own insights go in ``LearnerView.insights``.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    flags: ClassVar[dict[str, type]] = {}
    presets: ClassVar[tuple[str, ...]] = ()  # the --preset names it takes; (): no presets
    metrics: ClassVar[dict[str, str]] = {}
    distributed: ClassVar[bool] = False  # whether it trains under torchrun
    kickstarts: ClassVar[bool] = False  # whether it learns from a teacher (--teacher)

    def __init__(self, config: RunConfig, setup: LearnerSetup):
        """``config``: the run's settings; ``self.settings`` are the learner's own (its
        ``config_class``: ``config.learner_config``, or the defaults for None)."""
        self.run_config = config
        self.setup = setup
        own = config.learner_config
        self.settings = type(self).config_class() if own is None else own

    # --- what the run drives -------------------------------------------------------------

    @property
    @abstractmethod
    def parallel_games(self) -> int:
        """Games this learner plays at once (the run records up to this many)."""

    @abstractmethod
    def iterate(self, hooks: RunHooks) -> dict[str, float | None] | None:
        """One iteration of the algorithm (a rollout and an update, a chunk of games...),
        calling ``hooks.tick()`` between small steps. Returns this iteration's metric row
        (names from ``metrics``), or None if a tick said stop before it finished."""

    @abstractmethod
    def view(self) -> LearnerView:
        """The board on show and what the learner thinks of it, for the next message."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything to continue exactly: tensors, arrays as tensors and plain containers
        (``torch.load(weights_only=True)``). Merged into the run's checkpoint one level
        deep, so its keys must not clash with the run's (trainer.RUN_FIELDS)."""

    @abstractmethod
    def load_state_dict(self, payload: dict[str, Any]) -> None:
        """Continue from a checkpoint holding ``state_dict()``'s fields."""

    @abstractmethod
    def config_dict(self) -> dict[str, Any]:
        """Its settings as plain data, stored with the run (``runs``, comparisons)."""

    @abstractmethod
    def agent(self) -> Agent:
        """A player on the learner's current weights (shares them; no copy)."""

    def describe(self) -> str:
        """One line for the start of a run: what it trains, how big."""
        return self.name

    # --- checkpoints, without a run ----------------------------------------------------

    @classmethod
    @abstractmethod
    def check_payload(cls, payload: dict[str, Any], bad: Callable[[str, str], Exception]) -> None:
        """Raise ``bad(field, problem)`` for the first of its fields that a reader cannot
        use. Cheap: no weights allocated (learners.loading.load_checkpoint calls it)."""

    @classmethod
    @abstractmethod
    def config_from_payload(cls, payload: dict[str, Any]) -> Any:
        """The learner's settings (a ``config_class``) that rebuild it as saved."""

    @classmethod
    def config_from_flags(
        cls,
        groups: dict[str, dict[str, Any]],
        preset: str | None = None,
        teacher: str | None = None,
        device: torch.device | str = "auto",
    ) -> Any:
        """Its settings (a ``config_class``) from ``g2048lab train``'s flags: ``groups``
        {prefix: {field: value}} of its ``flags`` given (values checked against their ranges),
        ``--preset`` (only given when it has ``presets``), ``--teacher`` as a checkpoint path
        (only given when it ``kickstarts``) and the device the run asked for. The default
        serves a learner whose flag group, if any, is its ``config_class``."""
        if any(group is not cls.config_class for group in cls.flags.values()):
            raise TypeError(f"the {cls.name} learner's flags need its own config_from_flags")
        return cls.config_class(**{k: v for p in cls.flags for k, v in groups.get(p, {}).items()})

    @classmethod
    def config_with_teacher(cls, settings: Any, source: str) -> Any:
        """``settings`` with their teacher now at ``source`` (``train --resume RUN
        --teacher PATH``: where a kickstarted run's teacher moved to)."""
        raise ValueError(f"the {cls.name} learner learns alone: drop --teacher")

    @classmethod
    @abstractmethod
    def load_agent(cls, payload: dict[str, Any], device: torch.device) -> Agent:
        """A player from a checkpoint's fields, on ``device``."""
