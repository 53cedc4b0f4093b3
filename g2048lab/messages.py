"""The training-update message: one dataclass, one JSON form, versioned.

The trainer emits a ``TrainingUpdate`` at most about twice a second and at least
every 2 s while it runs; the dashboard, the console and the run store consume it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["SCHEMA_VERSION", "TrainingUpdate"]

SCHEMA_VERSION = 1


@dataclass
class TrainingUpdate:
    """A snapshot of a training run, for displays.

    Loss fields are None until the first update, and for learners without them. Lists
    are plain Python lists so that the message is JSON as it is.
    """

    run_id: str
    iteration: int  # PPO updates finished
    episode: int  # games finished, all envs
    env_steps: int  # moves played, all envs
    score: float | None  # mean raw score of recently finished games
    max_tile: int  # largest tile reached in any game so far
    loss: float | None
    policy_loss: float | None
    value_loss: float | None
    entropy: float | None  # nats, mean over the last update's samples
    learning_rate: float | None  # None for a learner without one
    actions: list[float]  # (4,) probabilities for the shown board, in Action order; [] if none
    board_state: list[list[int]]  # (4, 4) tile values of the shown board
    attention_weights: list[list[list[float]]] | None  # (heads, 16, 16), last layer
    expert_usage: list[list[float]]  # (layers, experts) fraction of routed token slots
    gpu_memory: float | None  # GB allocated on CUDA, None on CPU
    model_params: float | None  # millions of trained numbers (weights), total
    steps_per_second: float  # env steps per second of wall time, recent
    timestamp: float  # Unix seconds
    # Beyond the design's list: what a viewer also needs to tell the state of a run.
    status: str = "running"  # idle | running | paused | stopping | finished | failed
    value: float | None = None  # value estimate of the shown board
    aux_loss: float | None = None  # MoE load-balancing loss
    best_score: int = 0  # best raw score of a finished game
    elapsed_s: float = 0.0  # wall time spent running (pauses excluded)
    process_memory: float | None = None  # GB resident (RSS) of the training process
    minibatch_size: int | None = None  # current, after any out-of-memory halving
    events: list[str] = field(default_factory=list)  # since the last message: OOM, NaN, ...
    # [score, max tile] of games finished since the last message (an even sample if many)
    finished_games: list[list[int]] = field(default_factory=list)
    # (layers, heads, 16, 16) for the shown board when small enough, else None
    attention_layers: list[list[list[list[float]]]] | None = None
    learner: str = "ppo"  # the algorithm (learners.names()); what it lacks is None or empty
    # (4,) reward + value of each move's afterstate on the shown board, None where illegal;
    # None for learners without afterstate values
    move_values: list[float | None] | None = None
    # a learner's own insights, keyed by the dashboard panel that draws each (JSON data);
    # older readers drop the field, so the schema version stays
    insights: dict[str, Any] = field(default_factory=dict)
    type: str = "training_update"
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        """One line of JSON; NaN and infinities become null (JSON has no such numbers)."""
        return json.dumps(_finite(asdict(self)), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> TrainingUpdate:
        """Parse ``to_json``'s output. Raises ValueError for another message type or a
        newer schema; unknown extra keys (from a newer minor writer) are ignored."""
        data = json.loads(text)
        if data.get("type") != "training_update":
            raise ValueError(f"not a training update: type={data.get('type')!r}")
        version = data.get("schema_version", 0)
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"training update schema {version} is newer than this g2048lab reads "
                f"({SCHEMA_VERSION}); upgrade g2048lab"
            )
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
