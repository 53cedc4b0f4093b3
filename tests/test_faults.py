"""Faults caused on purpose: kill -9 at random moments, a full disk. After each, the store is
intact, every checkpoint loads, what a viewer sees never goes backwards, and the status says
what happened."""

import random
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from g2048lab.checkpoint import CheckpointManager
from g2048lab.dashboard.sources import StoreSource
from g2048lab.learners.loading import load_checkpoint
from g2048lab.status import LIVE, Status
from g2048lab.store import RunStore

from .helpers import wait_for
from .test_cli import TINY_ITERATION, TRAIN_TINY, env_steps, g2048lab, start


class Viewer(threading.Thread):
    """Watches a run as a dashboard does (``StoreSource``, a poll every 50 ms) and checks each
    snapshot: the metric rows it holds, dropped on a reset (a resume that rewound the run),
    stay strictly increasing in iteration and env steps; the status is a known one."""

    def __init__(self, runs: Path, name: str):
        super().__init__(daemon=True)
        self.runs, self.name = runs, name
        self.rows: list[dict] = []
        self.statuses: list[str] = []
        self.resets = 0
        self.problems: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        source = StoreSource(RunStore(self.runs), self.name)
        while not self.done.wait(0.05):
            snapshot = source.poll()
            if snapshot.reset:
                self.resets += 1
                self.rows = []
            self.rows += snapshot.metrics
            self.statuses.append(snapshot.status)
            pairs = zip(self.rows, self.rows[1:])
            if any(a["iteration"] >= b["iteration"] or a["env_steps"] >= b["env_steps"]
                   for a, b in pairs):  # fmt: skip
                self.problems.append(f"rows went backwards: {[r['env_steps'] for r in self.rows]}")
            if snapshot.status not in set(Status):
                self.problems.append(f"unknown status {snapshot.status!r}")

    def stop(self) -> None:
        self.done.set()
        self.join(10)


def check_store_and_checkpoints(runs: Path, name: str) -> None:
    with sqlite3.connect(f"file:{runs / 'runs.sqlite'}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    for path in [*CheckpointManager(runs / name).saved(), runs / name / "best.pt"]:
        if path.exists():
            load_checkpoint(path)  # raises if a kill left half a file under a real name


def test_kill_9_at_random_moments_never_corrupts_or_misleads(tmp_path):
    runs, rng = tmp_path / "runs", random.Random(20261129)
    viewer = None
    for attempt in range(4):
        how = ["--run-name", "f"] if attempt == 0 else ["--resume", "f"]
        proc = start(*TRAIN_TINY, "--minutes", 10, "--runs-dir", runs, *how,
                     "--checkpoint-minutes", 0.01, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            before = env_steps(runs, "f")
            wait_for(lambda: env_steps(runs, "f") > before, 120, "training")  # noqa: B023
            if viewer is None:
                viewer = Viewer(runs, "f")
                viewer.start()
            wait_for(lambda: RunStore(runs).get_run("f").status == "running", 30, "running")
            time.sleep(rng.uniform(0.0, 3.0))  # a random moment: rollout, update or save
            proc.kill()
            proc.wait(10)
        finally:
            proc.kill()
        wait_for(lambda: viewer.statuses[-1] == "killed", 10, "the viewer to see killed")  # noqa: B023
        check_store_and_checkpoints(runs, "f")
        run = RunStore(runs).get_run("f")
        assert run.status == "killed" and run.writer is None
    final = load_checkpoint(runs / "f")["counters"]["env_steps"] + TINY_ITERATION
    done = g2048lab(*TRAIN_TINY, "--resume", "f", "--steps", final, "--runs-dir", runs)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: viewer.statuses[-1] == "finished", 10, "the viewer to see the end")
    viewer.stop()
    check_store_and_checkpoints(runs, "f")
    assert viewer.problems == []
    assert viewer.resets >= 1  # at least one resume forgot steps the viewer had seen
    assert [r["iteration"] for r in viewer.rows] == list(range(1, len(viewer.rows) + 1))
    assert viewer.rows[-1]["env_steps"] == final
    store = RunStore(runs)
    assert [r["iteration"] for r in store.metrics("f")] == [r["iteration"] for r in viewer.rows]
    events = [text for _, text in store.events("f")]
    assert sum(text.startswith("resumed from iteration") for text in events) == 4
    assert sum(text.startswith("killed: pid") for text in events) == 4
    live = [s for s in viewer.statuses if s in LIVE]
    assert live and set(viewer.statuses) <= {*LIVE, "killed", "finished", "idle"}


@pytest.fixture
def full_disk(tmp_path):
    """A 3 MB tmpfs as the runs folder (skipped where mounting is not allowed)."""
    folder = tmp_path / "full"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)],
                             capture_output=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("every_minutes", [0.01, 100], ids=["by-checkpoints", "by-the-store"])
def test_a_full_disk_is_one_line_and_the_run_is_marked_failed(full_disk, every_minutes):
    result = g2048lab(*TRAIN_TINY, "--minutes", 3, "--runs-dir", full_disk, "--run-name", "f",
                      "--checkpoint-minutes", every_minutes)  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and len(lines) == 2  # the run's name, the error
    assert lines[1].startswith("g2048lab train: error: run f failed: ")
    assert "No space left on device" in lines[1] or "database or disk is full" in lines[1]
    run = RunStore(full_disk).get_run("f")
    assert run.status == "failed" and run.error in lines[1]
    check_store_and_checkpoints(full_disk, "f")
    again = g2048lab(*TRAIN_TINY, "--resume", "f", "--steps", 10**6, "--runs-dir", full_disk)
    assert "Traceback" not in again.stderr
    assert f"run f failed: {run.error}" in again.stderr  # the next resume says what happened
