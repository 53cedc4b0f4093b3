"""The g2048lab command: train, resume after kill -9, Ctrl-C, eval, runs, and bad input."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from g2048lab.checkpoint import CheckpointManager, load_checkpoint
from g2048lab.runs import RunStore

from .helpers import wait_for

CLI = [sys.executable, "-m", "g2048lab"]
TINY_ITERATION = 64 * 32
TRAIN_TINY = [
    "train",
    "--preset",
    "tiny",
    "--device",
    "cpu",
    "--threads",
    1,
    "--quiet",
]  # the tiny preset's games x moves per rollout on the CPU


def g2048lab(*args, timeout=180):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def start(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *map(str, args)], **kwargs)


def env_steps(runs: Path, name: str) -> int:
    """The run's env steps in the store, 0 until the run exists."""
    if not (runs / "runs.sqlite").exists():
        return 0
    return next((r.env_steps for r in RunStore(runs).list_runs() if r.name == name), 0)


def test_train_then_runs_then_eval(tmp_path):
    runs = tmp_path / "runs"
    done = g2048lab(
        *TRAIN_TINY, "--steps", 2 * TINY_ITERATION, "--runs-dir", runs, "--run-name", "t1"
    )
    assert done.returncode == 0, done.stderr
    run = RunStore(runs).get_run("t1")
    assert run.status == "finished" and run.env_steps == 2 * TINY_ITERATION
    log = [json.loads(line) for line in (runs / "t1" / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log if r["type"] == "iteration"] == [1, 2]
    assert log[-1]["type"] == "end" and log[-1]["status"] == "finished"
    listed = json.loads(g2048lab("runs", "--runs-dir", runs, "--json").stdout)
    assert [(r["name"], r["status"]) for r in listed] == [("t1", "finished")]
    table = g2048lab("runs", "--runs-dir", runs)
    assert "t1" in table.stdout and "finished" in table.stdout
    result = g2048lab("eval", runs / "t1", "--games", 20, "--json", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["games"] == 20 and summary["mean_score"] > 0
    assert set(summary["tile_share"]) == {"256", "512", "1024", "2048", "4096", "8192"}


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    runs = tmp_path / "runs"
    proc = start(
        *TRAIN_TINY,
        "--minutes",
        10,
        "--runs-dir",
        runs,
        "--run-name",
        "k",
        "--checkpoint-minutes",
        0.01,
        stderr=subprocess.DEVNULL,
    )
    try:
        manager = CheckpointManager(runs / "k")
        wait_for(lambda: len(manager.saved()) >= 2, timeout=120)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    saved_steps = load_checkpoint(runs / "k")["counters"]["env_steps"]
    assert RunStore(runs).get_run("k").status == "running"  # nobody could say otherwise
    resumed = g2048lab(
        "train",
        "--resume",
        "k",
        "--runs-dir",
        runs,
        "--steps",
        saved_steps + TINY_ITERATION,
        "--device",
        "cpu",
        "--threads",
        1,
        "--quiet",
    )
    assert resumed.returncode == 0, resumed.stderr
    run = RunStore(runs).get_run("k")
    assert run.status == "finished" and run.env_steps == saved_steps + TINY_ITERATION
    assert not [p for p in (runs / "k").iterdir() if p.name.endswith(".tmp")]
    assert load_checkpoint(runs / "k")["counters"]["env_steps"] == saved_steps + TINY_ITERATION


def test_ctrl_c_stops_cleanly_with_a_checkpoint(tmp_path):
    runs = tmp_path / "runs"
    proc = start(
        *TRAIN_TINY,
        "--minutes",
        10,
        "--runs-dir",
        runs,
        "--run-name",
        "c",
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: env_steps(runs, "c") > 0, timeout=120)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "stopped after" in stderr
    assert RunStore(runs).get_run("c").status == "finished"
    assert CheckpointManager(runs / "c").latest() is not None


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--preset", "huge", "--steps", 10], "unknown preset 'huge'"),
        (["train", "--steps", "-5"], "must be at least 1"),
        (["train", "--minutes", "0"], "must be positive"),
        (["train", "--resume", "nope", "--steps", 10], "nope"),
        (["eval", "missing.pt"], "no checkpoint at"),
    ],
)
def test_bad_input_gives_one_line_and_a_nonzero_exit(tmp_path, args, message):
    result = g2048lab(
        *args,
        "--runs-dir" if args[0] == "train" else "--games",
        tmp_path / "runs" if args[0] == "train" else 5,
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_corrupt_checkpoint_and_an_unwritable_folder_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    result = g2048lab("eval", bad)
    assert result.returncode == 2 and "not a readable checkpoint" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    result = g2048lab("train", "--preset", "tiny", "--steps", 10, "--runs-dir", blocker / "runs")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(blocker) in result.stderr


def test_play_compares_baselines_as_json():
    result = g2048lab("play", "--no-watch", "--games", 50, "--json")
    summary = json.loads(result.stdout)
    assert summary["corner"]["mean_score"] > summary["random"]["mean_score"]
