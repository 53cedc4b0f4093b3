"""Checkpoints written while training goes on: the state is copied at the end of an
iteration, a thread writes it, the run's last one is waited for, and a write that fails
fails the run in one line."""

from __future__ import annotations

import threading

import pytest
import torch

from g2048lab.checkpoint import Checkpointer, CheckpointError, CheckpointManager, snapshot
from g2048lab.learners.loading import load_checkpoint
from g2048lab.subscribers import Subscriber
from g2048lab.trainer import Trainer

from .test_checkpoint import ITERATION_STEPS, tiny


def test_a_snapshot_is_untouched_by_training_that_goes_on():
    weights = torch.zeros(3)
    payload = {"model": {"w": weights}, "games": [torch.ones(2)], "iteration": 4}
    copy = snapshot(payload)
    weights += 1  # training goes on in place
    payload["games"][0][0] = 7
    assert copy["model"]["w"].tolist() == [0, 0, 0] and copy["games"][0].tolist() == [1, 1]
    assert copy["iteration"] == 4


class SlowManager(CheckpointManager):
    """Writes only once ``release`` is set, recording which iteration training had reached."""

    def __init__(self, folder, trainer_iterations):
        super().__init__(folder, keep_last=10)
        self.release = threading.Event()
        self.iterations_while_writing: list[int] = []
        self.trainer_iterations = trainer_iterations

    def save(self, payload, score=None):
        self.release.wait(30)
        self.iterations_while_writing.append(self.trainer_iterations())
        return super().save(payload, score)


def test_training_goes_on_while_the_checkpoint_is_written(tmp_path):
    trainer = Trainer(tiny(total_env_steps=4 * ITERATION_STEPS))
    manager = SlowManager(tmp_path, lambda: trainer.iteration)
    checkpointer = trainer.subscribe(Checkpointer(manager, every_minutes=None))
    checkpointer.request()  # served at the end of iteration 1

    class Release(Subscriber):  # lets the first write finish two iterations further on
        def on_iteration(self, metrics, context):
            if context.iteration == 3:
                manager.release.set()

    trainer.subscribe(Release())
    trainer.run()
    assert trainer.state == "finished"
    # iteration 1's state was written while iterations 2 and 3 trained; the end's was waited for
    assert manager.iterations_while_writing[0] >= 3
    assert [p.name for p in manager.saved()] == ["ckpt-0000001.pt", "ckpt-0000004.pt"]
    assert load_checkpoint(tmp_path / "ckpt-0000001.pt")["iteration"] == 1
    assert checkpointer.last_path == tmp_path / "ckpt-0000004.pt"
    assert trainer.handle.checkpoints_saved == 2  # each told the run once it was written
    events = [e for u in trainer.updates.drain() for e in u.events]
    assert "checkpoint saved: " + str(tmp_path / "ckpt-0000001.pt") in events


def test_a_write_that_fails_in_the_background_fails_the_run_in_one_line(tmp_path):
    class FullDisk(CheckpointManager):
        def save(self, payload, score=None):
            raise CheckpointError("cannot write the checkpoint: No space left on device")

    trainer = Trainer(tiny(total_env_steps=4 * ITERATION_STEPS))
    checkpointer = trainer.subscribe(Checkpointer(FullDisk(tmp_path), every_minutes=None))
    checkpointer.request()
    with pytest.raises(CheckpointError, match="No space left on device"):
        trainer.run()  # a blocking run raises what failed it
    assert trainer.state == "failed"
    assert "No space left on device" in str(trainer.error)
    assert trainer.iteration < 4  # it did not train on as if the state were safe


@pytest.mark.parametrize("background", [True, False])
def test_without_memory_for_a_copy_the_write_happens_in_place(tmp_path, monkeypatch, background):
    monkeypatch.setattr("g2048lab.checkpoint.available_bytes", lambda: 1000)
    trainer = Trainer(tiny(total_env_steps=2 * ITERATION_STEPS))
    checkpointer = trainer.subscribe(
        Checkpointer(CheckpointManager(tmp_path), every_minutes=None, background=background)
    )
    checkpointer.request()
    trainer.run()
    assert checkpointer._writer is None  # no writer thread was started
    assert [p.name for p in CheckpointManager(tmp_path).saved()] == [
        "ckpt-0000001.pt",
        "ckpt-0000002.pt",
    ]
