"""The PPO learner's transformer as a player: ``TransformerAgent`` (what ``agent()`` and
``load_agent`` give evaluation, search and a student's teacher slot) and ``model_policy``
(greedy or sampled moves from a ``GameTransformer``)."""

from __future__ import annotations

import numpy as np
import torch

from ... import games
from ...engine.env import Policy, RewardConfig
from ...model import GameTransformer
from ..base import Agent, softmax_probs
from .algorithm import RunningMeanStd, sample_actions

__all__ = ["TransformerAgent", "model_policy"]


class TransformerAgent(Agent):
    """A ``GameTransformer`` as a player: its policy head, and its value head (in the
    training reward's units) for search."""

    def __init__(
        self,
        model: GameTransformer,
        return_stats: RunningMeanStd,
        gamma: float,
        reward: RewardConfig,
        game: games.Game | None = None,
    ):
        """``game``: the game the model plays (its board shape, spawn rule for search)."""
        self.model, self.return_stats, self.gamma, self.reward = model, return_stats, gamma, reward
        self.game = game or games.get()

    def policy(self, greedy: bool = True, seed: int = 0):
        return model_policy(self.model, greedy=greedy, seed=seed)

    def move_probs(self, boards, masks, temperature=None):
        """Its policy: a softmax over the logits / ``temperature`` (1 by default)."""
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            logits = self.model(
                torch.from_numpy(boards).to(device), torch.from_numpy(masks).to(device)
            ).logits
        return softmax_probs(logits.float().cpu().numpy(), masks, temperature or 1.0)

    def value_model(self):
        from ...engine.search import transformer_value_model

        self.model.eval()
        return transformer_value_model(
            self.model,
            gamma=self.gamma,
            return_mean=self.return_stats.mean,
            return_std=self.return_stats.std,
            reward=self.reward,
            game=self.game,
        )

    def describe(self) -> str:
        return f"GameTransformer, {self.model.num_params().total / 1e6:.2f} M parameters"


def model_policy(model, greedy: bool = True, seed: int = 0) -> Policy:
    """A policy from a ``GameTransformer``: the most probable legal move (``greedy``),
    or a move sampled from its probabilities. Runs on the model's device, in inference mode."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)

    def policy(obs: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            boards = torch.from_numpy(obs["board"]).to(device)
            masks = torch.from_numpy(obs["action_mask"]).to(device)
            logits = model(boards, masks).logits
            if greedy:
                return logits.argmax(-1).cpu().numpy()
            return sample_actions(logits, generator)[0].cpu().numpy()

    return policy
