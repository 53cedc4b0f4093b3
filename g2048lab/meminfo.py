"""How much memory this machine can still give out, read without torch (the n-tuple engine
and the device manager both ask before they allocate)."""

from __future__ import annotations

__all__ = ["available_bytes"]


def available_bytes() -> int | None:
    """The kernel's MemAvailable in bytes (/proc/meminfo); None where it cannot be read
    (not Linux), so that callers then check nothing."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
