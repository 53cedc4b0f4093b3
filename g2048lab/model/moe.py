"""The sparse Mixture-of-Experts feed-forward and its auxiliary losses.

A router scores every token against every expert (in float32, so that bf16 autocast
cannot flip which expert wins), each token goes to its ``top_k`` experts, and only those
experts compute it: the dispatch is a loop over experts that gathers the token slots
routed to each one, runs the expert on them and adds the weighted result back, as in
mistral-inference's ``moe.py``. On 2 CPU cores this measured as fast as sorting all slots
by expert once or padding them into one batched matmul, and it is the simplest. The
losses that keep the router honest are separate pure functions over what it returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from g2048lab.model.config import ModelConfig


class FeedForward(nn.Module):
    """A two-layer GELU MLP, ``d_model -> hidden -> d_model``: one expert, or the dense baseline."""

    def __init__(self, d_model: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.fc = nn.Linear(d_model, hidden, bias=False)
        self.proj = nn.Linear(hidden, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


@dataclass
class Routing:
    """What the router decided for ``T`` tokens and ``E`` experts."""

    logits: Tensor  # (T, E) float32
    probs: Tensor  # (T, E) float32, softmax of logits
    weights: Tensor  # (T, top_k) float32, mixing weight of each chosen expert
    indices: Tensor  # (T, top_k) int64, the chosen experts, most probable first


def route(x: Tensor, router: nn.Linear, top_k: int) -> Routing:
    """Route tokens ``x`` (T, C) to their ``top_k`` experts, in float32 whatever the autocast."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        logits = F.linear(x.float(), router.weight.float())  # (T, E)
    probs = logits.softmax(dim=-1)  # (T, E)
    weights, indices = probs.topk(top_k, dim=-1)  # (T, k), (T, k)
    if top_k > 1:
        # Renormalised over the chosen experts (Mixtral). With top_k=1 this would make every
        # weight 1 and cut the router off from the task loss, so top-1 keeps the raw
        # probability as a gate, as in Switch Transformer.
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return Routing(logits=logits, probs=probs, weights=weights, indices=indices)


BUCKET_ROWS = 256
"""Each expert's batch is padded up to a multiple of this many rows (token 0, weight 0),
so its tensors take a few sizes instead of a new one every minibatch: with sizes that
change every call, glibc's heap fragments and a long CPU run's memory grows. The padded
rows add exact zeros to the output and to every gradient."""


class MoEFeedForward(nn.Module):
    """Sparse top-k Mixture of Experts: each token is computed only by its chosen experts."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.top_k = config.top_k
        self.router = nn.Linear(config.d_model, config.n_experts, bias=False)
        self.experts = nn.ModuleList(
            FeedForward(config.d_model, config.d_expert, config.dropout)
            for _ in range(config.n_experts)
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Routing]:
        """``x`` (N, T, C) -> ``(y (N, T, C), routing over the N * T tokens)``."""
        shape = x.shape
        x = x.reshape(-1, shape[-1])  # (N*T, C)
        routing = route(x, self.router, self.top_k)
        slot_expert = routing.indices.reshape(-1)  # (N*T*k,) expert of each token slot
        slot_weight = routing.weights.reshape(-1)  # (N*T*k,)
        y = torch.zeros_like(x)  # (N*T, C)
        for e, expert in enumerate(self.experts):
            slots = torch.nonzero(slot_expert == e).squeeze(1)  # (n_e,) slots routed to e
            token = slots // self.top_k  # (n_e,)
            weight = slot_weight.index_select(0, slots)  # (n_e,)
            pad = -len(slots) % BUCKET_ROWS
            if pad and len(slots) > BUCKET_ROWS:  # see BUCKET_ROWS: the pad adds exact zeros
                token = torch.cat([token, token.new_zeros(pad)])
                weight = torch.cat([weight, weight.new_zeros(pad)])
            # An expert that got no tokens still runs on an empty batch: it costs nothing
            # and keeps every parameter in the graph, which DistributedDataParallel expects.
            out = expert(x.index_select(0, token))  # (n_e', C)
            out = out * weight.unsqueeze(1)  # (n_e', C)
            y.index_add_(0, token, out.to(y.dtype))
        return y.view(shape), routing


def routed_fraction(expert_indices: Tensor, n_experts: int) -> Tensor:
    """Fraction of the routed token slots ``expert_indices`` (T, k) sent to each expert (E,).

    This is the f_i of Switch Transformer (Fedus et al. 2021, eq. 5), counted over all
    ``T * k`` slots so that it sums to 1 for any ``top_k``. Not differentiable.
    """
    counts = torch.bincount(expert_indices.flatten(), minlength=n_experts)  # (E,)
    return counts.float() / expert_indices.numel()


def load_balancing_loss(router_probs: Tensor, expert_indices: Tensor, n_experts: int) -> Tensor:
    """Switch Transformer's auxiliary load-balancing loss (Fedus et al. 2021, eq. 4-6).

    ``loss = n_experts * sum_i f_i * P_i`` where ``f_i`` is the fraction of routed token
    slots sent to expert ``i`` (``routed_fraction``) and ``P_i`` the mean router probability
    of expert ``i`` over the ``T`` tokens. ``router_probs`` is (T, E), ``expert_indices``
    (T, k). It is 1.0 for perfectly uniform routing (``f_i = P_i = 1 / E``), its minimum
    whenever the router's probabilities agree with its choices (``P = f`` gives
    ``E * sum f_i^2 >= 1``), and ``n_experts`` when every token goes to one expert with
    certainty. Only ``P`` carries gradient, so the loss pushes probability away from
    overloaded experts.
    """
    f = routed_fraction(expert_indices, n_experts).to(router_probs.dtype)  # (E,)
    p = router_probs.mean(dim=0)  # (E,)
    return n_experts * torch.sum(f * p)


def router_z_loss(router_logits: Tensor) -> Tensor:
    """ST-MoE's router z-loss (Zoph et al. 2022, eq. 5): mean over tokens of logsumexp².

    Keeps router logits (T, E) small, which keeps the float32 softmax well-conditioned.
    """
    return torch.logsumexp(router_logits, dim=-1).square().mean()
