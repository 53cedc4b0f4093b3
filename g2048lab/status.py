"""A run's status: one vocabulary for the trainer, the run store, the CLI and every viewer.

This module imports nothing heavy, so viewers that only read a run stay light.

    idle -> running <-> pausing -> paused      (pause takes effect between env steps)
    running / pausing / paused -> stopping -> stopped   (stop() or a signal, budget left)
    running -> finished                         (the budget is spent)
    any live status -> failed                   (an error, saved with the run)
    any live status -> killed                   (the process died without a word: kill -9,
                                                 out of memory, power loss; the run store
                                                 finds out when the writer's lock is free)
"""

from __future__ import annotations

from enum import Enum

__all__ = ["ENDED", "LIVE", "Control", "Status"]


class Status(str, Enum):
    """A run's status; a ``str``, so it compares equal to and serialises as its value."""

    def __str__(self) -> str:  # "running", not "Status.RUNNING" (as StrEnum, Python 3.11+)
        return self.value

    IDLE = "idle"  # made, not started
    RUNNING = "running"
    PAUSING = "pausing"  # asked to pause: the current env step or minibatch is finishing
    PAUSED = "paused"  # no env step or update happens until resumed
    STOPPING = "stopping"  # asked to stop: finishing the step, then saving
    FINISHED = "finished"  # its budget is spent
    STOPPED = "stopped"  # stopped on request (or a signal) with budget left
    FAILED = "failed"  # an error ended it; the store keeps the error text
    KILLED = "killed"  # its process died without ending it


LIVE = frozenset({Status.RUNNING, Status.PAUSING, Status.PAUSED, Status.STOPPING})
ENDED = frozenset({Status.FINISHED, Status.STOPPED, Status.FAILED, Status.KILLED})


class Control(str, Enum):
    """What a viewer may ask of a run: the dashboard's buttons, the phone page's, the run
    store's requests. ``start`` only for a run made in this kernel and not yet started."""

    def __str__(self) -> str:
        return self.value

    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    CHECKPOINT = "checkpoint"
