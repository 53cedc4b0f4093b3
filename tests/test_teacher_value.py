"""Value from the teacher (kickstart.py): the units check, the weight's schedule, an n-tuple
teacher's board values, the added loss by hand, and a value head the update pulls toward
the teacher's values."""

import math

import numpy as np
import pytest
import torch

from g2048lab.engine.env import RewardConfig
from g2048lab.engine.rules import legal_mask, slide
from g2048lab.learners import loading
from g2048lab.learners.base import Agent
from g2048lab.learners.ntuple.network import NTupleConfig, NTupleNetwork
from g2048lab.learners.ntuple.ntuple_learner import NTupleAgent
from g2048lab.learners.ppo.algorithm import PPOConfig, ppo_loss, ppo_update
from g2048lab.learners.ppo.kickstart import (
    TeacherConfig,
    check_teacher_value_units,
    load_teacher,
    run_teacher,
    teacher_value_targets,
    teacher_value_weight,
)
from g2048lab.model import GameTransformer, ModelConfig

LINEAR = RewardConfig(score_weight=0.01, log_score=False)  # return = 0.01 * raw score
TEACHER = TeacherConfig(source="teacher.pt", value_weight=0.5)


def test_the_units_check_accepts_the_raw_undiscounted_score():
    check_teacher_value_units(TEACHER, LINEAR, gamma=1.0)
    # nothing is asked of the value head without the option or without a teacher
    check_teacher_value_units(TeacherConfig(source="t.pt"), RewardConfig(), gamma=0.99)
    check_teacher_value_units(None, RewardConfig(), gamma=0.99)


@pytest.mark.parametrize(
    "reward, gamma, fix",
    [
        (RewardConfig(log_score=True), 1.0, "--reward.log-score false"),
        (RewardConfig(log_score=False, survival_bonus=0.1), 1.0, "--reward.survival-bonus 0"),
        (RewardConfig(log_score=False, merge_bonus=0.1), 1.0, "--reward.merge-bonus 0"),
        (RewardConfig(log_score=False, game_over_penalty=1.0), 1.0, "--reward.game-over-penalty 0"),
        (LINEAR, 0.99, "--ppo.gamma 1 (now 0.99)"),
    ],
)
def test_the_units_check_refuses_each_mismatch_in_one_line(reward, gamma, fix):
    with pytest.raises(ValueError, match="--teacher.value-weight 0") as caught:
        check_teacher_value_units(TEACHER, reward, gamma)
    message = str(caught.value)
    assert fix in message and "\n" not in message


def test_the_units_check_refuses_a_value_weight_without_a_teacher():
    with pytest.raises(ValueError, match="needs a teacher: add --teacher"):
        check_teacher_value_units(TeacherConfig(value_weight=1.0), LINEAR, gamma=1.0)


def test_the_value_weight_anneals_with_the_policy_weight_and_is_checked():
    config = TeacherConfig(source="x", weight=1.0, value_weight=2.0, anneal_steps=1000)
    assert [teacher_value_weight(config, s) for s in (0, 250, 1000, 5000)] == [2.0, 1.5, 0, 0]
    # a checkpoint's teacher from before the option reads as off
    old = TeacherConfig(**{"source": "x", "weight": 0.2, "anneal_steps": 10, "temperature": None})
    assert old.value_weight == 0.0 and teacher_value_weight(old, 0) == 0.0
    for bad in (-1.0, math.nan, math.inf, True, "1"):
        with pytest.raises(ValueError, match="value-weight must be at least 0 and finite"):
            TeacherConfig(source="x", value_weight=bad)


def test_targets_are_the_teachers_return_in_normalised_units():
    points = torch.tensor([0.0, 1000.0, 20_000.0])
    targets = teacher_value_targets(points, LINEAR, return_mean=50.0, return_std=25.0)
    torch.testing.assert_close(targets, torch.tensor([-2.0, -1.6, 6.0]))


@pytest.fixture(scope="module")
def ntuple_agent() -> NTupleAgent:
    """A small "5x4" network with random weights, so that every lookup matters."""
    network = NTupleNetwork(NTupleConfig(tuples="5x4", seed=0, threads=1))
    network.weights[:] = np.random.default_rng(0).normal(0, 100, network.weights.shape)
    return NTupleAgent(network)


def test_an_ntuple_board_value_is_its_best_legal_move_and_0_for_a_dead_board(ntuple_agent):
    rng = np.random.default_rng(1)
    boards = rng.integers(0, 9, (64, 4, 4)).astype(np.uint8)
    boards[0] = np.array([[1, 2, 1, 2], [2, 1, 2, 1]] * 2, dtype=np.uint8)  # no move
    masks = legal_mask(boards)
    assert not masks[0].any() and masks[1:].any(axis=1).all()
    # reference: each legal move's score + the network's value of its afterstate
    afterstate_values = ntuple_agent.value_model().values
    q = np.full((64, 4), -np.inf)
    for action in range(4):
        after, score, _ = slide(boards, np.full(64, action))
        q[:, action] = np.where(masks[:, action], score + afterstate_values(after), -np.inf)
    values = ntuple_agent.board_values(boards, masks)
    assert values.shape == (64,) and values.dtype == np.float32
    assert values[0] == 0.0
    np.testing.assert_allclose(values[1:], q[1:].max(axis=1), rtol=1e-5, atol=1e-2)
    # the best move by value is the one the teacher's softmax ranks first
    probs = ntuple_agent.move_probs(boards, masks)
    assert (probs[1:].argmax(axis=1) == q[1:].argmax(axis=1)).mean() > 0.95


def test_a_teacher_that_cannot_value_boards_is_refused_when_it_must(monkeypatch):
    class RankerOnly(Agent):
        def policy(self, greedy=True, seed=0):
            raise AssertionError("not played")

        def move_probs(self, boards, masks, temperature=None):
            return masks / masks.sum(-1, keepdims=True)

    class Loaded:
        agent = RankerOnly()

    monkeypatch.setattr(loading, "load_agent", lambda source, device: Loaded())
    cpu = torch.device("cpu")
    assert isinstance(load_teacher("t.pt", cpu), RankerOnly)  # the policy alone: fine
    with pytest.raises(ValueError, match="cannot value boards") as caught:
        load_teacher("t.pt", cpu, values=True)
    assert "\n" not in str(caught.value) and "--teacher.value-weight 0" in str(caught.value)
    # a run teaching only the value still loads its teacher, and checks it can value
    with pytest.raises(ValueError, match="cannot value boards"):
        run_teacher(TeacherConfig(source="t.pt", weight=0.0, value_weight=1.0), cpu)
    assert run_teacher(TeacherConfig(source="t.pt", weight=0.0, anneal_steps=10), cpu) is None
    annealed = TeacherConfig(source="t.pt", value_weight=1.0, anneal_steps=10)
    assert run_teacher(annealed, cpu, env_steps=10) is None


def test_an_ntuple_teacher_may_teach_the_value(monkeypatch, ntuple_agent):
    class Loaded:
        agent = ntuple_agent

    monkeypatch.setattr(loading, "load_agent", lambda source, device: Loaded())
    config = TeacherConfig(source="t.pt", weight=0.0, value_weight=1.0)
    assert run_teacher(config, torch.device("cpu")) is ntuple_agent


def loss_inputs(m: int, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(m, 4, generator=gen)
    logits[0, 2] = float("-inf")  # an illegal move
    return {
        "logits": logits.requires_grad_(True),
        "values": torch.randn(m, generator=gen).requires_grad_(True),
        "aux_loss": torch.tensor(0.1),
        "actions": torch.tensor([0, 1, 2, 3, 1, 0])[:m],
        "old_logprobs": torch.full((m,), math.log(0.25)),
        "old_values": torch.randn(m, generator=gen),
        "advantages": torch.randn(m, generator=gen),
        "returns": torch.randn(m, generator=gen),
        "config": PPOConfig(),
    }


def test_the_value_loss_from_the_teacher_is_the_weighted_squared_error_on_the_value_only():
    inputs = loss_inputs(6, seed=0)
    teacher_values = torch.tensor([1.0, -2.0, 0.5, 3.0, 0.0, -1.0])
    plain = ppo_loss(**inputs)
    taught = ppo_loss(**inputs, teacher_values=teacher_values, value_distill_coef=0.3)
    assert plain.value_distill is None
    by_hand = (
        0.5
        * sum((v - t) ** 2 for v, t in zip(inputs["values"].tolist(), teacher_values.tolist()))
        / 6
    )
    assert taught.value_distill.item() == pytest.approx(by_hand, rel=1e-5)
    assert (taught.total - plain.total).item() == pytest.approx(0.3 * by_hand, rel=1e-4)
    for name in ("policy", "value", "entropy", "approx_kl", "clip_fraction"):
        assert getattr(taught, name).item() == getattr(plain, name).item()
    (taught.total - plain.total).backward()
    assert (inputs["logits"].grad == 0).all()  # the policy learns nothing from it
    expected = 0.3 * (inputs["values"].detach() - teacher_values) / 6
    torch.testing.assert_close(inputs["values"].grad, expected)


def test_the_update_pulls_the_value_head_to_the_teachers_values():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    n = 256
    boards = torch.randint(0, 6, (n, 4, 4), dtype=torch.uint8, generator=gen)
    targets = boards[:, 0, 0].float() - 2.5  # a value the board names
    model = GameTransformer(
        ModelConfig(d_model=32, n_heads=2, n_layers=1, n_experts=4, top_k=2, d_expert=64)
    )
    masks = torch.ones(n, 4, dtype=torch.bool)
    with torch.no_grad():
        first = model(boards, masks).value
    batch = {
        "boards": boards,
        "masks": masks,
        "actions": torch.randint(0, 4, (n,), generator=gen),
        "logprobs": torch.full((n,), math.log(0.25)),
        "values": first,
        "returns": first.clone(),  # PPO's own value loss would keep the value where it is
        "advantages": torch.zeros(n),
        "teacher_values": targets,
    }
    config = PPOConfig(epochs=2, target_kl=None, entropy_coef=0.0, value_coef=0.5)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    stats = [ppo_update(model, optimizer, batch, config, 64, value_distill_coef=1.0)]
    for _ in range(9):
        stats.append(ppo_update(model, optimizer, batch, config, 64, value_distill_coef=1.0))
    with torch.no_grad():
        last = model(boards, masks).value
    before = (first - targets).pow(2).mean().item()
    after = (last - targets).pow(2).mean().item()
    assert after < 0.5 * before, (before, after)
    assert stats[-1].value_distill_loss < 0.5 * stats[0].value_distill_loss
    del batch["teacher_values"]
    assert ppo_update(model, optimizer, batch, config, 64).value_distill_loss is None
