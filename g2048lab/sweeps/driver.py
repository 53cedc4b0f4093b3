"""The sweep driver: a queue that keeps ``parallel`` trials training, each an ordinary
``g2048lab train`` process writing its own run, until every trial has ended.

Light on purpose (no torch): it sleeps between polls, reads the store and starts, stops or
evaluates trials. What it decides is in the store at once, so a driver killed at any point
is replaced by ``g2048lab sweep resume NAME``:

- a trial whose run still trains (its process outlived the driver) is adopted and watched,
  never started twice;
- a trial whose process died (kill -9, out of memory) continues with ``train --resume``
  from its last checkpoint (anew if it had none); after ``MAX_ATTEMPTS`` it is failed;
- a trial that failed is marked failed with its error, and the others go on;
- ``sweep stop`` (or Ctrl-C / SIGTERM to the driver) stops the running trials cleanly (each
  saves a checkpoint) and queues them again for ``sweep resume``.

Launchers start the trials: ``LocalLauncher`` as child processes here; ``--ray`` places
them on a Ray cluster (``ray_launcher.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..affinity import CPUS_ENV, can_pin, cpu_shares, format_cpus
from ..status import LIVE, Status
from ..store import RunNotFound, RunStore, StoreError
from ..store.claims import pid_alive
from .spec import SweepSpec, flag_value, train_argv
from .sweep_store import SweepStore, Trial

__all__ = ["Driver", "Launcher", "LocalLauncher", "default_parallel"]

MAX_ATTEMPTS = 3  # processes started for one trial before it is failed
POLL_S = 1.0
STOP_WAIT_S = 120.0  # how long a stopped trial may take to save its checkpoint
# train flags a checkpoint does not keep, given again when a trial resumes
RESUMED_FLAGS = ("--threads", "--device", "--checkpoint-minutes", "--checkpoint-games")


class Launcher(Protocol):
    """Starts a trial's command somewhere and follows it."""

    def start(self, trial: Trial, argv: list[str], log: Path) -> object:
        """Start ``g2048lab ARGV`` for ``trial``; returns a handle."""

    def poll(self, handle: object) -> int | None:
        """The exit code once it ended (negative: killed by that signal), else None."""

    def stop(self, handle: object) -> None:
        """Ask it to stop cleanly (train saves a checkpoint, then exits)."""

    def kill(self, handle: object) -> None:
        """End it now."""

    def capacity(self, threads: int) -> int:
        """Trials of ``threads`` threads each that fit at once (the default --parallel)."""

    def close(self) -> None: ...


class LocalLauncher:
    """Trials as child processes of this machine, each in its own session (a Ctrl-C meant
    for the driver reaches them only through ``stop``; they outlive a killed driver, to be
    adopted by the next).

    After ``divide(parallel)`` each process is pinned to a share of this machine's cores
    of its own (``G2048LAB_CPUS``, ``affinity.py``), so its learner sizes its threads to
    that share as ``train`` would on a machine of that size."""

    def __init__(self):
        self.shares: list[list[int]] = []  # the cores of each slot; none: not pinned
        self._holders: list[subprocess.Popen | int | None] = []  # a process or a pid

    def divide(self, parallel: int) -> bool:
        """Give the ``parallel`` trials at once a share of the cores each; False where this
        OS cannot pin (trials then share every core)."""
        if not can_pin():
            return False
        self.shares = cpu_shares(os.sched_getaffinity(0), parallel)
        self._holders = [None] * parallel
        return True

    def start(self, trial: Trial, argv: list[str], log: Path) -> subprocess.Popen:
        env, slot = None, self._free_slot()
        if slot is not None:
            env = {**os.environ, CPUS_ENV: format_cpus(self.shares[slot])}
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "g2048lab", *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        if slot is not None:
            self._holders[slot] = process
        return process

    def hold(self, pid: int) -> None:
        """A trial adopted from an earlier driver trains in process ``pid``: keep its share
        (the one its cores match) from new trials while it lives."""
        if not self.shares:
            return
        try:
            cores = sorted(os.sched_getaffinity(pid))
        except OSError:  # it has ended, or is not ours to read
            return
        for slot, share in enumerate(self.shares):
            if share == cores and not _alive(self._holders[slot]):
                self._holders[slot] = pid
                return

    def _free_slot(self) -> int | None:
        """The first share no live process holds (None: not divided, or none free)."""
        for slot, holder in enumerate(self._holders):
            if not _alive(holder):
                return slot
        return None

    def poll(self, handle: subprocess.Popen) -> int | None:
        return handle.poll()

    def stop(self, handle: subprocess.Popen) -> None:
        if handle.poll() is None:
            handle.send_signal(signal.SIGTERM)

    def kill(self, handle: subprocess.Popen) -> None:
        if handle.poll() is None:
            handle.kill()
            handle.wait()

    def capacity(self, threads: int) -> int:
        return default_parallel(threads)

    def close(self) -> None:
        pass


def _alive(holder: subprocess.Popen | int | None) -> bool:
    if holder is None:
        return False
    if isinstance(holder, int):
        return pid_alive(holder)
    return holder.poll() is None


def default_parallel(threads: int) -> int:
    """Trials at once on this machine: its usable cores over each trial's threads."""
    from ..device import usable_cores

    return max(1, usable_cores() // max(1, threads))


@dataclass
class _Live:
    """A trial the driver follows: its process (None: adopted, followed through the store)."""

    trial: Trial
    handle: object | None
    phase: str = "train"  # train, then eval
    stopping: str | None = None  # why it was asked to stop: "prune" or "stop"
    stop_asked: float = 0.0
    seen_iteration: int = -1
    curve: list[tuple[int, float]] = field(default_factory=list)  # (env steps, metric)


class Driver:
    """Drive the sweep ``name`` of ``runs`` until it ends or is stopped; ``run()`` returns
    0 when every trial ended, 1 when it was stopped. ``say``: where events go (a line each)."""

    def __init__(
        self,
        runs: RunStore,
        name: str,
        launcher: Launcher | None = None,
        say: Callable[[str], None] = print,
        poll_s: float = POLL_S,
    ):
        self.runs, self.sweeps, self.name = runs, SweepStore(runs), name
        self.spec: SweepSpec = self.sweeps.get_sweep(name).spec
        self.launcher = launcher or LocalLauncher()
        self.say, self.poll_s = say, poll_s
        self.live: dict[int, _Live] = {}
        self._interrupted = False
        self.pruner = None
        self.sampler = None
        self.threads = _threads_of(self.spec.train)
        capacity = getattr(self.launcher, "capacity", default_parallel)
        self.parallel = self.spec.parallel or capacity(self.threads or 1)
        # pinned trials size their threads to their share; unpinned ones get --threads
        self.pinned = bool(getattr(self.launcher, "divide", lambda _: False)(self.parallel))

    def interrupt(self, *_) -> None:
        """Stop the sweep (a signal handler may call it)."""
        self._interrupted = True

    def run(self) -> int:
        fd = self.sweeps.claim_driver(self.name)
        try:
            self.sweeps.set_status(self.name, "running")
            self._setup()
            self.say(
                f"sweep {self.name}: {len(self.sweeps.trials(self.name))} trials planned, "
                f"{self.parallel} at once; g2048lab sweep status {self.name} shows them"
            )
            while True:
                if self._interrupted or self.sweeps.get_sweep(self.name).status == "stopping":
                    return self._stop_all()
                self._follow()
                self._plan()
                self._launch()
                if not self.live and not self._queued():
                    self.sweeps.set_status(self.name, "finished")
                    self._say_counts("finished")
                    return 0
                time.sleep(self.poll_s)
        finally:
            self.sweeps.release_driver(self.name, fd)
            self.launcher.close()

    # --- the queue -----------------------------------------------------------------------

    def _setup(self) -> None:
        if self.spec.prune:
            from .prune import MedianRule

            self.pruner = MedianRule(self.spec, self.runs, self.sweeps.trials(self.name))
        if self.spec.random:
            from .sample import Sampler

            self.sampler = Sampler(self.spec, self.runs, self.sweeps.trials(self.name))
        for trial in self.sweeps.trials(self.name):  # left running by a dead driver
            if trial.state == "running":
                self._adopt(trial)

    def _queued(self) -> list[Trial]:
        return [t for t in self.sweeps.trials(self.name) if t.state == "queued"]

    def _plan(self) -> None:
        """With --random: draw settings while slots would otherwise wait."""
        if self.sampler is None:
            return
        while len(self._queued()) + len(self.live) < self.parallel and self.sampler.more():
            self.sweeps.add_trials(self.name, [self.sampler.draw()])

    def _launch(self) -> None:
        for trial in self._queued():
            if len(self.live) >= self.parallel:
                return
            self._start(trial)

    def _start(self, trial: Trial) -> None:
        run = self._run_of(trial)
        if run is not None and run.status in LIVE:  # trained by a process we did not start
            self._adopt(trial)
            return
        if run is not None and run.status == Status.FINISHED:
            self._trained(_Live(trial, None))
            return
        if run is not None and run.status == Status.FAILED:
            self._end(trial, "failed", error=run.error)
            return
        if trial.attempts >= MAX_ATTEMPTS:
            self._end(trial, "failed", error=f"its process ended {trial.attempts} times")
            return
        argv = self._train_command(trial, run)
        log = self.sweeps.folder(self.name) / f"{trial.run_name}.log"
        handle = self.launcher.start(trial, argv, log)
        trial = self.sweeps.update_trial(
            trial,
            state="running",
            attempts=trial.attempts + 1,
            started_at=trial.started_at or time.time(),
            error=None,
        )
        how = "resumes" if "--resume" in argv else "starts"
        self.say(f"trial {trial.run_name} {how}: {_describe(trial)}")
        self.live[trial.id] = _Live(trial, handle)
        if self.pruner:
            self.pruner.begin(trial)

    def _train_command(self, trial: Trial, run) -> list[str]:
        common = ["--runs-dir", str(self.runs.root), "--quiet"]
        argv = train_argv(self.spec, trial.setting, trial.seed)
        threads = self._threads_flag(argv)
        if run is not None and _checkpoints(self.runs.run_dir(run.name)):
            # what a checkpoint does not keep goes with the resume: threads, device, cadence
            kept = _flags(argv, RESUMED_FLAGS)
            return ["train", "--resume", run.name, *kept, *threads, *common]
        if run is not None:  # it died before its first checkpoint: start it again
            self.runs.delete_run(run.name)
        return ["train", *argv, *threads, "--run-name", trial.run_name, *common]

    def _threads_flag(self, argv: list[str]) -> list[str]:
        """``--threads`` for a trial whose flags say none and which is not pinned (a pinned
        one sizes its threads to its share): this machine's cores over --parallel."""
        if _threads_of(argv) is not None or self.pinned:
            return []
        from ..device import usable_cores

        return ["--threads", str(max(1, usable_cores() // self.parallel))]

    def _adopt(self, trial: Trial) -> None:
        run = self._run_of(trial)
        if run is not None and run.status in LIVE:
            self.say(f"trial {trial.run_name} is still training: followed")
            self.live[trial.id] = _Live(trial, None)
            if run.writer is not None and hasattr(self.launcher, "hold"):
                self.launcher.hold(run.writer.pid)
            if self.pruner:
                self.pruner.begin(trial)
        else:  # it ended while no driver watched: decided as the queue is
            self.sweeps.update_trial(trial, state="queued")

    # --- following the live trials -------------------------------------------------------

    def _follow(self) -> None:
        for live in list(self.live.values()):
            if live.phase == "eval":
                self._follow_eval(live)
                continue
            code = self.launcher.poll(live.handle) if live.handle is not None else None
            run = self._run_of(live.trial)
            if live.handle is None and run is not None and run.status in LIVE:
                code = None  # adopted and still training
            elif live.handle is None:
                code = 0 if run is not None else -1
            if run is not None and live.trial.run_id != run.id:
                live.trial = self.sweeps.update_trial(live.trial, run_id=run.id)
                self._tag(run.name, live.trial)
            if code is None:
                self._watch(live, run)
                continue
            self._ended(live, run, code)

    def _watch(self, live: _Live, run) -> None:
        """A trial in training: prune it if its curve is clearly behind."""
        if live.stopping:
            if time.time() - live.stop_asked > STOP_WAIT_S and live.handle is not None:
                self.launcher.kill(live.handle)
            return
        if run is None or self.pruner is None:
            return
        rows = self.runs.metrics(run.name, since_iteration=live.seen_iteration)
        if rows:
            live.seen_iteration = rows[-1]["iteration"]
        if self.pruner.report(live.trial, rows):
            self.say(f"trial {live.trial.run_name} pruned: {self.pruner.why(live.trial)}")
            self._ask_stop(live, run, "prune")

    def _ask_stop(self, live: _Live, run, why: str) -> None:
        live.stopping, live.stop_asked = why, time.time()
        if live.handle is not None:
            self.launcher.stop(live.handle)
        elif run is not None:
            with contextlib.suppress(StoreError):
                self.runs.request(run.name, "stop")

    def _ended(self, live: _Live, run, code: int) -> None:
        trial = live.trial
        del self.live[trial.id]
        if live.stopping == "prune":
            self._end(trial, "pruned")
        elif run is not None and run.status == Status.FINISHED:
            self._trained(live)
        elif run is not None and run.status == Status.FAILED:
            self._end(trial, "failed", error=run.error)
        elif live.stopping == "stop" or (run is not None and run.status == Status.STOPPED):
            self.sweeps.update_trial(trial, state="queued")
        elif code > 0 and (run is None or run.status not in (Status.KILLED,)):
            self._end(trial, "failed", error=self._last_line(trial, code))
        else:  # killed: resumed from its checkpoint when its turn comes again
            self.say(f"trial {trial.run_name} was killed (exit {code}): queued to resume")
            self.sweeps.update_trial(trial, state="queued")
        if self.pruner and trial.id not in self.live:
            self.pruner.end(trial)

    def _trained(self, live: _Live) -> None:
        """The trial's run finished its budget: evaluate it (``eval_games``), or end it."""
        if not self.spec.eval_games:
            self._end(live.trial, "finished")
            return
        run = self._run_of(live.trial)
        log = self.sweeps.folder(self.name) / f"{live.trial.run_name}.eval.json"
        argv = [
            "eval",
            str(self.runs.run_dir(run.name)),
            "--games",
            str(self.spec.eval_games),
            "--json",
        ]
        live.handle = self.launcher.start(live.trial, argv, log.with_suffix(".log"))
        live.phase = "eval"
        self.live[live.trial.id] = live

    def _follow_eval(self, live: _Live) -> None:
        code = self.launcher.poll(live.handle)
        if code is None:
            return
        del self.live[live.trial.id]
        text = (self.sweeps.folder(self.name) / f"{live.trial.run_name}.eval.log").read_text()
        result = _last_json(text)
        if code != 0 or result is None:
            self._end(live.trial, "failed", error=f"its evaluation failed: {_tail(text)}")
            return
        self._end(live.trial, "finished", result=result)

    def _end(self, trial: Trial, state: str, error: str | None = None, result=None) -> None:
        changes = {"state": state, "error": error, "ended_at": time.time()}
        if result is not None:
            changes["result"] = result
        trial = self.sweeps.update_trial(trial, **changes)
        why = f": {error}" if error else ""
        self.say(f"trial {trial.run_name} {state}{why}")
        if self.sampler:
            self.sampler.ended(self.sweeps.trials(self.name))

    def _stop_all(self) -> int:
        """Stop every live trial cleanly and wait for them; the sweep is then stopped."""
        self.sweeps.set_status(self.name, "stopping")
        self.say(f"sweep {self.name}: stopping {len(self.live)} trials (each saves a checkpoint)")
        for live in self.live.values():
            if live.phase == "eval":
                self.launcher.kill(live.handle)
                live.stopping = "stop"
                continue
            self._ask_stop(live, self._run_of(live.trial), "stop")
        while self.live:
            self._follow()
            if self.live:
                time.sleep(min(self.poll_s, 0.5))
        for trial in self.sweeps.trials(self.name):
            if trial.state == "running":
                self.sweeps.update_trial(trial, state="queued")
        self.sweeps.set_status(self.name, "stopped")
        self._say_counts("stopped")
        self.say(f"go on with: g2048lab sweep resume {self.name}")
        return 1

    # --- helpers -------------------------------------------------------------------------

    def _run_of(self, trial: Trial):
        try:
            return self.runs.get_run(trial.run_name)
        except RunNotFound:
            return None

    def _tag(self, run_name: str, trial: Trial) -> None:
        try:
            tags = set(self.runs.get_run(run_name).tags)
            self.runs.set_tags(run_name, tags | {f"sweep:{self.name}", f"group:{trial.group}"})
        except StoreError:
            pass  # tags are for people; the trials table is what counts

    def _last_line(self, trial: Trial, code: int) -> str:
        log = self.sweeps.folder(self.name) / f"{trial.run_name}.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return f"its process exited with {code}: {_tail(text)}"

    def _say_counts(self, how: str) -> None:
        counts: dict[str, int] = {}
        for trial in self.sweeps.trials(self.name):
            counts[trial.state] = counts.get(trial.state, 0) + 1
        text = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        self.say(f"sweep {self.name} {how}: {text}")


def _flags(argv: list[str], names: tuple[str, ...]) -> list[str]:
    """The flags of ``names`` that ``argv`` gives, each with its value."""
    given = {name: flag_value(argv, name) for name in names}
    return [item for name, value in given.items() if value is not None for item in (name, value)]


def _threads_of(argv: list[str]) -> int | None:
    value = flag_value(argv, "--threads")
    return int(value) if value is not None else None


def _checkpoints(folder: Path) -> bool:
    return any(folder.glob("ckpt-*.pt"))


def _describe(trial: Trial) -> str:
    setting = ", ".join(f"{k}={v}" for k, v in trial.setting.items())
    return f"{setting + ', ' if setting else ''}seed {trial.seed}"


def _tail(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    start = text.find("{")
    try:
        return json.loads(text[start:]) if start >= 0 else None
    except ValueError:
        return None


def install_signals(driver: Driver) -> Callable[[], None]:
    """SIGINT and SIGTERM stop the sweep cleanly; returns a function restoring the old."""
    old = {s: signal.signal(s, driver.interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    return lambda: [signal.signal(s, h) for s, h in old.items()]
