"""PPO with the rollout on an actor thread beside the update (``--ppo.overlap``), and runs
whose games begin from other games' boards (``--start.*``): what they learn from, what the
run reports, exact resume, stops, and the command line."""

import dataclasses
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from g2048lab.checkpoint import save_checkpoint
from g2048lab.device import usable_cores
from g2048lab.engine.env import VecEnv
from g2048lab.learners.ppo.algorithm import PPOConfig
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.learners.ppo.starts import NORMAL, OWN, StartConfig, StartStates
from g2048lab.trainer import Trainer, TrainerConfig

from .factories import trained_ntuple_teacher
from .helpers import StopAfter

CLI = [sys.executable, "-m", "g2048lab"]
ITERATION_STEPS = 32 * 16


def tiny(overlap=True, start=None, game="2048-4x4", **changes) -> TrainerConfig:
    ppo = PPOConfig(num_envs=32, rollout_steps=16, minibatch_size=256, epochs=2, overlap=overlap)
    settings = PPOLearnerConfig(preset="tiny", ppo=ppo, start=start or StartConfig())
    return TrainerConfig(
        device="cpu", threads=1, learner_config=settings, seed=3, game=game, **changes
    )


def test_the_update_learns_from_the_rollout_before_and_the_actor_plays_the_next():
    trainer = Trainer(tiny(total_env_steps=3 * ITERATION_STEPS))
    learner = trainer.learner
    learned_from = []
    update = learner._update
    learner._update = lambda hooks, rollout: learned_from.append(rollout) or update(hooks, rollout)
    trainer.run()
    rows = list(trainer.metrics)
    assert trainer.iteration == 3 and trainer.env_steps == 3 * ITERATION_STEPS
    # the first iteration only plays; each later one learns from the one before
    assert rows[0]["train/loss"] is None and rows[0]["train/update_s"] is None
    assert all(np.isfinite(row["train/loss"]) for row in rows[1:])
    assert len(learned_from) == 2 and all(r.complete for r in learned_from)
    assert learner._pending.complete and learner._pending not in learned_from
    assert learned_from[1].buffer is not learned_from[0].buffer  # two buffers in turn
    # the actor plays with the last update's weights
    for a, b in zip(learner.model.parameters(), learner.actor_model.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("decoupled", [True, False])
def test_the_lagged_update_clips_around_its_own_policy_unless_told_not_to(monkeypatch, decoupled):
    """Decoupled PPO: the update's batch carries the log-probabilities of the played moves
    under the learner's weights at the update's start, which differ from the actor's (one
    update older); off, the ratio is against the actor's alone."""
    from g2048lab.learners.ppo import ppo_learner

    seen = []

    def spy(model, optimizer, batch, *args, **kwargs):
        prox = None
        if "prox_logprobs" in batch:
            with torch.no_grad():
                out = model(batch["boards"], batch["masks"])
                logp = torch.log_softmax(out.logits.float(), dim=-1)
                prox = logp.gather(1, batch["actions"][:, None]).squeeze(1)
        seen.append((batch.get("prox_logprobs"), prox, batch["logprobs"].clone()))
        return update(model, optimizer, batch, *args, **kwargs)

    update = ppo_learner.ppo_update
    monkeypatch.setattr(ppo_learner, "ppo_update", spy)
    ppo = PPOConfig(num_envs=32, rollout_steps=16, minibatch_size=256, epochs=2, overlap=True)
    ppo = dataclasses.replace(ppo, decoupled=decoupled)
    settings = PPOLearnerConfig(preset="tiny", ppo=ppo)
    config = TrainerConfig(device="cpu", threads=1, learner_config=settings, seed=3)
    trainer = Trainer(dataclasses.replace(config, total_env_steps=3 * ITERATION_STEPS))
    trainer.run()
    assert len(seen) == 2 and ("decoupled PPO" in trainer.learner.describe()) == decoupled
    if not decoupled:
        assert all(given is None for given, _, _ in seen)
        return
    for given, now, _ in seen:
        torch.testing.assert_close(given, now, rtol=1e-5, atol=1e-5)
    # the first update learns from moves of the initial weights, which it still has; the
    # second from moves of weights one update older than its own
    torch.testing.assert_close(seen[0][0], seen[0][2], rtol=1e-5, atol=1e-5)
    assert (seen[1][0] - seen[1][2]).abs().max() > 1e-3


def test_a_file_from_before_decoupled_ppo_trains_as_it_did():
    from g2048lab.learners.ppo.ppo_config import config_from_payload

    trainer = Trainer(tiny(total_env_steps=ITERATION_STEPS))
    payload = trainer.learner.state_dict()
    del payload["ppo_config"]["decoupled"]
    assert config_from_payload(payload).ppo.decoupled is False
    assert trainer.learner.settings.ppo.decoupled is True


def test_an_overlapped_run_resumes_as_the_uninterrupted_run(tmp_path):
    start = StartConfig(own_share=0.5, buffer_size=256)
    game = "2048-3x3"  # games end within a rollout, so the restart buffer fills
    straight = Trainer(tiny(start=start, game=game, total_env_steps=6 * ITERATION_STEPS)).run()
    first = Trainer(tiny(start=start, game=game, total_env_steps=6 * ITERATION_STEPS))
    first.subscribe(StopAfter(3))
    first.run()
    path = save_checkpoint(first.state_dict(), tmp_path / "half.pt")
    resumed = Trainer.from_checkpoint(path, threads=1)
    assert resumed.learner._pending is not None and len(resumed.learner.starts.buffer) > 0
    resumed.run()
    assert resumed.env_steps == straight.env_steps and resumed.episodes == straight.episodes
    for a, b in zip(straight.learner.model.parameters(), resumed.learner.model.parameters()):
        assert torch.equal(a, b)
    assert (resumed.learner.env.boards == straight.learner.env.boards).all()
    restarted = [row["start/restarted_games"] for row in list(straight.metrics)]
    assert [row["start/restarted_games"] for row in list(resumed.metrics)] == restarted[3:]
    assert sum(restarted) > 0


def test_a_stop_during_an_overlapped_update_ends_the_run_and_its_checkpoint_resumes(tmp_path):
    trainer = Trainer(tiny(total_env_steps=50 * ITERATION_STEPS))
    minibatches = 0

    def stop_soon():
        nonlocal minibatches
        minibatches += 1
        return minibatches < 40  # within the second update's epochs

    tick = trainer.tick
    trainer.tick = lambda: tick() and stop_soon()
    trainer.run()
    assert trainer.iteration < 50 and trainer.learner._pending is None
    path = save_checkpoint(trainer.state_dict(), tmp_path / "stopped.pt")
    resumed = Trainer.from_checkpoint(path, threads=1, total_env_steps=trainer.env_steps + 1024)
    resumed.run()
    assert resumed.env_steps > trainer.env_steps


def test_restarted_games_are_kept_out_of_the_runs_scores_and_replays():
    start = StartConfig(own_share=1.0, buffer_size=512)
    trainer = Trainer(
        tiny(overlap=False, start=start, game="2048-3x3", total_env_steps=8 * ITERATION_STEPS)
    )
    played = []
    hooks_played = trainer.played
    trainer.played = lambda steps, scores, tiles: (
        played.extend(scores.tolist()) or hooks_played(steps, scores, tiles)
    )
    trainer.run()
    rows = list(trainer.metrics)
    restarted = sum(row["start/restarted_games"] for row in rows)
    assert restarted > 0 and rows[-1]["start/buffer_boards"] > 0
    assert trainer.episodes == len(played)  # the run counted only normal-start games
    starts = trainer.learner.starts
    protected = starts.protected
    assert protected == 16 and (starts.codes[:protected] == NORMAL).all()
    assert (starts.codes[protected:] == OWN).any()


def test_start_states_place_boards_only_from_the_buffer_and_the_teacher():
    env = VecEnv(8, seed=0, game="2048-3x3")
    obs, _ = env.reset()
    teacher = (np.array([[[1, 2, 3], [4, 5, 6], [0, 0, 0]]], np.uint8), np.array([900]))
    starts = StartStates(
        StartConfig(teacher_share=1.0), 8, (3, 3), seed=0, protected=2, teacher_boards=teacher
    )
    rng = np.random.default_rng(0)
    ended_normal = placed = 0
    for _ in range(400):
        starts.before_step(obs["board"], env.scores)
        legal = obs["action_mask"]
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in legal])
        obs, _, terminated, _, info = env.step(actions)
        normal = starts.after_step(env, terminated, env_steps=0)
        obs = env.observation()
        ended_normal += int(normal.sum())
        placed += int((terminated[2:] & ~normal[2:]).sum())
        assert not (terminated[:2] & ~normal[:2]).any()  # protected slots begin normally
    assert ended_normal > 0 and placed > 0
    assert (starts.codes[2:] == 2).all() and (starts.codes[:2] == NORMAL).all()


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return trained_ntuple_teacher(tmp_path_factory.mktemp("teacher"), 100_000)


def g2048lab(*args):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=180)


def test_teacher_starts_and_value_from_the_command_line(teacher, tmp_path):
    from g2048lab.store import RunStore

    done = g2048lab(
        "train", "--preset", "tiny", "--device", "cpu", "--threads", 1, "--quiet",
        "--steps", 3 * 2048, "--runs-dir", tmp_path, "--run-name", "kid", "--ppo.overlap", "true",
        "--teacher", teacher, "--teacher.weight", 0, "--teacher.value-weight", 1,
        "--teacher.anneal-steps", 100_000, "--reward.log-score", "false", "--ppo.gamma", 1,
        "--start.teacher-share", 0.5, "--start.teacher-anneal-steps", 4096,
        "--start.own-share", 0.25, "--start.teacher-games", 4,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    store = RunStore(tmp_path)
    rows = store.metrics("kid")
    assert [row["start/teacher_share"] for row in rows] == pytest.approx([0.5, 0.25, 0.0])
    assert all(row["start/own_share"] == 0.25 for row in rows)
    assert np.isfinite(rows[-1]["teacher/value_loss"])
    config = store.get_run("kid").config
    assert config["start"]["teacher_share"] == 0.5 and config["ppo"]["overlap"] is True
    assert config["threads"] == 1 and config["ran"]["overlap"] is True
    assert config["ran"]["update_threads"] == min(2, usable_cores())


def test_the_run_records_the_update_threads_that_ran_not_the_ones_asked():
    """A run at all the cores' torch threads has no core left for a second update thread:
    its config says 1 ran although ``ppo.update_threads`` asked for 2."""
    cores = usable_cores()
    ppo = PPOConfig(num_envs=8, rollout_steps=4, minibatch_size=32, update_threads=2)
    settings = PPOLearnerConfig(preset="tiny", ppo=ppo)
    for threads, ran in ((cores, 1), (1, min(2, cores))):
        trainer = Trainer(TrainerConfig(device="cpu", threads=threads, learner_config=settings))
        config = trainer.learner.config_dict()
        assert config["ppo"]["update_threads"] == 2
        assert config["ran"] == {"update_threads": ran, "overlap": False}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--start.teacher-share", "0.5"], "--start.teacher-share needs a teacher"),
        (["--start.own-share", "1.5"], "--start.own-share must be in [0, 1]"),
        (["--start.own-share", "0.6", "--start.teacher-share", "0.6", "--teacher", "T"], "<= 1"),
        (["--teacher", "T", "--teacher.value-weight", "1"], "--ppo.gamma 1"),
    ],
)
def test_bad_start_and_value_flags_are_one_line(teacher, tmp_path, args, message):
    args = [str(teacher) if a == "T" else a for a in args]
    result = g2048lab("train", "--steps", 10, "--runs-dir", tmp_path, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_minibatch_on_two_threads_takes_the_one_thread_gradient():
    from g2048lab.learners.ppo.algorithm import _minibatch_step
    from g2048lab.learners.ppo.update_threads import UpdateThreads
    from g2048lab.model import GameTransformer, ModelConfig

    torch.manual_seed(0)
    config = PPOConfig(aux_loss_coef=0.0)  # the balancing loss is each share's own
    n = 96
    batch = {
        "boards": torch.randint(0, 11, (n, 4, 4), dtype=torch.uint8),
        "masks": torch.ones(n, 4, dtype=torch.bool),
        "actions": torch.randint(0, 4, (n,)),
        "logprobs": torch.full((n,), -1.4),
        "values": torch.zeros(n),
        "returns": torch.randn(n),
        "advantages": torch.randn(n),
    }
    index = torch.arange(n)
    grads, losses = [], []
    for threads in (None, 2):
        torch.manual_seed(1)  # the same weights both times
        model = GameTransformer(ModelConfig.from_preset("tiny"))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # keep the weights
        workers = UpdateThreads(model, threads) if threads else None
        values, usage = _minibatch_step(
            model, optimizer, batch, index, config, None, threads=workers
        )
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
        losses.append(values["loss"])
        assert usage.shape[0] == model.config.n_layers
        if workers:
            workers.close()
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert len(grads[0]) == len(grads[1])
    for one, two in zip(*grads):
        assert torch.allclose(one, two, rtol=1e-4, atol=1e-6)


def test_a_malformed_pending_rollout_is_named(tmp_path):
    from g2048lab.checkpoint import CheckpointError
    from g2048lab.learners.loading import load_checkpoint

    trainer = Trainer(tiny(total_env_steps=2 * ITERATION_STEPS)).run()
    state = trainer.state_dict()
    state["pending"]["boards"] = state["pending"]["boards"][:3]
    path = save_checkpoint(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="pending.boards"):
        load_checkpoint(path)


def test_a_paused_run_holds_its_actor_no_move_lands_while_paused():
    from .helpers import wait_for

    # long rollouts, short updates: the learner mostly waits for the actor
    ppo = PPOConfig(num_envs=4, rollout_steps=1000, minibatch_size=4096, epochs=1)
    config = tiny(total_env_steps=10**9)
    config = dataclasses.replace(
        config, learner_config=dataclasses.replace(config.learner_config, ppo=ppo)
    )
    trainer = Trainer(config).start()
    try:
        wait_for(lambda: trainer.iteration >= 2, 60, "two iterations")  # updates under way
        trainer.pause()
        wait_for(lambda: trainer.state == "paused", 60, "paused")
        boards, steps = trainer.learner.env.boards, trainer.env_steps
        time.sleep(0.5)
        assert (trainer.learner.env.boards == boards).all() and trainer.env_steps == steps
        trainer.resume()
        wait_for(lambda: trainer.env_steps > steps, 60, "steps after resuming")
    finally:
        trainer.stop()
        trainer.join(timeout=60)
    assert trainer.state == "stopped" and trainer.error is None
