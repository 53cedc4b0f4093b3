"""What training a ``GameTransformer`` costs in memory, estimated before anything is allocated.

PPO needs the weights, their gradients and Adam's two moments (4 float32 numbers per
parameter), the rollout's storage, a forward pass over every game at once while it plays,
and the saved activations of a training minibatch. Out of memory, the update halves its
minibatch down to ``ppo.MIN_MINIBATCH`` (16 boards), so only that many boards' activations
must fit for the run to work at all: ``ppo_training_bytes`` counts those.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from g2048lab.model.config import ModelConfig
from g2048lab.model.transformer import GameTransformer

__all__ = ["TrainingMemory", "count_parameters", "ppo_training_bytes"]

FLOAT_BYTES = 4
ROLLOUT_BYTES_PER_SAMPLE = 16 + 4 + 8 + 4 * 4 + 4 * 4  # board, mask, action, 4 floats, teacher


def count_parameters(config: ModelConfig) -> int:
    """The model's parameters, counted on PyTorch's meta device: no memory is allocated."""
    with torch.device("meta"):
        model = GameTransformer(config)
    return sum(p.numel() for p in model.parameters())


def token_floats(config: ModelConfig) -> int:
    """Float32 activations one token keeps per layer for the backward pass, roughly: the two
    layer norms' inputs and outputs, q, k, v, the attention's output and projection, one row
    of each head's attention, the router's scores, and for each of its ``top_k`` experts the
    gathered input, the hidden layer before and after GELU and the output."""
    c, k = config.d_model, config.top_k
    return (
        10 * c
        + config.n_heads * config.tokens
        + config.n_experts
        + k * (2 * c + 2 * config.d_expert)
    )


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes of PPO training, by part."""

    parameters: int  # count, not bytes
    optimizer: int  # weights, gradients and Adam's two moments
    rollout: int  # the rollout's storage and one forward pass over every game
    minibatch: int  # activations of the smallest minibatch the update falls back to

    @property
    def total(self) -> int:
        return self.optimizer + self.rollout + self.minibatch


def ppo_training_bytes(config: ModelConfig, games: int, steps: int, boards: int) -> TrainingMemory:
    """The least memory PPO training can run in: ``games`` parallel games of ``steps`` moves
    per rollout and minibatches of ``boards`` boards (``ppo.MIN_MINIBATCH``, or the whole
    minibatch to ask whether it fits without halving)."""
    parameters = count_parameters(config)
    per_board = config.tokens * token_floats(config) * FLOAT_BYTES  # one layer
    forward = games * per_board  # inference keeps one layer's activations at a time
    storage = games * steps * ROLLOUT_BYTES_PER_SAMPLE
    return TrainingMemory(
        parameters=parameters,
        optimizer=4 * FLOAT_BYTES * parameters,
        rollout=storage + forward,
        minibatch=boards * config.n_layers * per_board,
    )
