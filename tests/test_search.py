"""Expectimax search: against a slow recursive reference, its edge cases, and in play."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from g2048lab.engine import rules as game
from g2048lab.engine.env import RewardConfig, VecEnv
from g2048lab.engine.search import (
    MAX_DEPTH,
    ValueModel,
    expectimax_actions,
    expectimax_values,
    search_policy,
    shaped_reward,
    transformer_value_model,
)
from g2048lab.evaluation import corner_policy, evaluate
from g2048lab.model import GameTransformer, ModelConfig
from tests import reference

# A board no move can change: [[1 2 1 2] [2 1 2 1] ...] in exponents.
STUCK = np.array([[1, 2, 1, 2], [2, 1, 2, 1], [1, 2, 1, 2], [2, 1, 2, 1]], dtype=np.uint8)

TABLE = np.random.default_rng(7).normal(size=(16, 32))  # a random value per (cell, exponent)


def table_values(boards: np.ndarray) -> np.ndarray:
    """(N, 4, 4) -> (N,) sum over cells of TABLE[cell, exponent]: a 1-tuple network."""
    return TABLE[np.arange(16), boards.reshape(-1, 16)].sum(axis=1)


def midgame_boards(n: int, seed: int) -> np.ndarray:
    """``n`` boards from games played by a noisy corner policy, stopped after 20-300 moves;
    two of them get a 32768 tile (exponent 15) and a 65536 (exponent 16)."""
    rng = np.random.default_rng(seed)
    env = VecEnv(n, seed=seed)
    obs, _ = env.reset()
    stops = rng.integers(20, 300, n)
    boards = np.zeros((n, 4, 4), dtype=np.uint8)
    for t in range(300):
        actions = corner_policy(obs)
        noisy = rng.random(n) < 0.3
        actions[noisy] = game.sample_legal(obs["action_mask"][noisy], rng)
        boards[stops == t] = obs["board"][stops == t]
        obs, *_ = env.step(actions)
    boards[0, 0, 0] = 16
    boards[1, 3, 3] = 15
    return boards


@pytest.fixture(scope="module")
def boards() -> np.ndarray:
    return np.concatenate([midgame_boards(20, seed=3), STUCK[None]])


# --- a slow, obviously right reference --------------------------------------------------


def reference_q(board: list[list[int]], model: ValueModel, depth: int) -> list[float]:
    """Q_depth of the four moves of one board, by explicit loops (the module docstring)."""
    qs = []
    for a in range(4):
        after, score, changed = reference.move(board, a)
        if not changed:
            qs.append(-math.inf)
            continue
        r = score
        if model.reward is not None:
            r = float(model.reward(_array(board), _array(after), np.array([score]))[0])
        qs.append(r + model.discount * reference_chance(after, model, depth))
    return qs


def reference_chance(after: list[list[int]], model: ValueModel, depth: int) -> float:
    if depth == 1 and model.of == "afterstate":
        return float(model.values(_array(after))[0])
    empty = [(i, j) for i in range(4) for j in range(4) if after[i][j] == 0]
    total = 0.0
    for i, j in empty:
        for tile, p in ((1, 0.9), (2, 0.1)):
            child = [list(row) for row in after]
            child[i][j] = tile
            if not any(reference.legal(child)):
                w = model.terminal_value
            elif depth == 1:
                w = float(model.values(_array(child))[0])
            else:
                w = max(reference_q(child, model, depth - 1))
            total += p / len(empty) * w
    return total


def _array(board: list[list[int]]) -> np.ndarray:
    return np.array([board], dtype=np.uint8)


# --- against the reference ---------------------------------------------------------------


def test_depth_1_afterstate_is_greedy_over_reward_plus_value(boards):
    q_direct = np.full((len(boards), 4), -np.inf)
    for a in range(4):
        after, rewards, moved = game.slide(boards, a)
        q_direct[moved, a] = rewards[moved] + table_values(after[moved])
    model = ValueModel(table_values, "afterstate")
    np.testing.assert_allclose(expectimax_values(boards, model, 1), q_direct, rtol=1e-12)
    expected = np.where(np.isneginf(q_direct).all(axis=1), -1, q_direct.argmax(axis=1))
    np.testing.assert_array_equal(expectimax_actions(boards, model, 1), expected)


@pytest.mark.parametrize(
    "model",
    [
        ValueModel(table_values, "afterstate", discount=0.9),
        ValueModel(table_values, "state", discount=0.95, terminal_value=-3.0),
        ValueModel(
            table_values,
            "state",
            discount=0.99,
            reward=shaped_reward(RewardConfig(survival_bonus=0.5, merge_bonus=0.25)),
        ),
    ],
    ids=["afterstate", "state", "state-shaped"],
)
@pytest.mark.parametrize("depth", [1, 2])
def test_matches_reference_expectimax(boards, model, depth):
    expected = np.array([reference_q(b.tolist(), model, depth) for b in boards])
    # boards[0] holds exponent 16 (beyond a 4-bit cell): searched alone and with the rest
    q = np.concatenate([expectimax_values(part, model, depth) for part in (boards[:1], boards[1:])])
    np.testing.assert_array_equal(np.isneginf(q), np.isneginf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(q[finite], expected[finite], rtol=1e-9, atol=1e-9)


def test_depth_3_matches_reference(boards):
    few_empty = boards[(boards == 0).sum(axis=(1, 2)) <= 3][:4]
    model = ValueModel(table_values, "afterstate", discount=0.9)
    expected = np.array([reference_q(b.tolist(), model, 3) for b in few_empty])
    q = expectimax_values(few_empty, model, 3)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isfinite(q), finite)
    np.testing.assert_allclose(q[finite], expected[finite], rtol=1e-9, atol=1e-9)


def test_fused_last_ply_is_the_same_search(boards):
    # move_values (Q_1 in one call, as a compiled learner gives it) changes the work, not Q.
    def move_values(b: np.ndarray) -> np.ndarray:
        q = np.full((len(b), 4), -np.inf)
        for a in range(4):
            after, rewards, moved = game.slide(b, a)
            q[moved, a] = rewards[moved] + 0.9 * table_values(after[moved])
        return q

    plain = ValueModel(table_values, "afterstate", discount=0.9)
    fused = ValueModel(table_values, "afterstate", discount=0.9, move_values=move_values)
    for depth in (1, 2):
        q = expectimax_values(boards[1:], plain, depth)
        np.testing.assert_allclose(expectimax_values(boards[1:], fused, depth), q, rtol=1e-12)


def test_slicing_and_duplicates_change_nothing(boards):
    # The same boards twice and in another order share transpositions across the batch;
    # a tiny max_boards cuts every level into many slices.
    model = ValueModel(table_values, "state", discount=0.9)
    q = expectimax_values(boards, model, 2)
    doubled = np.concatenate([boards, boards[::-1]])
    np.testing.assert_allclose(expectimax_values(doubled, model, 2), np.concatenate([q, q[::-1]]))
    np.testing.assert_allclose(expectimax_values(boards, model, 2, max_boards=30), q)


# --- edge cases --------------------------------------------------------------------------


def test_spawn_probabilities_sum_to_one(boards):
    # A constant value: C is the constant whenever no spawn ends the game.
    model = ValueModel(lambda b: np.full(len(b), 5.0), "state", discount=0.5)
    early = game.new_boards(16, np.random.default_rng(0))
    q = expectimax_values(early, model, 1)
    for a in range(4):
        after, rewards, moved = game.slide(early, a)
        np.testing.assert_allclose(q[moved, a], rewards[moved] + 0.5 * 5.0)


def test_illegal_moves_are_minus_inf_and_never_chosen(boards):
    model = ValueModel(table_values, "state")
    for depth in (1, 2):
        q = expectimax_values(boards, model, depth)
        legal = game.legal_mask(boards)
        np.testing.assert_array_equal(np.isfinite(q), legal)
        actions = expectimax_actions(boards, model, depth)
        playable = legal.any(axis=1)
        assert legal[playable, actions[playable]].all()


def test_board_with_no_legal_move_gets_minus_one():
    model = ValueModel(table_values, "afterstate")
    np.testing.assert_array_equal(expectimax_actions(STUCK[None], model, 2), [-1])
    assert np.isneginf(expectimax_values(STUCK[None], model, 1)).all()
    assert expectimax_actions(np.zeros((0, 4, 4), np.uint8), model, 2).shape == (0,)


def test_bad_arguments_say_what_is_wrong():
    model = ValueModel(table_values, "state")
    with pytest.raises(ValueError, match="depth must be an int >= 1"):
        expectimax_values(STUCK[None], model, 0)
    with pytest.raises(ValueError, match=r"\(N, 4, 4\) uint8"):
        expectimax_values(STUCK, model, 1)
    with pytest.raises(ValueError, match="'afterstate' or 'state'"):
        ValueModel(table_values, "after")  # type: ignore[arg-type]
    broken = ValueModel(lambda b: np.zeros((len(b), 1)), "afterstate")
    with pytest.raises(ValueError, match=r"values must return shape \(\d+,\)"):
        expectimax_values(game.new_boards(1, np.random.default_rng(0)), broken, 1)
    broken = ValueModel(table_values, "afterstate", move_values=lambda b: np.zeros(len(b)))
    with pytest.raises(ValueError, match=r"move_values must return shape \(\d+, 4\)"):
        expectimax_values(game.new_boards(1, np.random.default_rng(0)), broken, 2)


def test_shaped_reward_is_the_env_reward():
    # Every field but game_over_penalty, which the env adds on the move that ends the game.
    for log_score in (True, False):
        config = RewardConfig(
            score_weight=0.3, log_score=log_score, survival_bonus=0.1, merge_bonus=0.7
        )
        reward = shaped_reward(config)
        env = VecEnv(64, seed=1, reward=config)
        obs, _ = env.reset()
        rng = np.random.default_rng(1)
        for _ in range(200):
            actions = game.sample_legal(obs["action_mask"], rng)
            after, scores, _ = game.slide(obs["board"], actions)
            expected = reward(obs["board"], after, scores)
            obs, rewards, *_ = env.step(actions)
            np.testing.assert_allclose(rewards, expected, rtol=1e-6, atol=1e-5)


# --- in play -----------------------------------------------------------------------------

SNAKE = 4.0 ** -np.array([[0, 1, 2, 3], [7, 6, 5, 4], [8, 9, 10, 11], [15, 14, 13, 12]])


def snake_values(boards: np.ndarray) -> np.ndarray:
    """Tiles weighted along a snake from the top-left corner: big tiles ordered in a corner."""
    return (np.where(boards > 0, 2.0**boards, 0.0) * SNAKE).sum(axis=(1, 2))


def test_depth_2_plays_better_than_depth_1():
    # Deterministic (same seed, deterministic policy); depth 2 scored 7-13x depth 1 on
    # seeds 0-4, so a 3x margin is not near the edge.
    model = ValueModel(snake_values, "afterstate", reward=lambda b, a, s: np.zeros(len(s)))
    greedy = evaluate(search_policy(model, 1), games=20, seed=0)
    searched = evaluate(search_policy(model, 2), games=20, seed=0)
    assert searched.scores.mean() > 3 * greedy.scores.mean()


# --- the transformer's value head --------------------------------------------------------


@pytest.fixture(scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_transformer_value_model(boards, one_torch_thread):
    torch.manual_seed(0)
    net = GameTransformer(ModelConfig.from_preset("tiny")).eval()
    config = RewardConfig(game_over_penalty=1.0)
    model = transformer_value_model(
        net, gamma=0.9, return_mean=2.0, return_std=3.0, reward=config, batch_size=7
    )
    assert (model.of, model.discount, model.terminal_value) == ("state", 0.9, -1.0 / 0.9)
    playable = boards[game.legal_mask(boards).any(axis=1)]
    values = model.values(playable)
    with torch.inference_mode():
        direct = net(torch.from_numpy(playable), torch.from_numpy(game.legal_mask(playable)))
    assert values.shape == (len(playable),) and np.isfinite(values).all()
    np.testing.assert_allclose(values, direct.value.numpy() * 3.0 + 2.0, rtol=1e-5, atol=1e-5)
    q = expectimax_values(playable[:4], model, 2)
    np.testing.assert_array_equal(np.isfinite(q), game.legal_mask(playable[:4]))
    evaluate(search_policy(model, 1), games=2, seed=0)


def test_whole_games_are_played_at_most_max_depth_deep():
    """Each ply multiplies the work ~30-fold: a game at depth 4 takes hours, so the policy
    that plays whole games refuses it; a single search call may go deeper."""
    model = ValueModel(values=table_values, of="afterstate")
    search_policy(model, MAX_DEPTH)
    for depth in (MAX_DEPTH + 1, 99, 0, 2.0):
        with pytest.raises(ValueError, match="search depth"):
            search_policy(model, depth)
    assert expectimax_values(STUCK[None], model, MAX_DEPTH + 1).shape == (1, 4)
