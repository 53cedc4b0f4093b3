"""Kickstarting: the distillation loss, the weight schedule, teachers of both learners, a
student that learns its teacher's moves, and the run, checkpoint and command around it."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from g2048lab import learners
from g2048lab.checkpoint import CheckpointError, CheckpointManager
from g2048lab.learners.base import softmax_probs
from g2048lab.learners.loading import load_checkpoint
from g2048lab.learners.ntuple.network import NTupleConfig
from g2048lab.learners.ppo.algorithm import PPOConfig
from g2048lab.learners.ppo.kickstart import (
    TeacherConfig,
    agreement,
    distillation_loss,
    load_teacher,
    repoint_teacher,
    run_teacher,
    teacher_weight,
)
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.trainer import Trainer, TrainerConfig

from .factories import trained_ntuple_teacher
from .helpers import metric_trace

CLI = [sys.executable, "-m", "g2048lab"]
# serial: each row's teacher weight is that of the rollout just played (with the actor thread
# it is the one before: test_actor_learner.py)
SMALL_PPO = PPOConfig(num_envs=32, rollout_steps=32, minibatch_size=256, epochs=2, overlap=False)


@pytest.fixture(scope="module")
def ntuple_teacher(tmp_path_factory):
    """A small n-tuple network trained for 200k moves, saved as a run checkpoint."""
    return trained_ntuple_teacher(tmp_path_factory.mktemp("teacher"), 200_000)


def test_the_weight_falls_linearly_to_zero_and_stays_there():
    config = TeacherConfig(source="x", weight=2.0, anneal_steps=1000)
    assert [teacher_weight(config, s) for s in (0, 250, 1000, 5000)] == [2.0, 1.5, 0.0, 0.0]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"weight": -1.0}, "weight must be at least 0"),
        ({"weight": math.nan}, "weight must be at least 0 and finite, got nan"),
        ({"weight": math.inf}, "weight must be at least 0 and finite, got inf"),
        ({"anneal_steps": 0}, "anneal-steps must be at least 1"),
        ({"anneal_steps": math.inf}, "anneal-steps must be a whole number, got inf"),
        ({"anneal_steps": 1.5}, "anneal-steps must be a whole number, got 1.5"),
        ({"temperature": 0.0}, "temperature must be positive"),
        ({"temperature": math.nan}, "temperature must be positive and finite, got nan"),
        ({"temperature": math.inf}, "temperature must be positive and finite, got inf"),
    ],
)
def test_bad_teacher_settings_are_refused_in_words(fields, message):
    with pytest.raises(ValueError, match=message):
        TeacherConfig(source="x", **fields)


def test_the_distillation_loss_is_the_kl_and_its_gradient_is_finite_with_illegal_moves():
    logits = torch.tensor([[0.5, -1.0, float("-inf"), 2.0], [0.0, 0.0, 0.0, 0.0]])
    logits.requires_grad_(True)
    teacher = torch.tensor([[0.2, 0.0, 0.0, 0.8], [0.25, 0.25, 0.25, 0.25]])
    loss = distillation_loss(logits, teacher)
    student = torch.log_softmax(logits.detach(), -1)
    expected = [
        0.2 * (math.log(0.2) - student[0, 0]) + 0.8 * (math.log(0.8) - student[0, 3]),
        0.0,
    ]
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float32))
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()
    # the student that equals its teacher has nothing to learn
    same = distillation_loss(teacher.clamp_min(1e-12).log(), teacher)
    torch.testing.assert_close(same, torch.zeros(2), atol=1e-6, rtol=0)
    assert agreement(logits.detach(), teacher) == 1.0


def test_softmax_probs_cover_only_legal_moves():
    scores = np.array([[10.0, 0.0, 5.0, -np.inf], [1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
    masks = np.array([[True, True, False, False], [False, False, False, False]])
    probs = softmax_probs(scores, masks, temperature=10.0)
    np.testing.assert_allclose(probs[0, :2], [1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1))])
    assert probs[0, 2:].tolist() == [0.0, 0.0] and probs[1].tolist() == [0.0] * 4
    sharp = softmax_probs(scores, masks, temperature=0.1)
    assert sharp[0, 0] > 0.999


def test_an_ntuple_teacher_prefers_its_best_move(ntuple_teacher):
    from g2048lab.engine.env import VecEnv

    teacher = load_teacher(ntuple_teacher, torch.device("cpu"))
    obs, _ = VecEnv(64, seed=3).reset()
    probs = teacher.move_probs(obs["board"], obs["action_mask"])
    assert probs.shape == (64, 4) and np.allclose(probs.sum(-1), 1.0, atol=1e-5)
    assert (probs[~obs["action_mask"]] == 0).all()
    greedy = teacher.policy()(obs)
    assert (probs.argmax(-1) == greedy).all()


@pytest.fixture(scope="module")
def ppo_teacher(tmp_path_factory):
    """A tiny transformer whose policy head is scaled up 300x: a sharp policy of the
    student's own architecture, so the student can match it exactly."""
    trainer = Trainer(
        TrainerConfig(
            device="cpu",
            seed=7,
            learner_config=PPOLearnerConfig(preset="tiny", ppo=SMALL_PPO),
            total_env_steps=1024,
        )
    )
    trainer.run()
    with torch.no_grad():
        trainer.learner.model.policy_head.weight.mul_(300)
    return CheckpointManager(tmp_path_factory.mktemp("ppo_teacher")).save(trainer.state_dict())


def test_a_kickstarted_student_learns_its_teachers_moves(ppo_teacher):
    teacher = TeacherConfig(source=str(ppo_teacher), weight=1.0, anneal_steps=10**9)
    trainer = Trainer(
        TrainerConfig(
            device="cpu",
            threads=1,
            learner_config=PPOLearnerConfig(preset="tiny", ppo=SMALL_PPO, teacher=teacher),
            total_env_steps=10 * 1024,
        )
    )
    trainer.run()
    rows = list(trainer.metrics)
    first, last = rows[0], rows[-1]
    assert last["teacher/distill_loss"] < 0.2 * first["teacher/distill_loss"]
    assert last["teacher/agreement"] > 0.95
    assert all(r["teacher/weight"] == pytest.approx(1.0, rel=1e-3) for r in rows)
    # its greedy moves are now the teacher's on boards it has never seen
    from g2048lab.engine.env import VecEnv

    obs, _ = VecEnv(256, seed=99).reset()
    student = trainer.learner.agent().policy()(obs)
    taught = load_teacher(ppo_teacher, torch.device("cpu")).policy()(obs)
    assert (student == taught).mean() > 0.9
    from g2048lab.dashboard import Dashboard

    dashboard = Dashboard(trainer)
    for key in ("teacher/distill_loss", "teacher/agreement", "teacher/weight", "train/loss"):
        assert metric_trace(dashboard, key).x, key
    assert metric_trace(dashboard, "ntuple/td_error") is None
    dashboard.close()


def test_the_teacher_goes_quiet_after_annealing_and_the_run_resumes_with_it(
    ntuple_teacher, tmp_path
):
    teacher = TeacherConfig(source=str(ntuple_teacher), weight=1.0, anneal_steps=2048)
    settings = PPOLearnerConfig(preset="tiny", ppo=SMALL_PPO, teacher=teacher)
    config = TrainerConfig(device="cpu", learner_config=settings, total_env_steps=3 * 1024)
    trainer = Trainer(config)
    trainer.run()
    weights = [r["teacher/weight"] for r in trainer.metrics]
    assert weights == [1.0, 0.5, 0.0]
    assert trainer.metrics[-1]["teacher/distill_loss"] is None  # not asked once annealed
    path = CheckpointManager(tmp_path).save(trainer.state_dict())
    assert load_checkpoint(path)["teacher_config"]["anneal_steps"] == 2048
    resumed = Trainer.from_checkpoint(path, total_env_steps=4 * 1024)
    assert resumed.config.learner_config.teacher == teacher
    resumed.run()
    assert resumed.metrics[-1]["teacher/weight"] == 0.0


def test_an_ntuple_student_or_a_teacher_that_cannot_teach_is_refused(ntuple_teacher, tmp_path):
    teacher = TeacherConfig(source=str(ntuple_teacher))
    taught = PPOLearnerConfig(teacher=teacher)
    wrong = "the ntuple learner's settings are a NTupleConfig, got PPOLearnerConfig"
    with pytest.raises(ValueError, match=wrong):
        TrainerConfig(learner="ntuple", device="cpu", learner_config=taught)
    with pytest.raises(ValueError, match="learns alone: drop --teacher"):  # on resume
        learners.get("ntuple").config_with_teacher(NTupleConfig(), str(ntuple_teacher))
    missing = PPOLearnerConfig(preset="tiny", teacher=TeacherConfig(source="no.pt"))
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        Trainer(TrainerConfig(device="cpu", learner_config=missing))


def g2048lab(*args):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=180)


def test_train_with_teacher_from_the_command_line(ntuple_teacher, tmp_path):
    from g2048lab.store import RunStore

    runs = tmp_path / "runs"
    done = g2048lab(
        "train", "--preset", "tiny", "--device", "cpu", "--threads", 1, "--quiet",
        "--ppo.overlap", "false", "--steps", 2 * 2048, "--runs-dir", runs, "--run-name", "kid",
        "--teacher", ntuple_teacher, "--teacher.weight", 2, "--teacher.anneal-steps", 10_000,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    store = RunStore(runs)
    rows = store.metrics("kid")
    assert rows[-1]["teacher/weight"] == pytest.approx(2 * (1 - 2048 / 10_000))
    assert 0 <= rows[-1]["teacher/agreement"] <= 1
    assert store.get_run("kid").config["teacher"]["weight"] == 2.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--teacher", "nobody"], "--teacher nobody: no such checkpoint file, run folder or run"),
        (["--teacher.weight", "2"], "--teacher.* flags need --teacher RUN_OR_CHECKPOINT"),
        (["--teacher", "TEACHER", "--learner", "ntuple"], "add --learner ppo or drop them"),
        (["--teacher", "TEACHER", "--teacher.weight", "-1"], "weight must be at least 0"),
        (["--teacher", "TEACHER", "--teacher.weight", "nan"], "got nan"),
        (["--teacher", "TEACHER", "--teacher.temperature", "inf"], "got inf"),
    ],
)
def test_bad_teacher_flags_are_one_line(ntuple_teacher, tmp_path, args, message):
    args = [str(ntuple_teacher) if a == "TEACHER" else a for a in args]
    result = g2048lab("train", "--steps", 10, "--runs-dir", tmp_path, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_teacher_annealed_to_zero_is_not_needed_and_a_missing_one_before_is_one_line(
    ntuple_teacher, tmp_path
):
    """A resumed student's teacher run was renamed: the file really moves away."""
    moved = tmp_path / "moved.pt"
    moved.write_bytes(ntuple_teacher.read_bytes())
    gone = tmp_path / "teacher.pt"
    config = TeacherConfig(source=str(gone), weight=0.5, anneal_steps=1000, temperature=20.0)
    cpu = torch.device("cpu")
    assert run_teacher(config, cpu, env_steps=1000) is None  # annealed: never read
    assert run_teacher(None, cpu, env_steps=5) is None
    assert run_teacher(TeacherConfig(source=str(gone), weight=0.0), cpu, env_steps=5) is None
    with pytest.raises(ValueError) as caught:
        run_teacher(config, cpu, env_steps=999)
    message = str(caught.value)
    assert message.startswith(f"the teacher {gone} is gone") and "\n" not in message
    assert "until env step 1,000 (now 999)" in message and "--resume RUN --teacher" in message
    repointed = repoint_teacher(config, moved)
    assert repointed == TeacherConfig(str(moved), 0.5, 1000, 20.0)  # only the source changes
    teacher = run_teacher(repointed, cpu, env_steps=999)
    assert teacher is not None and teacher.describe().startswith("5x4-tuple network")
    gone.write_bytes(b"not a checkpoint")  # put back, but damaged: named as the teacher
    with pytest.raises(CheckpointError, match=f"cannot load the teacher: {gone} is not a"):
        run_teacher(config, cpu, env_steps=999)
    with pytest.raises(ValueError, match="this run has no teacher to point elsewhere"):
        repoint_teacher(None, moved)


def test_a_student_resumes_after_its_teacher_moved(ntuple_teacher, tmp_path):
    """The reported fault: the teacher's run renamed after its student stopped; `train
    --resume` said "--teacher.* flags cannot change a resumed run" to --teacher NEWPATH."""
    from g2048lab.store import RunStore

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / ntuple_teacher.name).write_bytes(ntuple_teacher.read_bytes())
    runs = tmp_path / "runs"
    common = ["--device", "cpu", "--threads", 1, "--quiet", "--runs-dir", runs]
    for name, anneal in (("kid", 100_000), ("grown", 1024)):
        done = g2048lab(
            "train", "--preset", "tiny", "--steps", 2048, "--run-name", name,
            "--teacher", teacher, "--teacher.anneal-steps", anneal, "--ppo.overlap", "false",
            *common,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    moved = teacher.rename(tmp_path / "renamed")
    # still learning from it: one line naming the path and what to do
    done = g2048lab("train", "--resume", "kid", "--steps", 4096, *common)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"g2048lab train: error: the teacher {teacher} is gone (renamed, moved or deleted?) and "
        "this run learns from it until env step 100,000 (now 2,048): put it back, or say where "
        "it is now: g2048lab train --resume RUN --teacher RUN_OR_CHECKPOINT"
    ]
    done = g2048lab("train", "--resume", "kid", "--steps", 4096, "--teacher", moved, *common)
    assert done.returncode == 0, done.stderr
    assert "taught by 5x4-tuple network" in done.stderr
    store = RunStore(runs)
    assert store.metrics("kid")[-1]["teacher/weight"] == pytest.approx(0.2 * (1 - 2048 / 100_000))
    assert store.get_run("kid").config["teacher"]["source"] == str(moved)  # runs --json too
    assert store.get_run("kid").config["total_env_steps"] == 4096  # the resumed budget
    saved = load_checkpoint(runs / "kid")
    assert saved["counters"]["env_steps"] == 4096 and saved["teacher_config"]["source"] == str(
        moved
    )
    # --teacher.* flags still cannot change a resumed run; --teacher alone only re-points
    done = g2048lab("train", "--resume", "kid", "--teacher.weight", 1, "--teacher", moved, *common)
    assert done.returncode == 2 and "--teacher.* flags cannot change a resumed run" in done.stderr
    # its weight annealed to 0 at 1,024 steps: resumes without the teacher, deleted now
    (moved / ntuple_teacher.name).unlink()
    moved.rmdir()
    done = g2048lab("train", "--resume", "grown", "--steps", 4096, *common)
    assert done.returncode == 0, done.stderr
    assert "teacher is not loaded" in done.stderr
    assert load_checkpoint(runs / "grown")["counters"]["env_steps"] == 4096
    assert load_checkpoint(runs / "grown")["teacher_config"]["anneal_steps"] == 1024  # kept


def test_a_run_without_a_teacher_cannot_be_given_one_on_resume(ntuple_teacher, tmp_path):
    runs = tmp_path / "runs"
    common = ["--device", "cpu", "--threads", 1, "--quiet", "--runs-dir", runs]
    done = g2048lab("train", "--preset", "tiny", "--steps", 1024, "--run-name", "solo", *common)
    assert done.returncode == 0, done.stderr
    done = g2048lab("train", "--resume", "solo", "--teacher", ntuple_teacher, *common)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "this run has no teacher to point elsewhere" in done.stderr
