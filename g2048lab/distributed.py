"""Data-parallel training under ``torchrun``: process group set-up and the few collectives
the trainer needs. NCCL on CUDA, gloo on the CPU; every collective has a timeout, so a
rank that dies stops the others with an error instead of a hang.

    torchrun --nproc_per_node 2 -m g2048lab train --distributed --preset tiny --steps 100000
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = ["DistContext", "init_distributed"]


@dataclass(frozen=True)
class DistContext:
    """This process's place in the group, and the collectives over it."""

    rank: int
    world_size: int
    local_rank: int
    backend: str  # nccl | gloo
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes the run store, the logs and the checkpoints."""
        return self.rank == 0

    def reduce(self, values: list[float], op: str = "sum") -> list[float]:
        """All-reduce a few numbers: ``sum``, ``mean``, ``max`` or ``min`` over the ranks."""
        tensor = torch.tensor(values, dtype=torch.float64, device=self._collective_device)
        reduce_op = {"sum": dist.ReduceOp.SUM, "mean": dist.ReduceOp.SUM,
                     "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op]  # fmt: skip
        dist.all_reduce(tensor, op=reduce_op)
        if op == "mean":
            tensor /= self.world_size
        return tensor.tolist()

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (small picklable objects)."""
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self._collective_device)
        return box[0]

    @property
    def _collective_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device: str = "auto", timeout_s: float = 60.0) -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment.

    ``device``: ``auto`` and ``cuda`` take GPU ``LOCAL_RANK`` with NCCL when CUDA is
    available, else the CPU with gloo. ``timeout_s`` bounds every collective.
    """
    missing = [name for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK") if name not in os.environ]
    if missing:
        raise ValueError(
            "--distributed runs under torchrun (missing " + ", ".join(missing) + "): "
            "torchrun --nproc_per_node N -m g2048lab train --distributed ..."
        )
    rank, world, local = (int(os.environ[n]) for n in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        target = torch.device("cuda", local)
        torch.cuda.set_device(target)
    else:
        target = torch.device("cpu")
    backend = "nccl" if use_cuda else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return DistContext(rank, world, local, backend, target)
