"""g2048lab: a workbench for training 2048 agents (a Mixture-of-Experts transformer, PPO)."""

import gymnasium

from .engine.rules import Action

__version__ = "0.1.0"
__all__ = ["Action", "__version__"]

if "g2048lab/Game2048-v0" not in gymnasium.registry:
    gymnasium.register(id="g2048lab/Game2048-v0", entry_point="g2048lab.engine.env:Game2048Env")
