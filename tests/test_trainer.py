"""The trainer: thread control, cadence, failures, budgets, and what it emits."""

import json
import time

import numpy as np
import pytest
import torch

from g2048lab import trainer as trainer_module
from g2048lab.learners.ppo.algorithm import PPOConfig
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.messages import TrainingUpdate
from g2048lab.trainer import Subscriber, Trainer, TrainerConfig

from .helpers import StopAfter, wait_for

# these tests follow one iteration's rollout and update: the rollout before the update, one
# thread (test_actor_learner.py has the actor thread and the update's threads)
SERIAL = {"overlap": False, "update_threads": 1}


def tiny(ppo: PPOConfig | None = None, **changes) -> TrainerConfig:
    ppo = ppo or PPOConfig(num_envs=32, rollout_steps=16, minibatch_size=256, epochs=1, **SERIAL)
    settings = PPOLearnerConfig(preset="tiny", ppo=ppo)
    return TrainerConfig(
        device="cpu", threads=1, learner_config=settings, record_slots=4, **changes
    )


def test_a_run_ends_at_its_step_budget_with_metrics_and_games():
    trainer = Trainer(tiny(total_env_steps=32 * 16 * 3)).run()
    assert trainer.state == "finished" and trainer.iteration == 3
    assert trainer.env_steps == 32 * 16 * 3
    assert [row["iteration"] for row in trainer.metrics] == [1, 2, 3]  # updates done
    assert np.isfinite(trainer.metrics[-1]["train/loss"])
    assert trainer.updates.latest().status == "finished"


def test_pause_stops_env_steps_resume_continues_stop_ends_cleanly():
    trainer = Trainer(tiny()).start()
    wait_for(lambda: trainer.env_steps > 0)
    trainer.pause()
    assert trainer.state in ("pausing", "paused")  # "paused" only once the loop has stopped
    wait_for(lambda: trainer.state == "paused")
    steps = trainer.env_steps  # no step in flight any more: none may land after this
    time.sleep(1.0)
    assert trainer.env_steps == steps
    trainer.resume()
    wait_for(lambda: trainer.env_steps > steps)
    trainer.stop()
    trainer.join(timeout=30)
    assert trainer.state == "stopped" and trainer.error is None  # stopped with budget left


class PauseOnce(Subscriber):
    """Asks for a pause from inside the loop (the end of the first iteration), noting the
    state and env steps right then."""

    def __init__(self):
        self.seen = None

    def on_iteration(self, metrics, context):
        if self.seen is None:
            context.run.request("pause")
            self.seen = (context.run.status, context.env_steps)


def test_paused_is_reported_only_once_the_loop_has_stopped():
    trainer = Trainer(tiny())
    pauser = trainer.subscribe(PauseOnce())
    trainer.start()
    try:
        wait_for(lambda: trainer.state == "paused", 60, "paused")
        state, steps = pauser.seen
        assert state == "pausing"  # asked in the middle of the loop: not paused yet
        assert trainer.env_steps == steps  # and no step was taken between
    finally:
        trainer.stop()
        trainer.join(timeout=60)


def test_stop_while_paused_ends_the_run():
    trainer = Trainer(tiny()).start()
    wait_for(lambda: trainer.env_steps > 0)
    trainer.pause()
    wait_for(lambda: trainer.state == "paused")
    trainer.stop()
    trainer.join(timeout=30)
    assert trainer.state == "stopped"


def test_a_run_whose_budget_is_spent_finishes_even_if_stop_was_asked():
    trainer = Trainer(tiny(total_env_steps=32 * 16)).run()
    assert trainer.state == "finished"
    trainer.stop()  # after the end: changes nothing
    assert trainer.state == "finished"


class Explode(Subscriber):
    def on_iteration(self, metrics, context):
        raise ValueError("boom in a subscriber")


def test_an_exception_in_the_thread_surfaces_through_join():
    trainer = Trainer(tiny())
    trainer.subscribe(Explode())
    trainer.start()
    with pytest.raises(ValueError, match="boom in a subscriber"):
        trainer.join(timeout=60)
    assert trainer.state == "failed"
    assert "boom in a subscriber" in trainer.error_traceback
    assert trainer.updates.latest().status == "failed"


def test_a_subscriber_can_stop_training():
    trainer = Trainer(tiny())
    trainer.subscribe(StopAfter(2))
    trainer.run()
    assert trainer.state == "stopped" and trainer.iteration == 2  # no budget: it had more


class FakeClock:
    """The trainer's ``time`` module in a test: its clock moves only when the test moves it.

    ``perf_counter`` (what the rate limit reads) returns ``now``; anything else, such as the
    message's ``time.time()`` timestamp, is the real ``time`` module's.
    """

    def __init__(self, now: float = 1000.0):
        self.now = now

    def perf_counter(self) -> float:
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


class Clocked(Subscriber):
    """Records each message with the trainer's clock when it was sent."""

    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.sent: list[tuple[float, TrainingUpdate]] = []

    def on_update(self, update, context):
        self.sent.append((self.clock.now, update))


def test_updates_arrive_during_a_long_rollout_and_are_rate_limited(monkeypatch):
    # Every move of the 32 games takes 0.125 s on the trainer's clock, however fast or loaded
    # the machine really is: the rollout of 40 moves lasts 5 s, and with a message due every
    # 0.5 s one goes out every 4th move (0.125 and 0.5 are exact in binary).
    clock = FakeClock()
    monkeypatch.setattr(trainer_module, "time", clock)
    ppo = PPOConfig(num_envs=32, rollout_steps=40, minibatch_size=256, epochs=1, **SERIAL)
    trainer = Trainer(tiny(ppo=ppo, update_interval_s=0.5, total_env_steps=32 * 40))
    step = trainer.learner.env.step

    def one_move(actions):
        clock.now += 0.125
        return step(actions)

    monkeypatch.setattr(trainer.learner.env, "step", one_move)
    clocked = trainer.subscribe(Clocked(clock))
    trainer.run()
    during = [(t, u) for t, u in clocked.sent if u.iteration == 0 and u.status == "running"]
    assert len(during) >= 40 * 0.125 / 0.5  # messages while the first rollout runs
    assert len({json.dumps(u.board_state) for _, u in during}) >= 3  # the shown game moves
    gaps = np.diff([t for t, _ in during])
    # never sooner than the interval, and no later than the first move after it is due
    assert gaps.min() >= 0.5 and gaps.max() <= 0.5 + 0.125


def test_the_message_carries_the_live_game_and_model_insight():
    trainer = Trainer(tiny(total_env_steps=32 * 16))
    trainer.run()
    update = trainer.snapshot()
    again = TrainingUpdate.from_json(update.to_json())
    assert again == update
    assert len(update.actions) == 4 and abs(sum(update.actions) - 1) < 1e-4
    assert np.array(update.board_state).shape == (4, 4)
    heads = trainer.learner.model_config.n_heads
    assert np.array(update.attention_weights).shape == (heads, 16, 16)
    assert np.allclose(np.array(update.attention_weights).sum(-1), 1, atol=1e-3)
    layers = np.array(update.attention_layers)
    assert layers.shape == (trainer.learner.model_config.n_layers, heads, 16, 16)
    assert np.allclose(layers[-1], update.attention_weights)
    usage = np.array(update.expert_usage)
    assert usage.shape == (
        trainer.learner.model_config.n_layers,
        trainer.learner.model_config.n_experts,
    )
    assert np.allclose(usage.sum(-1), 1, atol=1e-3)
    assert update.gpu_memory is None and update.model_params > 0
    assert update.loss is not None and update.process_memory > 0


class Collect(Subscriber):
    def __init__(self):
        self.updates = []

    def on_update(self, update, context):
        self.updates.append(update)


def test_whole_games_are_recorded_for_replay():
    trainer = Trainer(tiny(total_env_steps=32 * 16 * 40))
    collect = trainer.subscribe(Collect())
    trainer.run()
    finished = [game for u in collect.updates for game in u.finished_games]
    assert len(finished) == trainer.episodes > 0  # every finished game reaches a message
    assert max(score for score, _ in finished) == trainer.best_score
    assert max(tile for _, tile in finished) == trainer.max_tile
    games = list(trainer.recorder.recent) + trainer.recorder.best
    assert games, "random-ish play ends games within 640 moves"
    best = trainer.recorder.best
    assert [g.score for g in best] == sorted((g.score for g in best), reverse=True)
    for game in games:
        assert len(game.boards) == game.length + 1
        assert game.score == int(game.score_gains.sum())
        assert game.max_tile == 2 ** int(game.boards.max())
        assert np.allclose(game.probs.sum(-1), 1, atol=1e-4)
        # the actions taken were legal: each move changes the board
        from g2048lab.engine.rules import slide

        after, _, moved = slide(game.boards[:-1], game.actions)
        assert moved.all()


def test_injected_out_of_memory_halves_the_minibatch_and_says_so():
    trainer = Trainer(tiny(total_env_steps=32 * 16 * 2))

    def fail_big(module, args):
        if module.training and args[0].shape[0] > 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    trainer.learner.model.register_forward_pre_hook(fail_big)
    trainer.run()
    events = [e for u in trainer.updates.drain() for e in u.events]
    assert "out of memory with minibatch 256: halved to 128" in events
    assert trainer.learner.minibatch_size == 64
    assert trainer.metrics[-1]["train/minibatch_size"] == 64


def test_an_injected_nan_is_skipped_and_the_weights_stay_finite():
    trainer = Trainer(tiny(total_env_steps=32 * 16 * 2))
    calls = {"n": 0}

    def poison_first_training_pass(module, args, output):
        if module.training and calls["n"] == 0:
            calls["n"] += 1
            output.logits = output.logits * float("nan")
        return output

    trainer.learner.model.register_forward_hook(poison_first_training_pass)
    trainer.run()
    assert trainer.metrics[0]["train/skipped_minibatches"] == 1
    assert all(torch.isfinite(p).all() for p in trainer.learner.model.parameters())
    events = [e for u in trainer.updates.drain() for e in u.events]
    assert any("non-finite" in e for e in events)


def test_a_trainer_runs_once():
    trainer = Trainer(tiny(total_env_steps=32 * 16)).run()
    with pytest.raises(RuntimeError, match="already run"):
        trainer.run()
