"""The run store: runs, metrics, updates, games, control requests; many processes at once."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from g2048lab.compare import FINAL_METRICS, config_diff, final_metrics, flatten_config
from g2048lab.learners.ppo.algorithm import PPOConfig
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.messages import TrainingUpdate
from g2048lab.store import (
    RESERVE_NAME,
    RunBusy,
    RunNotFound,
    RunRecorder,
    RunStore,
    StoreError,
    claims,
    run_records,
    schema,
)
from g2048lab.trainer import Subscriber, Trainer, TrainerConfig, TrainingContext

from .factories import game_record, training_update
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


def tiny(**changes) -> TrainerConfig:
    ppo = PPOConfig(num_envs=32, rollout_steps=16, minibatch_size=256, epochs=1)
    settings = PPOLearnerConfig(preset="tiny", ppo=ppo)
    return TrainerConfig(
        device="cpu", threads=1, learner_config=settings, record_slots=4, **changes
    )


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
        store.add_game("r", game_record(10), kinds={"worst"})
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
        db.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer g2048lab.*upgrade g2048lab$") as caught:
        RunStore(store.root)
    assert "\n" not in str(caught.value)


def test_a_file_that_is_no_database_is_refused(tmp_path):
    (tmp_path / schema.DATABASE_NAME).write_bytes(b"not sqlite at all, " * 100)
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
        for statement in schema.MIGRATIONS[0].split(";"):
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
        "import sys, time; from g2048lab.store import RunStore;"
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
    store.add_game("r", game_record(300))  # ended at 3,000 env steps: after the checkpoint
    assert store.rewind("r", iteration=2, env_steps=200) == 300
    run = store.get_run("r")
    assert (run.iteration, run.env_steps, run.rewinds) == (2, 200, 1)
    assert [row["iteration"] for row in store.metrics("r")] == [1, 2]
    assert [u.env_steps for u in store.update_history("r")] == [100, 200]
    assert store.latest_update("r") is None and store.games("r") == []
    assert store.rewind("r", iteration=2, env_steps=200) == 0  # nothing more to forget
    assert store.get_run("r").rewinds == 1


def test_rewind_records_the_checkpoint_row_that_a_kill_left_out(store):
    """Killed after saving iteration 2's checkpoint, before recording its row: the rows were
    [1, 3] after the resume (seen in test_cli under load)."""
    store.create_run("r", config={}, device="cpu")
    store.add_metrics("r", {"iteration": 1, "env_steps": 100})
    row = {"iteration": 2, "env_steps": 200, "train/loss": 0.5}
    store.rewind("r", iteration=2, env_steps=200, checkpoint_row=row)
    assert store.metrics("r") == [{"iteration": 1, "env_steps": 100}, row]
    store.rewind("r", iteration=2, env_steps=200, checkpoint_row=row)  # already there: kept
    assert [r["iteration"] for r in store.metrics("r")] == [1, 2]


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
    store.create_run("s", config={}, device="cpu")
    store.create_run("empty", config={}, device="cpu")
    store.add_metrics_batch("s", [{"iteration": i, "train/loss": -i} for i in (3, 1, 2)])
    assert store.last_metrics() == {
        "r": {"iteration": 4, "train/loss": 40.0},
        "s": {"iteration": 3, "train/loss": -3},
    }


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
    monkeypatch.setattr(run_records, "HISTORY_LIMIT", 20)
    monkeypatch.setattr(run_records, "HISTORY_INTERVAL_S", 1.0)
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
    ids = {s: store.add_game("r", game_record(s), keep_best=2, keep_recent=2) for s in (50, 10, 40)}
    ids |= {s: store.add_game("r", game_record(s), keep_best=2, keep_recent=2) for s in (30, 20)}
    ids[100] = store.add_game("r", game_record(100), kinds={"recent"}, keep_best=2, keep_recent=2)
    kept = [(g.score, sorted(g.kinds)) for g in store.games("r")]
    assert kept == [(100, ["recent"]), (50, ["best"]), (40, ["best"]), (20, ["recent"])]
    with pytest.raises(StoreError, match="pruned"):
        store.load_game(ids[30])
    game, loaded = game_record(100), store.load_game(ids[100])
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
from g2048lab.store import RunStore

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
                store.add_game("w", game_record(i, moves=200))
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
from g2048lab.learners.ppo.algorithm import PPOConfig
from g2048lab.store import RunRecorder, RunStore
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.trainer import Trainer, TrainerConfig

store = RunStore(sys.argv[1])
store.create_run("r1", config={}, device="cpu")
ppo = PPOConfig(num_envs=32, rollout_steps=16, minibatch_size=256, epochs=1)
settings = PPOLearnerConfig(preset="tiny", ppo=ppo)
trainer = Trainer(TrainerConfig(device="cpu", threads=1, learner_config=settings))
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


# --- tags, notes, renames, deletes ----------------------------------------------------------


def rows_of(store: RunStore, run_id: int) -> dict[str, int]:
    """The run's rows in every table of the store, counted straight from the file."""
    with sqlite3.connect(store.path) as db:
        return {
            table: db.execute(
                f"SELECT count(*) FROM {table} WHERE {key} = ?", (run_id,)
            ).fetchone()[0]
            for table, key in [*((t, "run_id") for t in schema.RUN_TABLES), ("runs", "id")]
        }


def filled_run(store: RunStore, name: str) -> RunStore:
    """A run with a row in every table and two checkpoint files in its folder."""
    store.create_run(name, config={"learner": "ppo"}, device="cpu")
    for i in (1, 2):
        store.add_metrics(name, {"iteration": i, "env_steps": 64 * i})
        store.put_update(name, make_update(env_steps=64 * i, timestamp=1000.0 + 20 * i))
    store.add_game(name, game_record(50))
    store.request(name, "pause")
    store.add_event(name, "checkpoint saved")
    for file in ("ckpt-0000002.pt", "best.pt"):
        (store.run_dir(name) / file).write_bytes(bytes(1000))
    return store


def test_tags_and_notes_round_trip_and_bad_ones_are_refused(store):
    store.create_run("r", config={"learner": "ntuple"}, device="cpu")
    run = store.get_run("r")
    assert (run.tags, run.note, run.learner) == ((), "", "ntuple")
    assert store.set_tags("r", ["seed:1", "baseline", "seed:1", "v2.1_a-b"]) == (
        "baseline", "seed:1", "v2.1_a-b",
    )  # fmt: skip
    store.set_note("r", "  lr 3e-4;\nthe first long run  ")
    run = RunStore(store.root).get_run("r")
    assert run.tags == ("baseline", "seed:1", "v2.1_a-b")
    assert run.note == "  lr 3e-4;\nthe first long run  "  # as given
    assert store.get_run("r").updated_at == store.get_run("r").created_at  # labels, not news
    for bad in ("", "x" * 33, "a b", "ä", "a/b", 7):
        with pytest.raises(StoreError, match="not allowed: use 1 to 32 letters") as caught:
            store.set_tags("r", [bad])
        assert "\n" not in str(caught.value)
    with pytest.raises(StoreError, match="not the one string 'abc'"):
        store.set_tags("r", "abc")
    with pytest.raises(StoreError, match="at most 2,000 characters, this one has 2,001"):
        store.set_note("r", "x" * 2001)
    assert store.get_run("r").tags == ("baseline", "seed:1", "v2.1_a-b")  # unchanged
    store.set_tags("r", [])
    store.set_note("r", "")
    assert (store.get_run("r").tags, store.get_run("r").note) == ((), "")
    with pytest.raises(RunNotFound):
        store.set_tags("nope", ["a"])
    assert store.get_run("r").learner == "ntuple"
    assert RunStore(store.root).create_run("old", config={}, device="cpu").learner == "ppo"


def test_tags_and_notes_may_be_set_while_a_writer_records(store):
    store.create_run("r", config={}, device="cpu")
    claim = store.claim("r")
    done, errors = threading.Event(), []

    def record() -> None:  # the writer: a message after another, on its own connection
        try:
            i = 0
            while not done.is_set():
                i += 1
                store.put_update("r", make_update(env_steps=i, timestamp=1000.0 + i), claim)
                store.add_metrics("r", {"iteration": i})
        except Exception as error:
            errors.append(error)

    writer = threading.Thread(target=record)
    writer.start()
    try:
        for i in range(50):
            store.set_tags("r", [f"t{i}", "kept"])
            store.set_note("r", f"note {i}")
    finally:
        done.set()
        writer.join()
    assert errors == []
    run = store.get_run("r")
    assert (run.tags, run.note) == (("kept", "t49"), "note 49")
    assert run.writer.pid == os.getpid() and run.env_steps == store.metrics("r")[-1]["iteration"]
    claim.release()


def test_a_rename_moves_the_run_and_its_files(store):
    filled_run(store, "old")
    before = store.get_run("old")
    other = RunStore(store.root)  # a second store object that has read the run already
    assert [r["iteration"] for r in other.metrics("old")] == [1, 2]
    renamed = store.rename_run("old", "new")
    assert renamed == replace(before, name="new")  # the same run, the same id
    assert sorted(p.name for p in (store.root / "new").iterdir()) == [
        ".writer.lock", "best.pt", "ckpt-0000002.pt",
    ]  # fmt: skip
    assert not (store.root / "old").exists()
    assert [text for _, text in store.events("new")][-1] == "renamed from old"
    for reader in (store, other):
        with pytest.raises(RunNotFound, match="no run 'old'.*runs there: new"):
            reader.get_run("old")
        with pytest.raises(RunNotFound):
            reader.metrics("old")
        assert [r["iteration"] for r in reader.metrics("new")] == [1, 2]
    store.claim("new").release()  # a writer can take it, in its new folder
    assert (store.root / "new" / ".writer.lock").exists() and not (store.root / "old").exists()


def test_a_killed_run_renamed_says_how_to_resume_it_by_its_new_name(store):
    store.create_run("k", config={}, device="cpu")
    store.set_status("k", "killed", "pid 1 ended without a word; continue it with "
                     "g2048lab train --resume k")  # fmt: skip
    store.rename_run("k", "k2")
    assert store.get_run("k2").error.endswith("g2048lab train --resume k2")


def test_a_rename_is_refused_while_live_onto_a_taken_name_or_folder_or_a_bad_name(store):
    store.create_run("a", config={}, device="cpu")
    store.create_run("b", config={}, device="cpu")
    claim = store.claim("a")
    with pytest.raises(RunBusy, match=rf"cannot rename run 'a' while pid {os.getpid()} on .*"
                       "stop it first") as caught:  # fmt: skip
        RunStore(store.root).rename_run("a", "c")
    assert "\n" not in str(caught.value)
    claim.release()
    with pytest.raises(StoreError, match="a run named 'b' exists"):
        store.rename_run("a", "b")
    with pytest.raises(StoreError, match="a run named 'a' exists"):
        store.rename_run("a", "a")
    (store.root / "stray").mkdir()
    with pytest.raises(StoreError, match=r"stray exists: move it away or choose another name"):
        store.rename_run("a", "stray")
    with pytest.raises(StoreError, match="not allowed"):
        store.rename_run("a", "../c")
    with pytest.raises(RunNotFound):
        store.rename_run("nope", "c")
    assert [r.name for r in store.list_runs()] == ["b", "a"]
    assert store.events("a") == []


def test_a_delete_removes_every_row_and_file_and_frees_the_name(store):
    filled_run(store, "r")
    filled_run(store, "kept")
    run_id = store.get_run("r").id
    other = RunStore(store.root)
    assert other.metrics("r") and other.games("r")  # read before the delete
    size = store.run_size("r")
    assert (size.checkpoint_files, size.folder_bytes, size.metric_rows) == (2, 2000, 2)
    assert size.rows == sum(rows_of(store, run_id).values())
    assert store.delete_run("r") == size
    assert set(rows_of(store, run_id).values()) == {0}
    assert not (store.root / "r").exists() and not list(store.root.glob(".deleted-*"))
    for reader in (store, other):
        with pytest.raises(RunNotFound, match="no run 'r'"):
            reader.get_run("r")
        with pytest.raises(RunNotFound):
            reader.add_metrics("r", {"iteration": 3})
    assert [r.name for r in store.list_runs()] == ["kept"]
    assert store.run_size("kept").rows == size.rows  # the other run is whole
    again = other.create_run("r", config={}, device="cpu")  # the name is free again
    other.add_metrics("r", {"iteration": 1, "env_steps": 1})
    for reader in (store, other):  # the new run, however each store object looked it up
        assert reader.get_run("r") == again
        assert reader.metrics("r") == [{"iteration": 1, "env_steps": 1}]
        assert reader.games("r") == [] and reader.events("r") == []
    assert not (store.root / "r").exists()  # no old files in its folder
    assert store.run_dir("r") == store.root / "r"


def test_a_delete_is_refused_while_the_run_is_live(store):
    filled_run(store, "r")
    claim = store.claim("r")
    with pytest.raises(RunBusy, match=rf"cannot delete run 'r' while pid {os.getpid()} on "):
        RunStore(store.root).delete_run("r")
    assert store.run_size("r").checkpoint_files == 2
    claim.release()
    store.delete_run("r")
    with pytest.raises(RunNotFound):
        store.delete_run("r")
    with pytest.raises(RunNotFound):  # a late writer's last word: no reserve spent on it
        store.set_status("r", "failed", "boom")
    assert (store.root / RESERVE_NAME).exists()


def test_a_run_written_on_another_host_is_neither_renamed_nor_deleted(store):
    store.create_run("r", config={}, device="cpu")
    with store._write() as db:  # a writer elsewhere, heard from just now
        db.execute(
            "UPDATE runs SET status = 'running', writer_pid = 1, writer_host = 'elsewhere',"
            " writer_since = 0, writer_token = 't', updated_at = ?",
            (time.time(),),
        )
    for act in (lambda: store.rename_run("r", "s"), lambda: store.delete_run("r")):
        with pytest.raises(RunBusy, match=r"while pid 1 on elsewhere .* \(heard from 0 s ago\)"):
            act()
    assert store.get_run("r").status == "running" and (store.root / "r").is_dir()


def test_a_store_of_schema_2_is_migrated_and_its_runs_get_tags_and_notes(tmp_path):
    root = tmp_path / "v2"
    root.mkdir()
    with sqlite3.connect(root / "runs.sqlite") as db:  # as g2048lab wrote it before tags
        for script in schema.MIGRATIONS[:2]:
            for statement in script.split(";"):
                db.execute(statement)
        db.execute(
            "INSERT INTO runs (name, status, config, device, created_at, updated_at)"
            " VALUES ('old', 'finished', '{}', 'cpu', 1.0, 1.0)"
        )
        db.execute("PRAGMA user_version = 2")
    store = RunStore(root)
    with sqlite3.connect(root / "runs.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 4
    run = store.get_run("old")
    assert (run.status, run.tags, run.note, run.learner) == ("finished", (), "", "ppo")
    store.set_tags("old", ["migrated"])
    store.rename_run("old", "older")
    assert RunStore(root).get_run("older").tags == ("migrated",)


CRASH = """
import os, pathlib, signal, sys
from g2048lab.store import RunStore

store, step = RunStore(sys.argv[1]), sys.argv[2]
real_rename = pathlib.Path.rename

def crash(path, target):  # kill -9 just before (rename) or just after (delete) moving a folder
    if step == "delete":
        real_rename(path, target)
    os.kill(os.getpid(), signal.SIGKILL)

pathlib.Path.rename = crash
store.rename_run("r", "s") if step == "rename" else store.delete_run("r")
"""


def crash_in(store: RunStore, step: str) -> None:
    crashed = subprocess.run([sys.executable, "-c", CRASH, str(store.root), step], cwd=REPO,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr


def test_a_rename_killed_between_the_row_and_the_folder_is_finished_on_open(store):
    filled_run(store, "r")
    crash_in(store, "rename")
    with sqlite3.connect(store.path) as db:  # what the killed process left
        assert db.execute("SELECT name, renamed_from FROM runs WHERE name = 's'").fetchall() == [
            ("s", "r")
        ]
    assert (store.root / "r" / "best.pt").exists() and not (store.root / "s").exists()
    assert store.run_dir("s") == store.root / "s"  # an open store finishes the move on use
    assert (store.root / "s" / "best.pt").exists() and not (store.root / "r").exists()
    reopened = RunStore(store.root)
    assert reopened.get_run("s").name == "s" and reopened.run_size("s").checkpoint_files == 2
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT renamed_from FROM runs").fetchall() == [(None,)]
    reopened.claim("s").release()


def test_a_rename_killed_midway_is_finished_by_the_next_store_opened(store):
    filled_run(store, "r")
    crash_in(store, "rename")
    RunStore(store.root)
    assert (store.root / "s" / "best.pt").exists() and not (store.root / "r").exists()


def test_a_folder_move_under_way_is_waited_for_not_raced(store):
    filled_run(store, "r")
    with store._write() as db:  # as a live rename_run between its row and its folder
        db.execute("UPDATE runs SET name = 's', renamed_from = 'r' WHERE name = 'r'")
    fd = claims.try_flock(store.root / "r" / claims.LOCK_NAME)  # held by that live process
    try:
        RunStore(store.root)  # opening leaves the move to its process
        with pytest.raises(StoreError, match="run 's' is being renamed from 'r': try again"):
            store.run_dir("s")
        store.create_run("r", config={}, device="cpu")  # the old name is free in the store,
        with pytest.raises(StoreError, match="being renamed"):
            store.run_dir("r")  # but not its folder until the move is done
    finally:
        os.close(fd)
    assert store.run_dir("s") == store.root / "s" and (store.root / "s" / "best.pt").exists()


def test_a_delete_killed_after_moving_the_folder_leaves_a_run_to_delete_again(store):
    filled_run(store, "r")
    crash_in(store, "delete")
    assert len(list(store.root.glob(".deleted-r-*"))) == 1 and not (store.root / "r").exists()
    reopened = RunStore(store.root)  # the trash goes on open
    assert not list(store.root.glob(".deleted-*"))
    run = reopened.get_run("r")  # the rows are all there; the files are gone
    assert run.env_steps == 128 and len(reopened.metrics("r")) == 2
    assert reopened.run_size("r").checkpoint_files == 0
    size = reopened.delete_run("r")
    assert (size.checkpoint_files, size.metric_rows) == (0, 2)
    with pytest.raises(RunNotFound):
        reopened.get_run("r")
    reopened.create_run("r", config={}, device="cpu")


def test_trash_that_a_live_delete_holds_is_left_to_it(store):
    trash = store.root / ".deleted-r-0123abcd"
    trash.mkdir()
    (trash / "ckpt-0000001.pt").write_bytes(b"x")
    fd = claims.try_flock(trash / claims.LOCK_NAME)  # the deleting process, still at work
    try:
        RunStore(store.root)
        assert trash.exists()
    finally:
        os.close(fd)
    RunStore(store.root)
    assert not trash.exists()


# --- comparing runs (compare.py) -------------------------------------------------------------


def test_flatten_config_as_its_docstring_says():
    assert flatten_config({"model": {"d_model": 64}, "seed": 0}) == {"model.d_model": 64, "seed": 0}
    nested = {"a": {"b": {"c": [1, 2]}, "empty": {}, "none": None}}
    assert flatten_config(nested) == {"a.b.c": [1, 2], "a.empty": {}, "a.none": None}


def test_config_diff_as_its_docstring_says():
    configs = {"a": {"ppo": {"lr": 1}, "t": None}, "b": {"ppo": {"lr": 2}, "seed": 0}}
    assert config_diff(configs) == {"ppo.lr": {"a": 1, "b": 2}, "seed": {"a": None, "b": 0}}
    assert config_diff({"a": {"ppo": {"lr": 1}}}) == {}
    same = {"x": [1, 2], "t": None, "m": {"k": "v"}}
    assert config_diff({"a": same, "b": dict(same), "c": dict(same)}) == {}
    assert list(config_diff({"a": {"z": 1, "y": 1}, "b": {"z": 2, "y": 2}})) == ["y", "z"]
    # None in one run, missing in the other (`runs --compare` showed "teacher - -"): the same
    assert config_diff({"a": {"teacher": None}, "b": {}, "c": {"teacher": None}}) == {}
    assert config_diff({"a": {"t": None}, "b": {"t": 0}}) == {"t": {"a": None, "b": 0}}
    assert config_diff({"a": {"x": 1}, "b": {"x": True}, "c": {"x": 1.0}}) == {
        "x": {"a": 1, "b": True, "c": 1.0}
    }


def test_final_metrics_as_its_docstring_says():
    rows = [{"env_steps": 64, "rollout/score_mean": 510.0}, {"env_steps": 128,
            "rollout/score_mean": None}]  # fmt: skip
    assert final_metrics(rows, keys=("env_steps", "rollout/score_mean", "x")) == {
        "env_steps": 128, "rollout/score_mean": 510.0, "x": None,
    }  # fmt: skip
    assert final_metrics([]) == dict.fromkeys(FINAL_METRICS)
    assert set(FINAL_METRICS) >= {"rollout/score_mean", "time/steps_per_s", "env_steps"}
