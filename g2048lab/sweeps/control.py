"""Acting on a sweep from outside its driver: stop it, or start a driver in the
background (``sweep resume`` as a detached process). The CLI, the ``Sweep`` object and the
dashboards' buttons all act through these."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

from ..status import LIVE
from ..store import RunStore, StoreError
from .sweep_store import SweepStore

__all__ = ["resume_in_background", "stop_sweep"]

STOP_WAIT_S = 150.0  # the driver's own wait for its trials' checkpoints, and some


def stop_sweep(runs: RunStore, name: str, wait: bool = True) -> str:
    """Stop the sweep's trials cleanly (each saves a checkpoint) and say how it went, a
    line. A live driver is asked (it stops its trials and ends); without one, the trials
    that outlived it are asked through their runs' control requests. ``wait``: until the
    sweep is stopped (else return once asked)."""
    sweeps = SweepStore(runs)
    sweep = sweeps.get_sweep(name)
    if sweep.status in ("finished", "stopped"):
        return f"sweep {name} has {sweep.status}"
    if sweeps.driver_alive(sweep):
        sweeps.set_status(name, "stopping")
        if not wait:
            return f"sweep {name}: asked its driver (pid {sweep.driver_pid}) to stop"
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline:
            status = sweeps.get_sweep(name).status
            if status not in ("stopping", "running"):
                return f"sweep {name} {status}; g2048lab sweep resume {name} goes on"
            time.sleep(0.5)
        return f"sweep {name} is still stopping after {STOP_WAIT_S:.0f} s: its driver is slow"
    asked = []
    for trial in sweeps.trials(name):
        if trial.state != "running":
            continue
        with suppress(StoreError):
            if runs.get_run(trial.run_name).status in LIVE:
                runs.request(trial.run_name, "stop")
                asked.append(trial.run_name)
    deadline = time.monotonic() + (STOP_WAIT_S if wait else 0)
    for run in asked:
        while time.monotonic() < deadline and runs.get_run(run).status in LIVE:
            time.sleep(0.5)
    for trial in sweeps.trials(name):
        if trial.state == "running":
            sweeps.update_trial(trial, state="queued")
    sweeps.set_status(name, "stopped")
    told = f"; stopped {', '.join(asked)}" if asked else ""
    return f"sweep {name} stopped (its driver had gone){told}"


def resume_in_background(runs_dir: str | Path, name: str) -> subprocess.Popen:
    """Start ``g2048lab sweep resume NAME`` as a process of its own (its own session: it
    outlives the kernel or terminal that started it; ``stop_sweep`` ends it). Its lines go
    to ``RUNS_DIR/.sweeps/NAME/driver.log``."""
    sweeps = SweepStore(RunStore(runs_dir, create=False))
    if sweeps.get_sweep(name).status == "finished":  # SweepNotFound
        raise ValueError(f"sweep {name} has finished: nothing to resume")
    # running from now: a reader must not take the stopped sweep for done before the new
    # driver claims it (a driver that never comes reads "interrupted" after STARTING_S)
    sweeps.set_status(name, "running", only_if=("stopped", "running", "stopping"))
    log = sweeps.folder(name) / "driver.log"
    with open(log, "ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "g2048lab",
                "sweep",
                "resume",
                name,
                "--runs-dir",
                str(runs_dir),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
