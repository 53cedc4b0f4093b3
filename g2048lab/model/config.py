"""The model's configuration dataclass and the table of named presets."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from .. import games
from ..settings import check_settings, setting


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a ``GameTransformer``; every module takes this one object.

    ``rows`` x ``cols`` is the board it reads (one token per cell): the PPO learner sets
    them from the run's game (``games.Game.shape``); 4x4 is the original game.

    Widths are in features per token. With ``dense=True`` each block's feed-forward is a
    plain MLP of hidden width ``top_k * d_expert``: the same parameters and compute per
    token as the MoE's active experts, which makes it the baseline the MoE is timed against.
    The defaults are the ``cpu`` preset.
    """

    d_model: int = setting(32, ge=1)
    n_heads: int = setting(2, ge=1)  # attention heads; must divide d_model
    n_layers: int = setting(1, ge=1)
    n_experts: int = setting(8, ge=1)
    top_k: int = setting(2, ge=1)  # experts per token, at most n_experts
    d_expert: int = setting(64, ge=1)  # hidden width of one expert's MLP
    # tile exponents 0..vocab_size-1, 0 empty; the 4x4 game reaches 2**17, so at least 18
    vocab_size: int = setting(32, ge=games.get().max_exponent + 1)
    dropout: float = setting(0.0, ge=0, lt=1)
    dense: bool = False
    # the board's rows and columns (rows * cols tokens), set from the run's game: no flag
    rows: int = setting(4, ge=2, le=8, flag=False)
    cols: int = setting(4, ge=2, le=8, flag=False)

    def __post_init__(self) -> None:
        check_settings(self)  # ranges first: n_heads=0 must not reach the division below
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.top_k > self.n_experts:
            raise ValueError(f"top_k={self.top_k} must be between 1 and n_experts={self.n_experts}")

    @property
    def tokens(self) -> int:
        """Tokens per board: one per cell."""
        return self.rows * self.cols

    @classmethod
    def from_preset(cls, name: str, **overrides) -> ModelConfig:
        """The preset ``name`` from ``PRESETS``, with any fields replaced by ``overrides``.

        ``ModelConfig.from_preset("cpu", n_layers=1)``. The name ``auto`` is not a size: the
        device manager picks a preset from the device and its free memory.
        """
        if name == "auto":
            raise ValueError(
                "preset 'auto' depends on the device: resolve 'auto' with g2048lab.device "
                "first, or pick one of " + ", ".join(PRESETS)
            )
        if name not in PRESETS:
            raise ValueError(
                f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)} (or 'auto')"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(
                f"unknown ModelConfig field(s) {', '.join(unknown)}; fields: {', '.join(known)}"
            )
        return replace(PRESETS[name], **overrides)


# One table, one source of truth. Experts are 2 * d_model wide, so the two active experts
# of a token cost what a standard 4 * d_model feed-forward costs.
PRESETS: dict[str, ModelConfig] = {
    # Tests and CI: builds and trains in seconds.
    "tiny": ModelConfig(d_model=32, n_heads=2, n_layers=1, n_experts=4, top_k=2, d_expert=64),
    # The default on a CPU-only machine, chosen with bench/learn.py on 2 cores: on a CPU the
    # update dominates, so env steps per second decide how far PPO gets in minutes. Side by
    # side for 30 minutes (1 thread each, linear lr), this model (41k parameters, ~4-5k env
    # steps/s) reached a greedy mean score of 8,920 with the 1024 tile in 33% of 200 games;
    # d_model 64 with 4 experts of 128 (90k, ~2k steps/s) reached 8,542 and 27%. Eight
    # experts instead of tiny's four add capacity at the same cost per token.
    "cpu": ModelConfig(d_model=32, n_heads=2, n_layers=1, n_experts=8, top_k=2, d_expert=64),
    # A GPU with little memory.
    "small": ModelConfig(d_model=256, n_heads=8, n_layers=4, n_experts=8, top_k=2, d_expert=512),
    # The design's architecture, for the target 8 GB card (RTX 3070 Ti).
    "base": ModelConfig(d_model=512, n_heads=16, n_layers=8, n_experts=8, top_k=2, d_expert=1024),
}
