"""Small helpers shared by the test files: waiting, ports, stopping processes, stopping a
run after N iterations."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

from g2048lab.subscribers import Subscriber

T = TypeVar("T")


class StopAfter(Subscriber):
    """Stops a run once it has finished ``iterations`` iterations."""

    def __init__(self, iterations: int):
        self.iterations = iterations

    def on_iteration(self, metrics, context):
        return context.iteration < self.iterations


def wait_for(
    condition: Callable[[], T],
    timeout: float = 30.0,
    what: str = "condition",
    refresh: Callable[[], object] | None = None,
    *,
    every: float = 0.05,
) -> T:
    """Poll ``condition`` (after ``refresh``, if given) every ``every`` s until it is truthy;
    returns its value, or fails the test after ``timeout`` s naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        if refresh is not None:
            refresh()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout:.0f} s")
        time.sleep(every)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` s; waits for the process to end."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def metric_trace(dashboard, key: str):
    """The dashboard's trace of metric ``key`` of its run (None while it is not charted)."""
    return dashboard.metrics_panel.grid.trace(dashboard.history.name, key)
