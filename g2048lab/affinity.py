"""Which CPU cores a process runs on: ``G2048LAB_CPUS`` pins a ``g2048lab`` command to some.

A sweep's local trials run side by side on one machine. Each learner sizes its threads
from the cores it may use (``device.usable_cores``: the affinity mask): the PPO update's
threads, the n-tuple learner's training threads. So the sweep gives each trial its own
share of the cores (``cpu_shares``) through ``G2048LAB_CPUS``, as CUDA_VISIBLE_DEVICES
gives a process its GPUs, and a trial trains exactly as ``g2048lab train`` would on a
machine of that many cores.

``python -m g2048lab`` pins itself before anything else is imported (numpy's BLAS threads
start at import and keep the mask they were born with). No torch or numpy here.
"""

from __future__ import annotations

import os

__all__ = ["CPUS_ENV", "can_pin", "cpu_shares", "format_cpus", "parse_cpus", "pin_from_env"]

CPUS_ENV = "G2048LAB_CPUS"


def can_pin() -> bool:
    """Whether this OS lets a process choose its cores (Linux does; macOS does not)."""
    return hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity")


def parse_cpus(text: str) -> set[int]:
    """``"0,2-3"`` -> {0, 2, 3}; ValueError (one line, what to write) for anything else."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            first, last = -1, -2
        if not 0 <= first <= last:
            raise ValueError(
                f"{CPUS_ENV}={text!r} is not a list of CPU cores: write them as 0,1 or 0-3"
            )
        cpus.update(range(first, last + 1))
    return cpus


def format_cpus(cpus) -> str:
    """{0, 1, 3} -> ``"0,1,3"`` (what ``parse_cpus`` reads back)."""
    return ",".join(str(cpu) for cpu in sorted(cpus))


def pin_from_env(environ=None) -> set[int] | None:
    """Pin this process to ``G2048LAB_CPUS`` when it is set; returns the cores, else None.

    ValueError (one line) when the list is malformed or names no core this process may
    use. Where the OS cannot pin, the variable is ignored."""
    text = (os.environ if environ is None else environ).get(CPUS_ENV, "").strip()
    if not text or not can_pin():
        return None
    wanted = parse_cpus(text)
    allowed = os.sched_getaffinity(0)
    cpus = wanted & allowed
    if not cpus:
        raise ValueError(
            f"{CPUS_ENV}={text} names no core this process may use ({format_cpus(allowed)}): "
            f"unset it or pick from those"
        )
    os.sched_setaffinity(0, cpus)
    return cpus


def cpu_shares(cpus, parallel: int) -> list[list[int]]:
    """Split the cores ``cpus`` into ``parallel`` disjoint shares, as even as they come
    (the first ones one core larger); with more shares than cores, each share is one core
    and shares take turns on them.

    >>> cpu_shares([0, 1, 2, 3, 4], 2)
    [[0, 1, 2], [3, 4]]
    >>> cpu_shares([0, 1], 3)
    [[0], [1], [0]]
    """
    cores = sorted(cpus)
    if not cores or parallel < 1:
        raise ValueError(f"cannot share {len(cores)} cores among {parallel} trials")
    if parallel >= len(cores):
        return [[cores[i % len(cores)]] for i in range(parallel)]
    size, extra = divmod(len(cores), parallel)
    shares, start = [], 0
    for i in range(parallel):
        end = start + size + (i < extra)
        shares.append(cores[start:end])
        start = end
    return shares
