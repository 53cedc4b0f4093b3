"""The PPO update's minibatch on several CPU threads: data parallel inside one process.

Each thread runs the forward and backward pass of an equal share of the minibatch on its own
copy of the model (a replica, its weights copied from the model before every minibatch),
with one torch thread each; the replicas' gradients are then summed into the model's, which
the optimiser steps as usual. The loss of each share is weighted by its share of the
minibatch, so the summed gradient is the whole minibatch's mean gradient: the same PPO
update, but for the MoE balancing loss, which each share computes over its own boards.

Why threads with replicas rather than torch's intra-op threads: this model's operations are
small (16 tokens, 32 wide), so an operation split over two OpenMP threads waits at a barrier
per operation, and stalls whenever another thread (the actor, a notebook) holds a core.
Separate replicas share nothing while they compute (two threads on one shared model contend
on its gradients): measured on 2 cores, a minibatch of 1,024 boards took 30 ms on two
replicas against 56 ms on one thread, and 50 ms for two threads on one shared model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

__all__ = ["UpdateThreads"]

Loss = Callable[[torch.nn.Module, Tensor], tuple]
"""(model, minibatch indices (M,)) -> (LossParts, model output) of that share."""


class UpdateThreads:
    """``threads`` workers for ``model``'s minibatches: the calling thread and
    ``threads - 1`` pool threads, each with a replica of the model."""

    def __init__(self, model: torch.nn.Module, threads: int):
        if threads < 2:
            raise ValueError(f"UpdateThreads needs at least 2 threads, got {threads}")
        self.model = model
        self.threads = threads
        self.replicas = [copy.deepcopy(model) for _ in range(threads - 1)]
        self._pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="g2048lab-update")

    def backward(self, loss: Loss, index: Tensor):
        """The minibatch ``index`` (M,) split in equal shares, one per thread: each share's
        loss, weighted by its share, backpropagated into its model; the replicas' gradients
        summed into ``model``'s. Returns (the shares' LossParts, their outputs, weights), or
        None when a share's loss was not finite (``model``'s gradients are then cleared)."""
        self._sync()
        shares = [s for s in torch.tensor_split(index, self.threads) if len(s)]
        models = [self.model, *self.replicas][: len(shares)]
        weights = [len(s) / len(index) for s in shares]

        def run(model, share, weight):
            parts, out = loss(model, share)
            finite = bool(torch.isfinite(parts.total))
            if finite:
                (parts.total * weight).backward()
            return parts, out, finite

        futures = [
            self._pool.submit(run, m, s, w) for m, s, w in zip(models[1:], shares[1:], weights[1:])
        ]
        results = [run(models[0], shares[0], weights[0]), *(f.result() for f in futures)]
        if not all(finite for _, _, finite in results):
            self.model.zero_grad(set_to_none=True)
            return None
        params = list(self.model.parameters())
        for replica in models[1:]:
            for param, other in zip(params, replica.parameters()):
                if other.grad is None:
                    continue
                if param.grad is None:
                    param.grad = other.grad.clone()
                else:
                    param.grad.add_(other.grad)
        return [p for p, _, _ in results], [o for _, o, _ in results], weights

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _sync(self) -> None:
        """The replicas take the model's weights and mode; their gradients are cleared."""
        params = [p.detach() for p in self.model.parameters()]
        with torch.no_grad():
            for replica in self.replicas:
                replica.train(self.model.training)
                replica.zero_grad(set_to_none=True)
                torch._foreach_copy_([p.detach() for p in replica.parameters()], params)
