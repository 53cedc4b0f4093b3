"""The policy/value network: a transformer over the 16 tiles with sparse MoE feed-forwards.

``GameTransformer(ModelConfig.from_preset("cpu"))(boards, action_mask)`` returns a
``ModelOutput``. ``PRESETS`` is the one table of named sizes.
"""

from g2048lab.model.config import PRESETS, ModelConfig
from g2048lab.model.moe import (
    MoEFeedForward,
    Routing,
    load_balancing_loss,
    route,
    routed_fraction,
    router_z_loss,
)
from g2048lab.model.transformer import GameTransformer, ModelOutput, ParamCount

__all__ = [
    "PRESETS",
    "GameTransformer",
    "ModelConfig",
    "ModelOutput",
    "MoEFeedForward",
    "ParamCount",
    "Routing",
    "load_balancing_loss",
    "route",
    "routed_fraction",
    "router_z_loss",
]
