"""The g2048lab command: train, resume after kill -9, Ctrl-C, eval, runs, and bad input."""

import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from g2048lab.checkpoint import CheckpointManager
from g2048lab.learners.loading import load_checkpoint
from g2048lab.store import RunStore

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
    saved = load_checkpoint(runs / "k")
    saved_steps = saved["counters"]["env_steps"]
    killed = RunStore(runs).get_run("k")  # its writer's lock is free: it died
    assert killed.status == "killed" and "--resume k" in killed.error
    recorded = killed.env_steps
    assert "killed" in g2048lab("runs", "--runs-dir", runs).stdout
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
    assert "run k was killed:" in resumed.stderr
    store = RunStore(runs)
    run = store.get_run("k")
    assert run.status == "finished" and run.env_steps == saved_steps + TINY_ITERATION
    event = (
        f"resumed from iteration {saved['iteration']} (lost {max(0, recorded - saved_steps):,} env "
        "steps since the last checkpoint)"
    )
    assert event in [text for _, text in store.events("k")]
    rows = store.metrics("k")  # the curves follow the resumed run: no stale or repeated rows
    assert [r["iteration"] for r in rows] == list(range(1, saved["iteration"] + 2))
    assert all(a["env_steps"] < b["env_steps"] for a, b in zip(rows, rows[1:]))
    log = [json.loads(line) for line in (runs / "k" / "log.jsonl").read_text().splitlines()]
    assert {"type": "event", "event": event}.items() <= next(
        r for r in log if r.get("event") == event
    ).items()
    assert not [p for p in (runs / "k").iterdir() if p.name.endswith(".tmp")]
    assert load_checkpoint(runs / "k")["counters"]["env_steps"] == saved_steps + TINY_ITERATION


def test_a_run_whose_latest_checkpoint_is_damaged_continues_from_an_earlier_one(tmp_path):
    runs = tmp_path / "runs"
    done = g2048lab(*TRAIN_TINY, "--steps", 2 * TINY_ITERATION, "--runs-dir", runs,
                    "--run-name", "d", "--checkpoint-minutes", 0.0001)  # fmt: skip
    assert done.returncode == 0, done.stderr
    first, latest = CheckpointManager(runs / "d").saved()[-2:]
    data = bytearray(latest.read_bytes())
    # a byte of the largest tensor (the file's middle byte may be zip padding, read by no one)
    with zipfile.ZipFile(latest) as archive:
        entry = max(archive.infolist(), key=lambda info: info.file_size)
    name_length, extra_length = struct.unpack("<HH", data[entry.header_offset + 26 :][:4])
    data[entry.header_offset + 30 + name_length + extra_length + entry.file_size // 2] ^= 0xFF
    latest.write_bytes(bytes(data))
    refused = g2048lab("train", "--resume", "d", "--runs-dir", runs, "--quiet")
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert first.name in refused.stderr  # it names the run's other checkpoints
    resumed = g2048lab(*TRAIN_TINY, "--resume", first, "--steps", 3 * TINY_ITERATION,
                       "--runs-dir", runs)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    store = RunStore(runs)
    assert [r.name for r in store.list_runs()] == ["d"]  # the same run, not a new one
    run = store.get_run("d")
    assert run.status == "finished" and run.env_steps == 3 * TINY_ITERATION
    assert load_checkpoint(first)["iteration"] == 1  # went on from there
    assert [r["iteration"] for r in store.metrics("d")] == [1, 2, 3]
    assert any(text.startswith("resumed from iteration 1 ") for _, text in store.events("d"))


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
    assert RunStore(runs).get_run("c").status == "stopped"  # with budget left
    assert CheckpointManager(runs / "c").latest() is not None


def test_a_second_and_third_sigterm_do_not_interrupt_the_final_checkpoint(tmp_path):
    """timeout, systemd and CI runners signal the whole group, often twice."""
    runs = tmp_path / "runs"
    proc = start(*TRAIN_TINY, "--minutes", 10, "--runs-dir", runs, "--run-name", "t",
                 stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for(lambda: env_steps(runs, "t") > 0, timeout=120)
        for _ in range(2):
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.05)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "terminate called" not in stderr
    assert stderr.count("stopping: finishing the current step") == 1
    assert stderr.count("still saving") <= 1  # said once, if the save was still going
    run = RunStore(runs).get_run("t")
    assert run.status == "stopped" and run.writer is None
    final = load_checkpoint(runs / "t")
    assert final["counters"]["env_steps"] == run.env_steps  # nothing done after it is lost


FORCED_EXIT = """
import os, signal, sys, time
from g2048lab.interrupts import Interrupts
stops = []
Interrupts().install(lambda: stops.append(1), lambda: "the work since ckpt-7.pt is lost")
print("ready", flush=True)
while True:  # a save that takes forever
    time.sleep(0.05)
"""


def test_three_interrupts_within_seconds_force_an_exit_saying_what_is_lost():
    proc = subprocess.Popen([sys.executable, "-c", FORCED_EXIT], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines = []
    try:
        assert proc.stdout.readline() == "ready\n"
        for _ in range(3):  # each after the previous one's answer: pending signals merge
            proc.send_signal(signal.SIGINT)
            lines.append(proc.stderr.readline().rstrip("\n"))
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGINT
    assert lines == [
        "stopping: finishing the current step, then saving a checkpoint",
        "still saving; 3 interrupts within 5 s force an exit without the final checkpoint",
        "forced exit: the work since ckpt-7.pt is lost",
    ]


def test_one_run_has_one_writer_and_a_dead_one_is_taken_over(tmp_path):
    runs = tmp_path / "runs"
    first = start(*TRAIN_TINY, "--minutes", 10, "--runs-dir", runs, "--run-name", "w",
                  "--checkpoint-minutes", 0.01, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: CheckpointManager(runs / "w").latest() is not None, timeout=120)
        second = g2048lab(*TRAIN_TINY, "--resume", "w", "--steps", 10**6, "--runs-dir", runs)
        assert second.returncode == 2, second.stderr
        assert second.stderr.startswith(
            f"g2048lab train: error: run 'w' is being written by pid {first.pid} on "
            f"{socket.gethostname()} since "
        )
        assert len(second.stderr.strip().splitlines()) == 1
        again = g2048lab(*TRAIN_TINY, "--run-name", "w", "--steps", 10**6, "--runs-dir", runs)
        assert again.returncode == 2 and "exists" in again.stderr
        assert RunStore(runs).get_run("w").status == "running"  # the first goes on
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    steps = load_checkpoint(runs / "w")["counters"]["env_steps"] + TINY_ITERATION
    taken = g2048lab(*TRAIN_TINY, "--resume", "w", "--steps", steps, "--runs-dir", runs)
    assert taken.returncode == 0, taken.stderr
    store = RunStore(runs)
    assert store.get_run("w").status == "finished"
    assert any(f"killed: pid {first.pid} on" in text for _, text in store.events("w"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--preset", "huge", "--steps", 10], "unknown preset 'huge'"),
        (["train", "--steps", "-5"], "must be at least 1"),
        (["train", "--minutes", "0"], "must be positive"),
        (["train", "--resume", "nope", "--steps", 10], "nope"),
        (["eval", "missing.pt"], "no checkpoint at"),
        (["train", "--run-name", "", "--steps", 10], "an empty run name is not allowed"),
        (["train", "--seed", "-1", "--steps", 10], "a seed must be a non-negative integer"),
        (["dashboard", "--port", "99999"], "a TCP port is 1 to 65535, got 99999"),
        (["train", "--ppo.learning-rate", "abc"], "--ppo.learning-rate: must be float, got 'abc'"),
        (["train", "--ppo.gamma", "1.5"], "gamma must be in (0, 1]"),
        (["train", "--ntuple.learning-rate", "0.2"], "add --learner ntuple or drop them"),
        (["train", "--learner", "ntuple", "--ntuple.tuples", "9x9"], "unknown tuples layout"),
        (["train", "--learner", "sarsa"], "invalid choice: 'sarsa'"),
    ],
)
def test_bad_input_gives_one_line_and_a_nonzero_exit(tmp_path, args, message):
    result = g2048lab(
        *args,
        "--games" if args[0] == "eval" else "--runs-dir",
        5 if args[0] == "eval" else tmp_path / "runs",
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


def test_an_empty_store_file_is_not_silently_made_a_new_store(tmp_path):
    (tmp_path / "runs.sqlite").write_bytes(b"")  # a store that lost its contents?
    for args in (["runs"], [*TRAIN_TINY, "--steps", 10]):
        result = g2048lab(*args, "--runs-dir", tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "is empty (0 bytes)" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / "runs.sqlite").stat().st_size == 0  # left as it was


def test_play_compares_baselines_as_json():
    result = g2048lab("play", "--no-watch", "--games", 50, "--json")
    summary = json.loads(result.stdout)
    assert summary["corner"]["mean_score"] > summary["random"]["mean_score"]


def test_config_flags_reach_the_run_and_its_help_lists_every_field(tmp_path):
    from g2048lab.cli import build_parser
    from g2048lab.cli.train import build_trainer

    args = build_parser().parse_args(
        ["train", "--preset", "tiny", "--ppo.num-envs", "16", "--ppo.target-kl", "none",
         "--ppo.normalize-values", "false", "--model.n-experts", "2", "--reward.merge-bonus",
         "0.5", "--steps", "100"]
    )  # fmt: skip
    trainer = build_trainer(args, None)
    learner = trainer.learner
    assert learner.ppo.num_envs == 16 and learner.ppo.target_kl is None
    assert learner.ppo.normalize_values is False and learner.ppo.minibatch_size == 512  # tiny's
    assert learner.model_config.n_experts == 2 and learner.model_config.d_expert == 64
    assert trainer.config.learner_config.reward.merge_bonus == 0.5
    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for flag in ("--ppo.clip-coef", "--model.d-expert", "--reward.log-score", "--ntuple.tuples"):
        assert flag in text
    assert "hidden width of one expert's MLP" in text  # the field's comment


# --- runs: list, filter, compare, tag, note, rename, delete -------------------------------------


def runs_cli(*args) -> int:
    """``g2048lab runs ...`` in this process (no torch to import: fast)."""
    from g2048lab.cli import main

    return main(["runs", *map(str, args)])


@pytest.fixture
def three_runs(tmp_path) -> Path:
    """A store with two PPO runs that differ in two settings and an n-tuple run."""
    root = tmp_path / "runs"
    store = RunStore(root)
    ppo = {"learner": "ppo", "preset": "tiny", "ppo": {"learning_rate": 3e-4, "epochs": 4}}
    store.create_run("a", config=ppo, device="cpu")
    b = {**ppo, "ppo": {"learning_rate": 1e-4, "epochs": 4}, "seed": 1}
    store.create_run("b", config=b, device="cuda:0")
    store.create_run("n", config={"learner": "ntuple", "ntuple": {"tuples": "4x6"}}, device="cpu")
    for i in (1, 2):
        row = {"iteration": i, "env_steps": 2048 * i, "rollout/score_mean": 500.0 * i}
        store.add_metrics("a", {**row, "time/elapsed_s": 45.0 * i, "time/steps_per_s": 3000.0})
    store.set_status("a", "finished")
    store.set_tags("a", ["baseline", "lr"])
    store.set_tags("b", ["lr"])
    store.set_note("a", "the first one")
    return root


def test_runs_json_has_every_field_and_the_filters_pick_runs(three_runs, capsys):
    assert runs_cli("--runs-dir", three_runs, "--json") == 0
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(listed) == ["n", "b", "a"]
    a = listed["a"]
    assert {k: a[k] for k in ("learner", "preset", "status", "tags", "note", "device")} == {
        "learner": "ppo", "preset": "tiny", "status": "finished", "tags": ["baseline", "lr"],
        "note": "the first one", "device": "cpu",
    }  # fmt: skip
    assert a["config"]["ppo"] == {"learning_rate": 3e-4, "epochs": 4}
    assert set(a) == {
        "name", "learner", "preset", "status", "tags", "note", "env_steps", "iteration",
        "episodes", "best_score", "max_tile", "device", "created_at", "updated_at", "error",
        "writer", "config", "game",
    }  # fmt: skip
    n = listed["n"]
    assert (n["learner"], n["preset"], n["tags"]) == ("ntuple", None, [])
    for filters, names in [
        (["--tag", "lr"], ["b", "a"]),
        (["--tag", "lr", "--tag", "baseline"], ["a"]),
        (["--learner", "ntuple"], ["n"]),
        (["--status", "finished"], ["a"]),
        (["--status", "idle", "--learner", "ppo"], ["b"]),
        (["--tag", "nope"], []),
    ]:
        assert runs_cli("--runs-dir", three_runs, "--json", *filters) == 0
        assert [r["name"] for r in json.loads(capsys.readouterr().out)] == names, filters


def test_runs_table_shows_tags_and_fits_100_columns(three_runs, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    store = RunStore(three_runs)
    store.create_run("kickstart-30min-seed1", config={}, device="cuda:0")
    store.set_tags("kickstart-30min-seed1", ["kickstart", "seed:1", "30min"])
    with store._write() as db:
        db.execute("UPDATE runs SET env_steps = 123456789, best_score = 76543, max_tile = 8192")
    assert runs_cli("--runs-dir", three_runs) == 0
    table = capsys.readouterr().out
    assert max(map(len, table.splitlines())) <= 100
    for shown in ("123,456,789", "76,543", "8192", "cuda:0", "baseline", "seed:1", "ntuple"):
        assert shown in table
    assert runs_cli("--runs-dir", three_runs, "--tag", "baseline") == 0
    table = capsys.readouterr().out
    assert " a " in table and " b " not in table


def test_runs_compare_shows_the_settings_that_differ_and_where_each_ended(three_runs, capsys):
    assert runs_cli("--runs-dir", three_runs, "--compare", "a", "b", "--json") == 0
    compared = json.loads(capsys.readouterr().out)
    assert compared["config"] == {
        "ppo.learning_rate": {"a": 3e-4, "b": 1e-4},
        "seed": {"a": None, "b": 1},
    }
    assert compared["metrics"]["a"] == {  # counters from the run, which had no messages here
        "rollout/score_mean": 1000.0,
        "rollout/best_score": 0,
        "rollout/max_tile": 0,
        "rollout/reach_1024": None,  # not in its rows
        "rollout/reach_2048": None,
        "env_steps": 0,
        "time/elapsed_s": 90.0,
        "time/steps_per_s": 3000.0,
    }
    assert compared["metrics"]["b"]["rollout/score_mean"] is None
    assert runs_cli("--runs-dir", three_runs, "--compare", "a", "b", "n") == 0
    tables = capsys.readouterr().out
    settings = ("settings that differ", "ppo.learning_rate", "0.0003", "0.0001", "ntuple")
    metrics = ("where each run ended up", "recent mean score", "1,000", "1.5 min", "3,000")
    for shown in (*settings, *metrics):
        assert shown in tables, shown
    RunStore(three_runs).create_run("a2", config=RunStore(three_runs).get_run("a").config,
                                    device="cuda:0")  # fmt: skip
    assert runs_cli("--runs-dir", three_runs, "--compare", "a", "a2") == 0
    assert capsys.readouterr().out.startswith("a, a2: the same settings\n")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--compare", "a"], "--compare takes 2 to 8 runs, got 1"),
        (["--compare", *"abcdefghi"], "--compare takes 2 to 8 runs, got 9"),
        (["--compare", "a", "zz"], "no run 'zz' in"),
        (["--compare", "a", "a"], "--compare names a run twice"),
        (["--compare", "a", "b", "--tag", "lr"], "drop --tag, --learner and --status"),
        (["tag", "a", "bad tag"], "tag 'bad tag' is not allowed"),
        (["note", "zz", "hi"], "no run 'zz' in"),
        (["rename", "a", "b"], "a run named 'b' exists"),
        (["rename", "a", "../up"], "run name '../up' is not allowed"),
        (["delete", "zz", "--yes"], "no run 'zz' in"),
        (["delete", "a"], "delete run a: no terminal to ask on; add --yes to delete it"),
    ],
)
def test_bad_runs_input_gives_one_line_and_exit_2(three_runs, capsys, monkeypatch, args, message):
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # no terminal
    assert runs_cli("--runs-dir", three_runs, *args) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("g2048lab runs: error: ")
    assert {r.name for r in RunStore(three_runs).list_runs()} == {"a", "b", "n"}


def test_runs_tag_untag_note_rename_and_delete(three_runs, capsys):
    root = three_runs
    (RunStore(root).run_dir("a") / "ckpt-0000002.pt").write_bytes(bytes(3_000_000))
    for args in (
        ["tag", "b", "fast", "seed:1"],
        ["untag", "b", "lr", "absent"],
        ["note", "b", "lower", "learning", "rate"],
        ["note", "a"],
        ["rename", "b", "b2", "--runs-dir", root],  # --runs-dir after the action, too
        ["delete", "a", "--yes"],
    ):
        assert runs_cli("--runs-dir", root, *args) == 0, args
    assert capsys.readouterr().out.splitlines() == [
        "run b: tags fast, lr, seed:1",
        "run b: tags fast, seed:1",
        "run b: note set (19 characters)",
        "run a: note cleared",
        f"renamed run b to b2; its folder is {root / 'b2'}",
        "deleted run a: 1 checkpoint file (3.0 MB) and 3 rows of the store",
    ]
    runs = {r.name: r for r in RunStore(root).list_runs()}
    assert sorted(runs) == ["b2", "n"] and not (root / "a").exists()
    assert (runs["b2"].tags, runs["b2"].note) == (("fast", "seed:1"), "lower learning rate")


def test_runs_rename_and_delete_wait_for_a_live_run(three_runs, capsys):
    claim = RunStore(three_runs).claim("a")  # this process writes run a: it is live
    try:
        for args in (["rename", "a", "c"], ["delete", "a", "--yes"]):
            assert runs_cli("--runs-dir", three_runs, *args) == 2
            stderr = capsys.readouterr().err
            assert f"while pid {os.getpid()} on {socket.gethostname()} since " in stderr
            assert "stop it first" in stderr and len(stderr.strip().splitlines()) == 1
        assert runs_cli("--runs-dir", three_runs, "tag", "a", "live") == 0  # labels are fine
    finally:
        claim.release()
    assert RunStore(three_runs).get_run("a").tags == ("baseline", "live", "lr")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_runs_delete_asks_on_a_terminal(three_runs, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    assert runs_cli("--runs-dir", three_runs, "delete", "a") == 1
    out = capsys.readouterr().out
    assert out == "delete run a: 0 checkpoint files, 0.0 MB, 2 metric rows? [y/N] kept run a\n"
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    assert runs_cli("--runs-dir", three_runs, "delete", "a") == 0
    assert capsys.readouterr().out.endswith(
        "deleted run a: 0 checkpoint files (0.0 MB) and 3 rows of the store\n"
    )
    assert [r.name for r in RunStore(three_runs).list_runs()] == ["n", "b"]


def test_a_renamed_run_resumes_under_its_new_name(tmp_path):
    runs = tmp_path / "runs"
    done = g2048lab(*TRAIN_TINY, "--steps", TINY_ITERATION, "--runs-dir", runs, "--run-name", "old")
    assert done.returncode == 0, done.stderr
    renamed = g2048lab("runs", "rename", "old", "new", "--runs-dir", runs)
    assert renamed.returncode == 0, renamed.stderr
    resumed = g2048lab(*TRAIN_TINY, "--resume", "new", "--steps", 2 * TINY_ITERATION,
                       "--runs-dir", runs)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "run new finished after 4,096 env steps" in resumed.stderr
    store = RunStore(runs)
    run = store.get_run("new")
    assert run.status == "finished" and run.env_steps == 2 * TINY_ITERATION
    assert [r["iteration"] for r in store.metrics("new")] == [1, 2]
    events = [text for _, text in store.events("new")]
    assert "renamed from old" in events and "resumed from iteration 1" in events[-1]
    assert load_checkpoint(runs / "new")["run_id"] == "new"  # saved under the name it has now
    log = [json.loads(line) for line in (runs / "new" / "log.jsonl").read_text().splitlines()]
    assert {r["run"] for r in log if r["type"] == "iteration"} == {"old", "new"}
    assert not (runs / "old").exists() and store.latest_update("new").run_id == "new"
