"""Checkpoints: atomic writes, exact resume, and one clear line for every bad file."""

import os
import pickle
import signal
import subprocess
import sys

import pytest
import torch

from g2048lab.checkpoint import (
    Checkpointer,
    CheckpointError,
    CheckpointManager,
    load_checkpoint,
    save_checkpoint,
)
from g2048lab.ppo import PPOConfig
from g2048lab.trainer import Subscriber, Trainer, TrainerConfig

ITERATION_STEPS = 32 * 16


class StopAfter(Subscriber):
    def __init__(self, iterations: int):
        self.iterations = iterations

    def on_iteration(self, metrics, context):
        return context.iteration < self.iterations


def tiny(**changes) -> TrainerConfig:
    ppo = PPOConfig(num_envs=32, rollout_steps=16, minibatch_size=256, epochs=2)
    return TrainerConfig(preset="tiny", device="cpu", threads=1, ppo=ppo, seed=3, **changes)


def test_a_resumed_run_continues_as_the_uninterrupted_run(tmp_path):
    straight = Trainer(tiny(total_env_steps=4 * ITERATION_STEPS)).run()
    first = Trainer(tiny(total_env_steps=4 * ITERATION_STEPS))
    first.subscribe(StopAfter(2))  # interrupted halfway through the same budget
    first.run()
    path = save_checkpoint(first.state_dict(), tmp_path / "half.pt")
    resumed = Trainer.from_checkpoint(path, threads=1)  # toward the saved budget
    assert resumed.iteration == 2 and resumed.run_id == first.run_id
    resumed.run()
    assert resumed.iteration == 4 and resumed.env_steps == straight.env_steps
    assert resumed.episodes == straight.episodes
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values()
    ):
        assert torch.equal(a, b), name
    losses = [row["train/loss"] for row in resumed.metrics]  # the rows since the resume
    assert losses == [row["train/loss"] for row in straight.metrics][2:]  # the curves continue
    assert (resumed.env.boards == straight.env.boards).all()


def test_the_checkpoint_holds_metadata_and_loads_with_weights_only(tmp_path):
    trainer = Trainer(tiny(total_env_steps=ITERATION_STEPS)).run()
    path = save_checkpoint(trainer.state_dict(), tmp_path / "c.pt")
    payload = load_checkpoint(path)
    assert payload["format"] == "g2048lab-checkpoint"
    assert payload["model_config"]["d_model"] == trainer.model_config.d_model
    assert payload["counters"]["env_steps"] == ITERATION_STEPS
    assert payload["torch_version"] == torch.__version__ and payload["device"] == "cpu"
    assert "train/loss" in payload["metric_summary"]
    torch.load(path, weights_only=True)  # no pickled code needed


WRITER = """
import sys, time, torch
from g2048lab import checkpoint
real_save = torch.save
def slow_save(obj, file):
    file.write(b"partial bytes of a checkpoint" * 1000)
    file.flush()
    print("writing", flush=True)
    time.sleep(60)
checkpoint.torch.save = slow_save
checkpoint.save_checkpoint({"iteration": 2, "weights": torch.ones(3)}, sys.argv[1])
"""


def test_a_write_killed_midway_leaves_the_previous_checkpoint(tmp_path):
    target = tmp_path / "run" / "ckpt-0000001.pt"
    save_checkpoint({"iteration": 1, "weights": torch.zeros(3)}, target)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "writing"
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(10)
    finally:
        writer.kill()
    assert load_checkpoint(target)["iteration"] == 1
    assert torch.equal(load_checkpoint(target)["weights"], torch.zeros(3))
    manager = CheckpointManager(target.parent)
    manager.save({"iteration": 5})
    leftovers = [p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_an_interrupted_write_cleans_up_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "c.pt"
    save_checkpoint({"iteration": 1}, target)

    def interrupted(obj, file):
        file.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr("g2048lab.checkpoint.torch.save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"iteration": 2}, target)
    monkeypatch.undo()
    assert load_checkpoint(target)["iteration"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the deliberately foreign file
def test_bad_files_give_one_clear_line(tmp_path):
    good = save_checkpoint({"iteration": 1, "w": torch.ones(1000)}, tmp_path / "good.pt")
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "corrupt.pt").write_bytes(os.urandom(2000))
    torch.save({"state": torch.ones(2)}, tmp_path / "foreign.pt")
    (tmp_path / "code.pt").write_bytes(pickle.dumps(Exploit()))
    torch.save({"format": "g2048lab-checkpoint", "format_version": 99}, tmp_path / "newer.pt")
    cases = {
        "missing.pt": "no checkpoint at",
        "truncated.pt": "not a readable checkpoint",
        "corrupt.pt": "not a readable checkpoint",
        "foreign.pt": "not a g2048lab checkpoint",
        "code.pt": "not a readable checkpoint",  # weights_only refuses to run its code
        "newer.pt": "newer g2048lab",
    }
    for name, message in cases.items():
        with pytest.raises(CheckpointError, match=message) as caught:
            load_checkpoint(tmp_path / name)
        assert "\n" not in str(caught.value)
    with pytest.raises(CheckpointError, match="no checkpoint files"):
        load_checkpoint(tmp_path)


def test_an_incompatible_architecture_is_named(tmp_path):
    trainer = Trainer(tiny(total_env_steps=ITERATION_STEPS)).run()
    path = save_checkpoint(trainer.state_dict(), tmp_path / "tiny.pt")
    other = Trainer(
        TrainerConfig(
            preset="cpu", device="cpu", threads=1, ppo=PPOConfig(num_envs=32, rollout_steps=16)
        )
    )
    with pytest.raises(CheckpointError, match="does not fit this trainer"):
        other.load_state_dict(load_checkpoint(path))


def test_the_manager_keeps_the_last_k_and_the_best(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2)
    for iteration, score in [(1, 10.0), (2, 30.0), (3, 20.0), (4, 5.0)]:
        manager.save({"iteration": iteration}, score)
    assert [p.name for p in manager.saved()] == ["ckpt-0000003.pt", "ckpt-0000004.pt"]
    assert load_checkpoint(manager.best_path)["iteration"] == 2
    assert load_checkpoint(tmp_path)["iteration"] == 4  # a folder means its latest file


def test_the_checkpointer_saves_on_schedule_on_request_and_at_the_end(tmp_path):
    trainer = Trainer(tiny(total_env_steps=3 * ITERATION_STEPS))
    checkpointer = trainer.subscribe(
        Checkpointer(
            CheckpointManager(tmp_path, keep_last=10), every_episodes=None, every_minutes=None
        )
    )
    checkpointer.request()
    trainer.run()
    names = [p.name for p in CheckpointManager(tmp_path).saved()]
    assert names == ["ckpt-0000001.pt", "ckpt-0000003.pt"]  # the request, then the end
    events = [e for u in trainer.updates.drain() for e in u.events]
    assert any(e.startswith("checkpoint saved") for e in events)
    # every game: a save at each iteration in which games ended (random games last ~120 moves)
    frequent = Trainer(tiny(total_env_steps=12 * ITERATION_STEPS))
    frequent.subscribe(
        Checkpointer(
            CheckpointManager(tmp_path / "f", keep_last=100), every_episodes=1, every_minutes=None
        )
    )
    frequent.run()
    episodes = [0] + [row["episodes"] for row in frequent.metrics]
    expected = {i for i in range(1, 13) if episodes[i] > episodes[i - 1]} | {12}
    saved = {int(p.name[5:12]) for p in CheckpointManager(tmp_path / "f").saved()}
    assert saved == expected and len(saved) >= 3
