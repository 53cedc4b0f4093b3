"""The device manager: pick CUDA or the CPU, report memory, size the run to fit.

The target card is an 8 GB RTX 3070 Ti; anything without a working CUDA device
falls back to the CPU with a warning. On the CPU the torch thread count is set on
purpose: on a 2-core machine two threads are about 1.6x faster than one when the
machine is quiet and over 2x slower when a dashboard, a browser or another job
is busy (../shared/STACK.md), so the default leaves one core free.
"""

from __future__ import annotations

import os
import resource
import sys
import warnings
from dataclasses import dataclass

import torch

from .meminfo import available_bytes

__all__ = [
    "MemoryStats",
    "check_fits",
    "check_threads",
    "free_memory_bytes",
    "is_out_of_memory",
    "memory_stats",
    "ppo_sizes_for",
    "resolve_preset",
    "select_device",
    "set_cpu_threads",
    "usable_cores",
]

GB = 1024**3


def select_device(requested: str = "auto") -> torch.device:
    """``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> a working ``torch.device``.

    ``auto`` takes CUDA when a device is present and works (a small allocation
    succeeds), else the CPU. An explicit ``cuda`` that does not work also falls
    back to the CPU, with a warning that says why.
    """
    if requested not in ("auto", "cpu") and not requested.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu or cuda[:N], got {requested!r}")
    if requested == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        if requested != "auto":
            warnings.warn(
                "CUDA was asked for but is not available; training on the CPU", stacklevel=2
            )
        return torch.device("cpu")
    device = torch.device("cuda" if requested == "auto" else requested)
    try:
        torch.ones(1, device=device).add_(1).item()
    except Exception as error:  # a broken driver or a busy card must not stop the run
        warnings.warn(f"CUDA failed at start ({error}); training on the CPU", stacklevel=2)
        return torch.device("cpu")
    return device


def usable_cores() -> int:
    """The CPU cores this process may run on: its affinity mask where the OS has one (a
    container or ``taskset`` may allow fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def check_threads(threads: int | None) -> None:
    """ValueError unless ``threads`` is None (the default) or 1 .. ``usable_cores()``.

    More threads than cores only take turns: on 2 cores a tiny run with ``--threads 1000``
    had not played 5,000 env steps after two minutes, where one thread takes seconds.
    """
    cores = usable_cores()
    if threads is not None and not 1 <= threads <= cores:
        raise ValueError(
            f"threads must be 1 to {cores} (the CPU cores this process can use), got {threads}"
        )


def set_cpu_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count; None picks ``cores - 1`` (at least 1). Returns it."""
    check_threads(threads)
    if threads is None:
        threads = max(1, usable_cores() - 1)
    torch.set_num_threads(threads)
    return threads


@dataclass(frozen=True)
class MemoryStats:
    """Memory in GB. CUDA fields are None on the CPU."""

    cuda_allocated: float | None
    cuda_reserved: float | None
    cuda_total: float | None
    cuda_free: float | None
    process_rss: float  # resident set of this process
    process_peak_rss: float


def memory_stats(device: torch.device) -> MemoryStats:
    """Current memory figures for ``device`` and this process."""
    allocated = reserved = total = free = None
    if device.type == "cuda":
        allocated = torch.cuda.memory_allocated(device) / GB
        reserved = torch.cuda.memory_reserved(device) / GB
        free_bytes, total_bytes = torch.cuda.mem_get_info(device)
        free, total = free_bytes / GB, total_bytes / GB
    return MemoryStats(allocated, reserved, total, free, _rss_gb(), _peak_rss_gb())


def free_memory_bytes(device: torch.device) -> int | None:
    """Bytes that can be allocated now: CUDA's free memory on a GPU, the kernel's
    MemAvailable on the CPU; None where it cannot be told (not Linux)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return available_bytes()


def check_fits(nbytes: float, device: torch.device, what: str, advice: str) -> None:
    """MemoryError, in one line, if ``nbytes`` plus 10% headroom exceeds what is free on
    ``device``: "``what`` needs about N GB but only M GB is free on cpu: ``advice``"."""
    free = free_memory_bytes(device)
    if free is not None and nbytes * 1.1 > free:
        raise MemoryError(
            f"{what} needs about {_gb(nbytes)} but only {_gb(free)} is free on {device}: {advice}"
        )


def _gb(nbytes: float) -> str:
    return f"{nbytes / GB:,.1f} GB" if nbytes >= 0.1 * GB else f"{nbytes / 1024**2:,.0f} MB"


def _rss_gb() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / GB
    except (OSError, ValueError):
        return _peak_rss_gb()


def _peak_rss_gb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / GB if sys.platform == "darwin" else peak * 1024 / GB


def resolve_preset(name: str, device: torch.device) -> str:
    """Resolve the model preset ``auto`` from the device and its free memory.

    CPU: ``cpu``. CUDA: ``base`` (the design's model) with at least 6 GB free, as
    on the 8 GB target card; ``small`` with 2 GB; else ``cpu``. Other names pass
    through unchanged.
    """
    if name != "auto":
        return name
    if device.type != "cuda":
        return "cpu"
    free_gb = torch.cuda.mem_get_info(device)[0] / GB
    if free_gb >= 6:
        return "base"
    return "small" if free_gb >= 2 else "cpu"


PPO_SIZES = {
    # preset: (parallel games, moves per rollout, minibatch) on CUDA; the CPU uses "cpu" sizes
    "tiny": (64, 32, 512),
    "cpu": (256, 64, 1024),
    "small": (1024, 64, 4096),
    # 8 GB target card: 2048 games x 64 moves = 131k samples per update, minibatches of 2048
    # (the out-of-memory halving takes over where a card has less room)
    "base": (2048, 64, 2048),
}


def ppo_sizes_for(preset: str, device: torch.device) -> dict[str, int]:
    """Default ``num_envs``, ``rollout_steps`` and ``minibatch_size`` for a preset on a device.

    On the CPU every preset but ``tiny`` uses the ``cpu`` sizes: the update dominates
    there, and these keep an iteration near ten seconds on 2 cores.
    """
    key = preset if preset in PPO_SIZES else "cpu"
    if device.type != "cuda" and key != "tiny":
        key = "cpu"
    envs, steps, minibatch = PPO_SIZES[key]
    return {"num_envs": envs, "rollout_steps": steps, "minibatch_size": minibatch}


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA's out-of-memory error and the CPU allocator's equivalent."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, (RuntimeError, MemoryError)) and (
        "out of memory" in text or "can't allocate memory" in text or isinstance(error, MemoryError)
    )
