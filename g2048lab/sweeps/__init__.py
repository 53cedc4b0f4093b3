"""Sweeps: settings x seeds trained as ordinary runs, a few at once, compared by group.

``Sweep`` starts one from Python; ``g2048lab sweep`` from the command line."""

from .api import Sweep

__all__ = ["Sweep"]
