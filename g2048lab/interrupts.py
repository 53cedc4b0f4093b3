"""Escalating interrupts for a process that must save before it exits.

``timeout``, systemd, Docker and CI runners send SIGTERM to a whole process group, often
twice, and people press Ctrl-C again when a stop seems slow. So the first SIGINT or SIGTERM
asks for a clean stop, repeats are noted (once) without interrupting the saving, and only
``FORCE_AFTER`` signals within ``WINDOW_S`` force an exit, losing the work since the last
checkpoint.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from enum import Enum

__all__ = ["Interrupts", "Response"]

WINDOW_S = 5.0
FORCE_AFTER = 3  # signals within WINDOW_S


class Response(Enum):
    STOP = "stop"  # the first: stop cleanly, then save
    NOTED = "noted"  # a repeat while saving: say so once
    QUIET = "quiet"  # a repeat already answered
    EXIT = "exit"  # FORCE_AFTER within WINDOW_S: exit now


class Interrupts:
    """Counts interrupts and says how to respond to each (pure: the clock is injected).

    >>> interrupts = Interrupts(clock=iter([0.0, 1.0, 9.0, 9.5, 10.0]).__next__)
    >>> [interrupts.receive().value for _ in range(5)]
    ['stop', 'noted', 'quiet', 'quiet', 'exit']
    """

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self.clock = clock
        self.times: list[float] = []

    @property
    def stop_requested(self) -> bool:
        return bool(self.times)

    def receive(self) -> Response:
        now = self.clock()
        self.times.append(now)
        if len(self.times) == 1:
            return Response.STOP
        if len(self.times) >= FORCE_AFTER and now - self.times[-FORCE_AFTER] <= self.window_s:
            return Response.EXIT
        return Response.NOTED if len(self.times) == 2 else Response.QUIET

    def install(self, on_stop: Callable[[], None], lost: Callable[[], str]) -> Callable[[], None]:
        """Handle SIGINT and SIGTERM in this (the main) thread: ``on_stop()`` on the first,
        a line on stderr for the second, and on a forced exit one line saying what is lost
        (``lost()``), then exit at once with 128 + the signal number. Returns a function
        that puts the previous handlers back.

        The handler never raises, so it cannot interrupt a checkpoint being written; it
        writes with ``os.write``, which is safe in a signal handler, unlike ``print``.
        """

        def handle(signum: int, frame) -> None:
            response = self.receive()
            if response is Response.STOP:
                _say("stopping: finishing the current step, then saving a checkpoint")
                on_stop()
            elif response is Response.NOTED:
                _say(
                    f"still saving; {FORCE_AFTER} interrupts within {self.window_s:.0f} s "
                    "force an exit without the final checkpoint"
                )
            elif response is Response.EXIT:
                _say(f"forced exit: {lost()}")
                os._exit(128 + signum)

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore


def _say(line: str) -> None:
    os.write(2, (line + "\n").encode())
