"""The run store: runs, metrics, updates, games, control requests; many processes at once."""

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from g2048lab import runs
from g2048lab.messages import TrainingUpdate
from g2048lab.ppo import PPOConfig
from g2048lab.recording import GameRecord
from g2048lab.runs import RunBusy, RunNotFound, RunRecorder, RunStore, StoreError
from g2048lab.trainer import Subscriber, Trainer, TrainerConfig, TrainingContext

from .factories import training_update
from .helpers import wait_for

REPO = Path(__file__).resolve().parents[1]


def make_update(env_steps=0, timestamp=1000.0, status="running", iteration=0) -> TrainingUpdate:
    """A message as big as a real one: attention for 4 heads, 2 MoE layers of 4 experts."""
    rng = np.random.default_rng(env_steps)
    return training_update(
        iteration=iteration,
        episode=env_steps // 100,
        env_steps=env_steps,
        attention_weights=rng.random((4, 16, 16)).round(4).tolist(),
        expert_usage=[[0.25] * 4, [0.25] * 4],
        model_params=1.5,
        steps_per_second=5000.0,
        timestamp=timestamp,
        status=status,
        best_score=2048,
    )


def make_game(score: int, moves: int = 5) -> GameRecord:
    rng = np.random.default_rng(score)
    return GameRecord(
        boards=rng.integers(0, 11, (moves + 1, 4, 4), dtype=np.uint8),
        actions=rng.integers(0, 4, moves),
        probs=rng.random((moves, 4), dtype=np.float32),
        values=rng.random(moves, dtype=np.float32),
        rewards=rng.random(moves, dtype=np.float32),
        score_gains=rng.integers(0, 64, moves),
        score=score,
        max_tile=1024,
        env_steps=score * 10,
        iteration=score // 10,
        timestamp=1000.0 + score,
    )


def tiny(**changes) -> TrainerConfig:
    ppo = PPOConfig(num_envs=32, rollout_steps=16, minibatch_size=256, epochs=1)
    return TrainerConfig(preset="tiny", device="cpu", threads=1, ppo=ppo, record_slots=4, **changes)


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


# --- runs ---------------------------------------------------------------------------------


def test_runs_are_created_found_and_listed_newest_first(store):
    assert store.list_runs() == [] and store.latest_run() is None
    first = store.create_run("first", config={"preset": "tiny"}, device="cpu")
    second = store.create_run("second", config={}, device="cuda:0")
    assert (first.status, first.config, first.device, first.env_steps) == (
        "idle",
        {"preset": "tiny"},
        "cpu",
        0,
    )
    assert store.get_run("first") == first
    assert [r.name for r in store.list_runs()] == ["second", "first"]
    assert store.latest_run() == second
    store.set_status("first", "running")
    assert store.latest_run().name == "first"  # the one written to last
    store.set_status("first", "failed", error="ValueError: boom")
    assert (store.get_run("first").status, store.get_run("first").error) == (
        "failed",
        "ValueError: boom",
    )
    assert RunStore(store.root).get_run("second") == second  # reopened


def test_generated_names_are_readable_and_unique(store):
    names = [store.create_run(config={}, device="cpu").name for _ in range(3)]
    assert len(set(names)) == 3
    assert all(name.startswith("run-20") for name in names)


def test_duplicate_and_malformed_names_are_refused(store):
    store.create_run("r1", config={}, device="cpu")
    with pytest.raises(StoreError, match="'r1' exists"):
        store.create_run("r1", config={}, device="cpu")
    for bad in ("", "../up", "a b", "-dash", "x" * 65, "a.b"):
        with pytest.raises(StoreError, match="not allowed"):
            store.create_run(bad, config={}, device="cpu")


def test_an_unknown_run_is_named_with_the_known_ones(store):
    with pytest.raises(RunNotFound, match="holds no runs yet"):
        store.get_run("nope")
    for i in range(7):
        store.create_run(f"r{i}", config={}, device="cpu")
    with pytest.raises(RunNotFound) as caught:
        store.metrics("nope")
    message = str(caught.value)
    assert "'nope'" in message and "r6, r5, r4, r3, r2 and 2 more" in message
    assert "\n" not in message


def test_bad_status_action_and_game_kind_are_refused(store):
    store.create_run("r", config={}, device="cpu")
    with pytest.raises(StoreError, match="unknown status 'done'"):
        store.set_status("r", "done")
    with pytest.raises(StoreError, match="unknown action 'restart': choose one of pause"):
        store.request("r", "restart")
    with pytest.raises(StoreError, match="unknown game kind 'worst'"):
        store.add_game("r", make_game(10), kinds={"worst"})
    with pytest.raises(StoreError, match="no control request 99"):
        store.acknowledge(99)


def test_run_dir_is_made_on_demand_for_known_runs(store):
    store.create_run("r", config={}, device="cpu")
    folder = store.run_dir("r")
    assert folder == store.root / "r" and folder.is_dir()
    with pytest.raises(RunNotFound):
        store.run_dir("typo")
    assert not (store.root / "typo").exists()


def test_a_store_from_a_newer_g2048lab_is_refused_in_one_line(store):
    with sqlite3.connect(store.path) as db:
        db.execute(f"PRAGMA user_version = {runs.SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer g2048lab.*upgrade g2048lab$") as caught:
        RunStore(store.root)
    assert "\n" not in str(caught.value)


def test_a_file_that_is_no_database_is_refused(tmp_path):
    (tmp_path / runs.DATABASE_NAME).write_bytes(b"not sqlite at all, " * 100)
    with pytest.raises(StoreError, match="not a usable run store"):
        RunStore(tmp_path)


def test_an_unwritable_runs_folder_is_refused_naming_it(tmp_path):
    (tmp_path / "file").write_text("a regular file")
    root = tmp_path / "file" / "runs"
    with pytest.raises(StoreError, match="cannot create the runs folder") as caught:
        RunStore(root)
    assert str(root) in str(caught.value) and "\n" not in str(caught.value)


# --- metrics, updates, games --------------------------------------------------------------


def test_a_store_of_the_previous_schema_is_migrated_and_keeps_its_runs(tmp_path):
    root = tmp_path / "old"
    root.mkdir()
    with sqlite3.connect(root / "runs.sqlite") as db:  # as g2048lab wrote it before writers
        for statement in runs._MIGRATIONS[0].split(";"):
            db.execute(statement)
        db.execute(
            "INSERT INTO runs (name, status, config, device, created_at, updated_at)"
            " VALUES ('old', 'finished', '{}', 'cpu', 1.0, 1.0)"
        )
        db.execute("PRAGMA user_version = 1")
    store = RunStore(root)
    assert [(r.name, r.status, r.writer, r.rewinds) for r in store.list_runs()] == [
        ("old", "finished", None, 0)
    ]
    store.claim("old").release()
    store.add_event("old", "migrated")
    assert [text for _, text in store.events("old")] == ["migrated"]


def test_an_empty_store_file_is_refused_but_a_new_store_is_never_seen_empty(tmp_path):
    (tmp_path / "runs.sqlite").write_bytes(b"")
    with pytest.raises(StoreError, match=r"is empty \(0 bytes\)"):
        RunStore(tmp_path)
    fresh = tmp_path / "fresh"
    RunStore(fresh)
    assert (fresh / "runs.sqlite").stat().st_size > 0  # made aside, then linked in place
    assert not list(fresh.glob(".*.tmp*"))  # the temporary store is gone


# --- one writer per run ---------------------------------------------------------------------


def test_one_writer_per_run_until_it_lets_go(store):
    store.create_run("r", config={}, device="cpu")
    claim = store.claim("r")
    assert store.get_run("r").writer.pid == os.getpid()
    with pytest.raises(RunBusy, match=rf"run 'r' is being written by pid {os.getpid()} on "):
        store.claim("r")
    with pytest.raises(RunBusy):  # a recorder is a writer too (the dashboard's start button)
        RunRecorder(store, "r")
    store.put_update("r", make_update(env_steps=64), claim)
    claim.release()
    claim.release()  # once is enough; again does nothing
    assert store.get_run("r").writer is None
    store.claim("r").release()


def test_a_writer_that_was_taken_over_cannot_write_any_more(store, monkeypatch):
    store.create_run("r", config={}, device="cpu")
    old = store.claim("r")
    with store._write() as db:  # as if another host took the run over after a long silence
        db.execute("UPDATE runs SET writer_token = 'someone else'")
    with pytest.raises(RunBusy, match="taken over by another process"):
        store.put_update("r", make_update(env_steps=64, status="running"), old)
    store.set_status("r", "failed", "late", claim=old)  # ignored: not its run any more
    assert store.get_run("r").status == "idle"


def test_a_writer_that_died_leaves_its_run_killed_and_free(store):
    store.create_run("r", config={}, device="cpu")
    script = (
        "import sys, time; from g2048lab.runs import RunStore;"
        "from tests.factories import training_update;"
        "s = RunStore(sys.argv[1]); c = s.claim('r');"
        "s.put_update('r', training_update(status='running'), c);"
        "print('ready', flush=True); time.sleep(600)"
    )
    writer = subprocess.Popen([sys.executable, "-c", script, str(store.root)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert writer.stdout.readline() == "ready\n"
        assert store.get_run("r").status == "running"  # alive: its lock is held
        with pytest.raises(RunBusy, match=f"pid {writer.pid}"):
            store.claim("r")
    finally:
        writer.kill()
        writer.wait()
    run = store.get_run("r")
    assert run.status == "killed" and run.writer is None
    assert f"pid {writer.pid} on " in run.error and "--resume r" in run.error
    assert [text for _, text in store.events("r")] == [f"killed: {run.error}"]
    store.claim("r").release()  # free for a resume


def test_rewind_forgets_what_came_after_a_checkpoint_and_tells_viewers(store):
    store.create_run("r", config={}, device="cpu")
    for i in range(1, 6):
        store.add_metrics("r", {"iteration": i, "env_steps": 100 * i})
        store.put_update("r", make_update(env_steps=100 * i, timestamp=1000.0 + 20 * i))
    store.add_game("r", make_game(300))  # ended at 3,000 env steps: after the checkpoint
    assert store.rewind("r", iteration=2, env_steps=200) == 300
    run = store.get_run("r")
    assert (run.iteration, run.env_steps, run.rewinds) == (2, 200, 1)
    assert [row["iteration"] for row in store.metrics("r")] == [1, 2]
    assert [u.env_steps for u in store.update_history("r")] == [100, 200]
    assert store.latest_update("r") is None and store.games("r") == []
    assert store.rewind("r", iteration=2, env_steps=200) == 0  # nothing more to forget
    assert store.get_run("r").rewinds == 1


def test_metrics_are_one_row_per_iteration_and_a_resume_replaces_them(store):
    store.create_run("r", config={}, device="cpu")
    for i in (1, 2, 3):
        store.add_metrics("r", {"iteration": i, "train/loss": float(i)})
    for i in (2, 3, 4):  # resumed from a checkpoint taken after iteration 1
        store.add_metrics("r", {"iteration": i, "train/loss": 10.0 * i})
    rows = store.metrics("r")
    assert [(r["iteration"], r["train/loss"]) for r in rows] == [
        (1, 1.0),
        (2, 20.0),
        (3, 30.0),
        (4, 40.0),
    ]
    assert [r["iteration"] for r in store.metrics("r", since_iteration=2)] == [3, 4]


def test_the_latest_update_is_kept_whole_and_the_history_every_10_s(store):
    store.create_run("r", config={}, device="cpu")
    assert store.latest_update("r") is None
    for i in range(100):  # one message a second
        store.put_update("r", make_update(env_steps=64 * i, timestamp=1000.0 + i, iteration=i))
    last = make_update(env_steps=64 * 99, timestamp=1099.5, status="paused", iteration=99)
    store.put_update("r", last)
    assert store.latest_update("r") == last
    history = [(u.timestamp, u.status) for u in store.update_history("r")]
    assert history == [(1000.0 + 10 * i, "running") for i in range(10)] + [(1099.5, "paused")]
    assert [u.timestamp for u in store.update_history("r", since_timestamp=1070.0)] == [
        1080.0,
        1090.0,
        1099.5,
    ]
    run = store.get_run("r")  # the message's status and counters go onto the run
    assert (run.status, run.env_steps, run.iteration, run.best_score, run.max_tile) == (
        "paused",
        64 * 99,
        99,
        2048,
        256,
    )


def test_a_long_history_is_thinned_keeping_its_ends(store, monkeypatch):
    monkeypatch.setattr(runs, "HISTORY_LIMIT", 20)
    monkeypatch.setattr(runs, "HISTORY_INTERVAL_S", 1.0)
    store.create_run("r", config={}, device="cpu")
    for i in range(200):
        store.put_update("r", make_update(env_steps=i, timestamp=1000.0 + i))
    times = [u.timestamp for u in store.update_history("r")]
    assert 10 <= len(times) <= 20
    assert times[0] == 1000.0 and times[-1] == 1199.0 and times == sorted(times)
    gaps = np.diff(times)
    assert gaps[0] > gaps[-1] == 1.0  # sparse in the past, dense near the present


def test_games_keep_the_best_and_the_recent_and_load_back_whole(store):
    store.create_run("r", config={}, device="cpu")
    ids = {s: store.add_game("r", make_game(s), keep_best=2, keep_recent=2) for s in (50, 10, 40)}
    ids |= {s: store.add_game("r", make_game(s), keep_best=2, keep_recent=2) for s in (30, 20)}
    ids[100] = store.add_game("r", make_game(100), kinds={"recent"}, keep_best=2, keep_recent=2)
    kept = [(g.score, sorted(g.kinds)) for g in store.games("r")]
    assert kept == [(100, ["recent"]), (50, ["best"]), (40, ["best"]), (20, ["recent"])]
    with pytest.raises(StoreError, match="pruned"):
        store.load_game(ids[30])
    game, loaded = make_game(100), store.load_game(ids[100])
    for field in ("boards", "actions", "probs", "values", "rewards", "score_gains"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(game, field))
        assert getattr(loaded, field).dtype == getattr(game, field).dtype
    assert (loaded.score, loaded.max_tile, loaded.env_steps, loaded.iteration) == (
        100,
        1024,
        1000,
        10,
    )
    assert loaded.timestamp == game.timestamp and loaded.length == 5
    summary = store.games("r")[0]
    assert (summary.id, summary.length, summary.env_steps) == (ids[100], 5, 1000)


def test_control_requests_are_pending_until_acknowledged(store):
    store.create_run("r", config={}, device="cpu")
    pause, stop = store.request("r", "pause"), store.request("r", "stop")
    assert [(r.id, r.run, r.action) for r in store.pending_requests("r")] == [
        (pause, "r", "pause"),
        (stop, "r", "stop"),
    ]
    store.acknowledge(pause)
    store.acknowledge(pause, "late duplicate")  # ignored
    state = store.request_state(pause)
    assert state.result == "done" and state.acknowledged_at >= state.created_at
    assert [r.id for r in store.pending_requests("r")] == [stop]


# --- the recorder -------------------------------------------------------------------------


def test_the_recorder_ignores_stale_requests_and_reports_what_it_could_not_do(store):
    store.create_run("r", config={}, device="cpu")
    stale = store.request("r", "stop")
    trainer = Trainer(tiny())  # never started: idle
    context = TrainingContext(trainer.handle, "r", 0, 0, 0, 0.0)

    def broken_checkpoint() -> str:
        raise OSError("disk full")

    for checkpoint, expected in ((None, "error: this run was started without checkpoints"),
                                 (broken_checkpoint, "error: disk full")):  # fmt: skip
        recorder = RunRecorder(store, "r", checkpoint=checkpoint)
        assert store.request_state(stale).result.startswith("ignored: made before")
        pause, save = store.request("r", "pause"), store.request("r", "checkpoint")
        recorder.on_update(trainer.snapshot(), context)
        assert store.request_state(pause).result == "ignored: the run is idle"
        assert store.request_state(save).result == expected
        recorder.claim.release()  # one writer at a time: the next recorder claims the run
    assert store.get_run("r").status == "idle"
    with pytest.raises(RunNotFound):
        RunRecorder(store, "typo")


class Explode(Subscriber):
    def on_iteration(self, metrics, context):
        raise ValueError("boom in a subscriber")


def test_the_recorder_serves_a_checkpoint_and_records_a_failed_run(store):
    store.create_run("r", config={}, device="cpu")
    trainer = Trainer(tiny())
    trainer.subscribe(RunRecorder(store, "r", checkpoint=lambda: "runs/r/ckpt-0000001.pt"))
    trainer.start()
    try:
        wait_for(lambda: store.metrics("r"), what="a metrics row")
        assert store.get_run("r").status == "running"
        save = store.request("r", "checkpoint")
        wait_for(lambda: store.request_state(save).acknowledged_at, 5, "checkpoint served")
        assert store.request_state(save).result == "runs/r/ckpt-0000001.pt"
        trainer.subscribe(Explode())
        with pytest.raises(ValueError, match="boom"):
            trainer.join(timeout=30)
    finally:
        trainer.stop()
    run = store.get_run("r")
    assert (run.status, run.error) == ("failed", "ValueError: boom in a subscriber")
    assert store.latest_update("r").status == "failed"
    assert run.iteration == trainer.iteration == store.metrics("r")[-1]["iteration"]


# --- many processes -----------------------------------------------------------------------

READER = """
import json, sys, time
from g2048lab.runs import RunStore

store = RunStore(sys.argv[1])
print("ready", flush=True)
steps, iterations, games, reads, errors = [], 0, 0, 0, []
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        assert [run.name for run in store.list_runs()] == ["w"]
        update = store.latest_update("w")
        rows = store.metrics("w", since_iteration=iterations)
        for row in rows:
            if row["iteration"] != iterations + 1:
                errors.append(f"iteration {row['iteration']} after {iterations}")
            iterations = row["iteration"]
        games = max(games, len(store.games("w")))
        reads += 1
        if update is not None:
            if steps and update.env_steps < steps[-1]:
                errors.append("env_steps went back")
            steps.append(update.env_steps)
            if update.status == "finished":
                break
    except Exception as error:
        errors.append(repr(error))
print(json.dumps({"reads": reads, "distinct_steps": len(set(steps)), "last_steps": steps[-1],
                  "iterations": iterations, "games": games, "errors": errors[:5]}))
"""


def test_reader_processes_poll_the_store_while_it_is_written(store, tmp_path):
    store.create_run("w", config={}, device="cpu")
    script = tmp_path / "reader.py"
    script.write_text(READER)
    readers = [
        subprocess.Popen(
            [sys.executable, str(script), str(store.root)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for reader in readers:
            assert reader.stdout.readline().strip() == "ready", reader.stderr.read()
        writes = 300
        for i in range(1, writes + 1):
            store.put_update("w", make_update(env_steps=64 * i, timestamp=time.time()))
            store.add_metrics("w", {"iteration": i, "train/loss": 1.0 / i})
            if i % 30 == 0:
                store.add_game("w", make_game(i, moves=200))
                store.acknowledge(store.request("w", "checkpoint"), "saved")
        store.put_update("w", make_update(env_steps=64 * writes, status="finished"))
        reports = []
        for reader in readers:
            out, err = reader.communicate(timeout=60)
            assert reader.returncode == 0, err
            reports.append(json.loads(out))
    finally:
        for reader in readers:
            if reader.poll() is None:
                reader.kill()
                reader.wait()
    for report in reports:
        assert report["errors"] == [], report
        assert report["last_steps"] == 64 * writes and report["iterations"] == writes
        assert report["distinct_steps"] >= 3 and report["games"] == 5, report


TRAINER = """
import sys
from g2048lab.ppo import PPOConfig
from g2048lab.runs import RunRecorder, RunStore
from g2048lab.trainer import Trainer, TrainerConfig

store = RunStore(sys.argv[1])
store.create_run("r1", config={}, device="cpu")
ppo = PPOConfig(num_envs=32, rollout_steps=16, minibatch_size=256, epochs=1)
trainer = Trainer(TrainerConfig(preset="tiny", device="cpu", threads=1, ppo=ppo))
trainer.subscribe(RunRecorder(store, "r1"))
trainer.run()
"""


def test_requests_through_the_store_pause_resume_and_stop_a_trainer_elsewhere(store, tmp_path):
    script, log = tmp_path / "train.py", tmp_path / "train.log"
    script.write_text(TRAINER)

    def latest() -> TrainingUpdate | None:
        try:
            return store.latest_update("r1")
        except RunNotFound:
            return None

    def served(request_id: int) -> str:  # within about 2 s on a quiet machine: no timing here
        wait_for(lambda: store.request_state(request_id).acknowledged_at, 60, "acknowledgement")
        return store.request_state(request_id).result

    with log.open("w") as output:
        trainer = subprocess.Popen(
            [sys.executable, str(script), str(store.root)],
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: (u := latest()) is not None and u.env_steps > 0, 60, "training")
        assert served(store.request("r1", "pause")) == "done"
        wait_for(lambda: latest().status == "paused", 60, "paused")
        paused = latest()
        heartbeats = [paused]
        wait_for(lambda: heartbeats.append(latest()) or len({u.timestamp for u in heartbeats}) > 2,
                 60, "messages while paused")  # fmt: skip
        assert {u.env_steps for u in heartbeats} == {paused.env_steps}  # nothing moved
        assert served(store.request("r1", "resume")) == "done"
        wait_for(lambda: latest().env_steps > paused.env_steps, 60, "steps after resume")
        assert served(store.request("r1", "stop")) == "done"
        assert trainer.wait(timeout=60) == 0, log.read_text()[-2000:]
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()
    run = store.get_run("r1")
    assert (run.status, run.error) == ("stopped", None)
    assert run.env_steps > paused.env_steps and store.metrics("r1")
