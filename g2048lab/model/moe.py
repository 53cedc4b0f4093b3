"""The sparse Mixture-of-Experts feed-forward and its auxiliary losses.

A router scores every token against every expert (in float32, so that bf16 autocast
cannot flip which expert wins), each token goes to its ``top_k`` experts, and only those
experts compute it. The dispatch sorts the token slots by expert once
(``dispatch_layout``), gathers them into one tensor, runs each expert on its block
through ``split`` views and adds the weighted results back with one scatter. On 2 CPU
cores that is faster than a gather and a scatter per expert (mistral-inference's loop),
whose copies and zero-filled gradients cost more than the experts' matmuls. The losses
that keep the router honest are separate pure functions over what the router returned.
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
    """Route tokens ``x`` (T, C) to their ``top_k`` experts, in float32 whatever the autocast.

    The scores are computed expert-major, (E, T), and the fields are transposed views:
    PyTorch's CPU softmax over a last dimension of 8 runs about 9x slower than over the
    first dimension of the transposed tensor (1.7 ms against 0.19 ms for 16,384 tokens).
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        logits_t = router.weight.float() @ x.float().t()  # (E, T)
    probs_t = logits_t.softmax(dim=0)  # (E, T)
    weights_t, indices_t = probs_t.topk(top_k, dim=0)  # (k, T), (k, T)
    if top_k > 1:
        # Renormalised over the chosen experts (Mixtral). With top_k=1 this would make every
        # weight 1 and cut the router off from the task loss, so top-1 keeps the raw
        # probability as a gate, as in Switch Transformer.
        weights_t = weights_t / weights_t.sum(dim=0, keepdim=True)
    return Routing(
        logits=logits_t.t(), probs=probs_t.t(), weights=weights_t.t(), indices=indices_t.t()
    )


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
        layout = dispatch_layout(routing.indices, routing.weights, len(self.experts))
        xs = x.index_select(0, layout.token)  # (P, C) every expert's rows, one after another
        # An expert that got no tokens still runs on an empty batch: it costs nothing
        # and keeps every parameter in the graph, which DistributedDataParallel expects.
        out = torch.cat(
            [expert(rows) for expert, rows in zip(self.experts, xs.split(layout.rows))]
        )  # (P, C)
        out = out * layout.weight.unsqueeze(1).to(out.dtype)
        y = torch.zeros_like(x).index_add_(0, layout.token, out.to(x.dtype))  # (N*T, C)
        return y.view(shape), routing


@dataclass
class DispatchLayout:
    """Where each routed token slot goes: ``P`` rows, expert 0's first, then expert 1's, ...

    Each expert's block is padded to ``BUCKET_ROWS`` (token 0 with weight 0) once it holds
    more than that many rows.
    """

    token: Tensor  # (P,) int64, the token each row computes
    weight: Tensor  # (P,) float32, its mixing weight; 0 on padding rows
    rows: list[int]  # (E,) rows of each expert's block, summing to P


def dispatch_layout(indices: Tensor, weights: Tensor, n_experts: int) -> DispatchLayout:
    """The expert-major layout of the slots ``indices`` (T, k) with ``weights`` (T, k).

    One stable sort groups the slots by expert, so the experts read one gathered tensor
    through ``split`` views, instead of one gather and one scatter each: on a CPU those
    per-expert copies, and the zero-filled gradients behind them, cost more than the
    experts' matmuls.
    """
    top_k = indices.shape[1]
    slot_expert = indices.reshape(-1)  # (T*k,)
    order = torch.argsort(slot_expert, stable=True)  # (T*k,) slots grouped by expert
    counts = torch.bincount(slot_expert, minlength=n_experts)  # (E,)
    padded = torch.where(counts > BUCKET_ROWS, -(-counts // BUCKET_ROWS) * BUCKET_ROWS, counts)
    start = torch.cumsum(padded, 0) - padded  # (E,) first row of each expert's block
    first_slot = torch.cumsum(counts, 0) - counts  # (E,) first sorted slot of each expert
    expert = slot_expert[order]  # (T*k,)
    row = start[expert] + torch.arange(len(order), device=order.device) - first_slot[expert]
    rows = padded.tolist()
    total = sum(rows)
    token = order.new_zeros(total).index_put_((row,), order // top_k)  # (P,)
    weight = weights.new_zeros(total).index_put((row,), weights.reshape(-1)[order])  # (P,)
    return DispatchLayout(token=token, weight=weight, rows=rows)


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
