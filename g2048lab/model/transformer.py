"""GameTransformer: a pre-norm transformer over the tiles of a 2048 board (16 on 4x4).

Each tile is a token: a learned embedding of its exponent plus a learned row and a
learned column embedding. Blocks are multi-head self-attention then a sparse
Mixture-of-Experts feed-forward (``moe.py``). The policy head reads all the tokens and
gives one logit per ``g2048lab.engine.rules.Action`` (UP, RIGHT, DOWN, LEFT), illegal ones set
to ``-inf``; the value head gives one scalar per board.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from g2048lab.model.config import ModelConfig
from g2048lab.model.moe import (
    FeedForward,
    MoEFeedForward,
    Routing,
    load_balancing_loss,
    routed_fraction,
    router_z_loss,
)

N_ACTIONS = 4


@dataclass
class ModelOutput:
    """What ``GameTransformer.forward`` returns for a batch of ``N`` boards."""

    logits: Tensor  # (N, 4) in Action order; -inf for illegal actions
    value: Tensor  # (N,)
    aux_loss: Tensor  # () load-balancing loss, mean over layers; 1.0 when balanced, 0 if dense
    z_loss: Tensor  # () router z-loss, mean over layers; 0 if dense
    expert_usage: Tensor  # (n_layers, n_experts) share of routed token slots; ones (L, 1) if dense
    attention: Tensor | None  # (n_layers, N, n_heads, T, T) T = cells; rows sum to 1, when asked


@dataclass
class ParamCount:
    """Parameter counts: all of them, and those one token actually uses (top_k experts)."""

    total: int
    active: int


class SelfAttention(nn.Module):
    """Multi-head self-attention over the tiles (no causal mask: every tile sees all)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_heads = config.n_heads
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, return_attention: bool = False) -> tuple[Tensor, Tensor | None]:
        """``x`` (N, T, C) -> ``(y (N, T, C), weights (N, heads, T, T) or None)``."""
        N, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (N, T, C)
        q = q.view(N, T, self.n_heads, C // self.n_heads).transpose(1, 2)  # (N, nh, T, hs)
        k = k.view(N, T, self.n_heads, C // self.n_heads).transpose(1, 2)  # (N, nh, T, hs)
        v = v.view(N, T, self.n_heads, C // self.n_heads).transpose(1, 2)  # (N, nh, T, hs)
        if return_attention:
            # Explicit weights, only when a caller wants to look at them; the same
            # computation as the fused kernel below.
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (N, nh, T, T)
            att = att.softmax(dim=-1)
            y = self.attn_dropout(att) @ v  # (N, nh, T, hs)
        else:
            att = None
            y = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0
            )  # (N, nh, T, hs)
        y = y.transpose(1, 2).reshape(N, T, C)  # (N, T, C)
        return self.resid_dropout(self.proj(y)), att


class Block(nn.Module):
    """Pre-norm residual block: ``x + attn(ln(x))`` then ``x + ffn(ln(x))``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model)
        self.attn = SelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.d_model)
        if config.dense:
            self.ffn = FeedForward(config.d_model, config.top_k * config.d_expert, config.dropout)
        else:
            self.ffn = MoEFeedForward(config)

    def forward(
        self, x: Tensor, return_attention: bool = False
    ) -> tuple[Tensor, Routing | None, Tensor | None]:
        """``x`` (N, T, C) -> ``(x (N, T, C), routing or None if dense, attention or None)``."""
        a, att = self.attn(self.ln_1(x), return_attention)
        x = x + a
        if isinstance(self.ffn, MoEFeedForward):
            m, routing = self.ffn(self.ln_2(x))
        else:
            m, routing = self.ffn(self.ln_2(x)), None
        return x + m, routing, att


class GameTransformer(nn.Module):
    """Policy and value network over batches of 2048 boards."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        C = config.d_model
        self.tile_emb = nn.Embedding(config.vocab_size, C)
        self.row_emb = nn.Parameter(torch.empty(config.rows, C))
        self.col_emb = nn.Parameter(torch.empty(config.cols, C))
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(C)
        # Both heads read the T = rows * cols normalised tokens in board order, so a move's
        # logit can weigh each cell by where it is.
        self.policy_head = nn.Linear(config.tokens * C, N_ACTIONS)
        self.value_head = nn.Linear(config.tokens * C, 1)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        """All initialisation, in one place."""
        nn.init.normal_(self.row_emb, mean=0.0, std=0.02)
        nn.init.normal_(self.col_emb, mean=0.0, std=0.02)
        for name, module in self.named_modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            elif isinstance(module, nn.Linear):
                std = 0.02
                if name.endswith(".proj"):
                    # Projections back into the residual stream (attention and every
                    # expert), scaled by depth as in GPT-2.
                    std = 0.02 / math.sqrt(2 * self.config.n_layers)
                elif module is self.policy_head or module is self.value_head:
                    # Each output starts with std ~0.01 for unit-variance inputs: a
                    # near-uniform policy over legal moves and a value near zero.
                    std = 0.01 / math.sqrt(module.in_features)
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(
        self, boards: Tensor, action_mask: Tensor, return_attention: bool = False
    ) -> ModelOutput:
        """Policy logits, values and routing statistics for a batch of boards.

        ``boards`` (N, rows, cols) uint8 tile exponents (0 empty, 1 = tile 2, ... up to
        ``vocab_size - 1``); ``action_mask`` (N, 4) bool, True where the move is legal, in
        ``Action`` order. Illegal moves get ``-inf`` logits, so probability exactly 0. A
        board with no legal move (game over) keeps all four logits finite instead, so
        softmax and log-probabilities stay free of NaN; its action is never used.
        ``return_attention=True`` also returns every layer's attention weights (slower:
        it skips the fused attention kernel).
        """
        N = self._check_inputs(boards, action_mask)
        C, T = self.config.d_model, self.config.tokens
        pos = (self.row_emb[:, None, :] + self.col_emb[None, :, :]).view(T, C)  # (T, C)
        x = self.drop(self.tile_emb(boards.reshape(N, T).long()) + pos)  # (N, T, C)

        routings: list[Routing] = []
        attentions: list[Tensor] = []
        for block in self.blocks:
            x, routing, att = block(x, return_attention)
            if routing is not None:
                routings.append(routing)
            if att is not None:
                attentions.append(att)
        x = self.ln_f(x).reshape(N, T * C)  # (N, T*C)

        logits = self.policy_head(x).float()  # (N, 4)
        any_legal = action_mask.any(dim=-1, keepdim=True)  # (N, 1)
        logits = logits.masked_fill(~action_mask & any_legal, float("-inf"))
        value = self.value_head(x).float().squeeze(-1)  # (N,)

        if routings:
            n_experts = self.config.n_experts
            aux_loss = torch.stack(
                [load_balancing_loss(r.probs, r.indices, n_experts) for r in routings]
            ).mean()
            z_loss = torch.stack([router_z_loss(r.logits) for r in routings]).mean()
            expert_usage = torch.stack([routed_fraction(r.indices, n_experts) for r in routings])
        else:
            aux_loss = z_loss = torch.zeros((), device=x.device)
            expert_usage = torch.ones(self.config.n_layers, 1, device=x.device)
        return ModelOutput(
            logits=logits,
            value=value,
            aux_loss=aux_loss,
            z_loss=z_loss,
            expert_usage=expert_usage,
            attention=torch.stack(attentions) if return_attention else None,
        )

    def _check_inputs(self, boards: Tensor, action_mask: Tensor) -> int:
        """Raise a one-line ValueError for inputs the model cannot read; return N."""
        shape = (self.config.rows, self.config.cols)
        if boards.dim() != 3 or tuple(boards.shape[1:]) != shape:
            raise ValueError(
                f"boards must have shape (N, {shape[0]}, {shape[1]}) for this model, got "
                f"{tuple(boards.shape)}; a model reads the board of the game it was built for"
            )
        N = boards.shape[0]
        if action_mask.shape != (N, N_ACTIONS) or action_mask.dtype != torch.bool:
            raise ValueError(
                f"action_mask must be a bool tensor of shape ({N}, 4), got "
                f"{action_mask.dtype} {tuple(action_mask.shape)}"
            )
        if boards.dtype.is_floating_point or boards.dtype.is_complex:
            raise ValueError(f"boards must hold integer tile exponents, got {boards.dtype}")
        if N and (boards.min() < 0 or boards.max() >= self.config.vocab_size):
            raise ValueError(
                f"tile exponents must be in 0..{self.config.vocab_size - 1}, got "
                f"{int(boards.min())}..{int(boards.max())}; raise ModelConfig.vocab_size"
            )
        return N

    def num_params(self) -> ParamCount:
        """Total parameters, and the parameters one token uses (only ``top_k`` experts)."""
        total = sum(p.numel() for p in self.parameters())
        unused = 0
        for block in self.blocks:
            if isinstance(block.ffn, MoEFeedForward):
                per_expert = sum(p.numel() for p in block.ffn.experts[0].parameters())
                unused += (len(block.ffn.experts) - block.ffn.top_k) * per_expert
        return ParamCount(total=total, active=total - unused)
