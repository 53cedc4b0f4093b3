"""Live dashboards and game replays in Jupyter and Voila: the only package of g2048lab that
imports ipywidgets and Plotly.

    from g2048lab.dashboard import Dashboard, ReplayViewer
    Dashboard(trainer)                   # a Trainer in this kernel
    Dashboard.attach("checkpoints")      # the latest run in a RunStore, any process
    RunsBrowser("checkpoints")           # every run: list, overlay, config diff, manage
    ReplayViewer("checkpoints", "my-run")

Each displays itself as the last expression of a cell (or with ``display(...)``).
"""

from .live import Dashboard
from .replay import ReplayViewer
from .runs_browser import RunsBrowser
from .sources import Budget, Snapshot, Source, StoreSource, TrainerSource

__all__ = [
    "Budget",
    "Dashboard",
    "ReplayViewer",
    "RunsBrowser",
    "Snapshot",
    "Source",
    "StoreSource",
    "TrainerSource",
]
