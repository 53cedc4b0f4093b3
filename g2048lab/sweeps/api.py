"""``Sweep``: a sweep from Python (a notebook cell), never blocking the kernel: its driver
is a process of its own, so the kernel can be restarted while the sweep goes on.

    sweep = Sweep("lr", grid={"ppo.learning-rate": ["3e-4", "1e-3"]}, seeds=3,
                  train=["--preset", "tiny", "--steps", "50000"]).start()
    sweep.status()     # its trials by group, as `g2048lab sweep status --json`
    sweep.stop()       # every trial saves a checkpoint; sweep.resume() goes on
    sweep.report()     # groups with intervals, as `g2048lab sweep report --json`
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..store import RunStore
from .control import resume_in_background, stop_sweep
from .spec import SweepSpec, check_sweep_name, check_train_flags, parse_random
from .sweep_store import SweepStore

__all__ = ["Sweep", "plan_sweep"]

ENDED = ("finished", "stopped", "interrupted")


def plan_sweep(runs_dir: str | Path, name: str, spec: SweepSpec) -> RunStore:
    """Check every trial's flags, then record the sweep and its trials in the runs folder
    (made if missing); the driver runs them. ValueError or StoreError in one line: a bad
    spec leaves nothing behind."""
    check_sweep_name(name)
    settings = spec.grid_settings()
    check_train_flags(spec, settings_to_check(spec, settings))
    if spec.ray is not None:
        from .ray_launcher import check_ray

        check_ray(spec.ray)
    runs = RunStore(runs_dir)
    SweepStore(runs).create_sweep(name, spec, [] if spec.random else settings)
    return runs


def settings_to_check(spec: SweepSpec, settings: list[dict]) -> list[dict]:
    """Every grid setting; with --random, each with every range at its low and its high."""
    if not spec.random:
        return settings
    from .sample import as_text

    checked = []
    for setting in settings:
        for end in ("low", "high"):
            drawn = {
                r.flag: as_text(int(getattr(r, end)) if r.integer else getattr(r, end))
                for r in spec.random
            }
            checked.append({**setting, **drawn})
    return checked


class Sweep:
    """A sweep in the runs folder ``runs_dir`` (default: $G2048LAB_RUNS_DIR or
    ``checkpoints``). ``grid``: {flag: [values]}; ``random``: {flag: "LOW:HIGH[:log]"} drawn
    ``trials`` times; ``train``: the flags every trial gets; the rest as the CLI's."""

    def __init__(
        self,
        name: str,
        grid: dict | None = None,
        random: dict | None = None,
        *,
        trials: int = 0,
        seeds: int = 1,
        train: list[str] | tuple[str, ...] = (),
        parallel: int = 0,
        prune: bool = False,
        prune_every: int = 0,
        metric: str = "rollout/score_mean",
        eval_games: int = 0,
        ray: str | None = None,
        runs_dir: str | Path | None = None,
    ):
        self.name = check_sweep_name(name)
        self.runs_dir = Path(runs_dir or os.environ.get("G2048LAB_RUNS_DIR", "checkpoints"))
        self.spec = SweepSpec(
            grid={flag: [str(v) for v in values] for flag, values in (grid or {}).items()},
            random=parse_random([f"{flag}={text}" for flag, text in (random or {}).items()]),
            trials=trials,
            seeds=seeds,
            train=[str(item) for item in train],
            parallel=parallel,
            prune=prune,
            prune_every=prune_every,
            metric=metric,
            eval_games=eval_games,
            ray=ray,
        )
        self.driver = None

    @classmethod
    def attach(cls, name: str, runs_dir: str | Path | None = None) -> Sweep:
        """The sweep ``name`` that exists in the runs folder (started here or elsewhere)."""
        self = cls.__new__(cls)
        self.name = name
        self.runs_dir = Path(runs_dir or os.environ.get("G2048LAB_RUNS_DIR", "checkpoints"))
        self.spec = self._sweeps().get_sweep(name).spec  # frozen: no copy needed
        self.driver = None
        return self

    def start(self) -> Sweep:
        """Record the sweep and start its driver in the background; returns at once."""
        plan_sweep(self.runs_dir, self.name, self.spec)
        self.driver = resume_in_background(self.runs_dir, self.name)
        return self

    def resume(self) -> Sweep:
        """Start a driver again (after stop, or after the last one was killed)."""
        self.driver = resume_in_background(self.runs_dir, self.name)
        return self

    def stop(self, wait: bool = True) -> str:
        return stop_sweep(RunStore(self.runs_dir, create=False), self.name, wait=wait)

    def status(self) -> dict:
        from .overview import overview

        return overview(RunStore(self.runs_dir, create=False), self.name)

    def wait(self, timeout: float | None = None, poll_s: float = 1.0) -> dict:
        """Block until the sweep has finished or stopped (or ``timeout`` s); its status.
        A cell that calls it blocks: a background sweep is watched with ``status``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            view = self.status()
            if view["status"] in ENDED or (deadline and time.monotonic() > deadline):
                if self.driver is not None and view["status"] in ENDED:
                    self.driver.wait()
                return view
            time.sleep(poll_s)

    def report(self, metric: str | None = None) -> dict:
        from .report import sweep_report

        return sweep_report(RunStore(self.runs_dir, create=False), self.name, metric)

    def _sweeps(self) -> SweepStore:
        return SweepStore(RunStore(self.runs_dir, create=False))

    def __repr__(self) -> str:
        return f"Sweep({self.name!r}, runs_dir={str(self.runs_dir)!r})"
