"""Search at play time with a budget per move (iterative deepening, engine/search.py) and
tile-downgrading for boards beyond the n-tuple tables (learners/ntuple/downgrade.py).
Small "5x4" networks with random weights and a few boards keep it to seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from g2048lab.checkpoint import save_checkpoint
from g2048lab.cli import main
from g2048lab.engine import rules, search
from g2048lab.engine.env import VecEnv
from g2048lab.engine.search import (
    MAX_BUDGET_DEPTH,
    SearchBudget,
    deepening_values,
    expectimax_values,
    search_policy,
)
from g2048lab.evaluation import corner_policy, evaluate
from g2048lab.learners.ntuple.downgrade import downgrade, downgraded_move_values
from g2048lab.learners.ntuple.network import TABLE_EXPONENTS, NTupleConfig, NTupleNetwork
from g2048lab.learners.ntuple.ntuple_learner import NTupleAgent
from g2048lab.trainer import Trainer, TrainerConfig

TOP = TABLE_EXPONENTS - 1  # the largest exponent the tables hold (15: 32768)


@pytest.fixture(scope="module")
def network() -> NTupleNetwork:
    """A "5x4" network with random weights: values that differ from board to board."""
    net = NTupleNetwork(NTupleConfig(tuples="5x4", seed=1))
    net.weights[:] = np.random.default_rng(0).normal(0, 50, net.weights.shape)
    return net


@pytest.fixture(scope="module")
def boards() -> np.ndarray:
    """(6, 4, 4) mid-game boards of the corner heuristic, after 120 moves."""
    env = VecEnv(6, seed=2)
    obs, _ = env.reset()
    for _ in range(120):
        obs, *_ = env.step(corner_policy(obs))
    return obs["board"]


# --- the budget ---------------------------------------------------------------------------


def test_more_nodes_search_deeper_up_to_the_cap_and_agree_with_that_depth(network, boards):
    model = NTupleAgent(network).value_model()
    depths = []
    for nodes in (1, 100, 10_000, 10**7):
        found = deepening_values(boards, model, SearchBudget(depth=3, nodes=nodes))
        assert found.nodes <= nodes * len(boards)  # the node budget is respected
        np.testing.assert_allclose(found.q, expectimax_values(boards, model, found.depth))
        depths.append(found.depth)
    assert depths == sorted(depths) and depths[0] == 1 and depths[-1] == 3  # never past 3


def test_more_time_searches_deeper_and_depth_one_always_answers(network, boards):
    model = NTupleAgent(network).value_model()
    hurried = deepening_values(boards, model, SearchBudget(seconds=1e-9))
    assert hurried.depth == 1  # no time for more, but depth 1 completes
    np.testing.assert_allclose(hurried.q, expectimax_values(boards, model, 1))
    legal = rules.legal_mask(boards)
    assert legal[np.arange(len(boards)), hurried.q.argmax(axis=1)].all()
    patient = deepening_values(boards, model, SearchBudget(depth=2, seconds=30.0))
    assert patient.depth == 2 and patient.seconds < 30.0 * len(boards)


def test_a_depth_that_overruns_its_prediction_is_abandoned(network, boards, monkeypatch):
    """Predicted to cost nothing, depth 2 starts; its spawns pass the budget and it stops
    there, leaving depth 1's answer and the budget unspent."""
    model = NTupleAgent(network).value_model()
    monkeypatch.setattr(search, "_first_spawns", lambda flat, model: 0)
    found = deepening_values(boards, model, SearchBudget(nodes=2))
    assert found.depth == 1 and found.nodes == 0
    with pytest.raises(search._OutOfBudget):
        search._Tally(deadline=0.0).spend(1)  # a clock past its deadline stops a depth too


def test_a_rate_from_an_earlier_move_predicts_time_and_a_stale_one_fades(network, boards):
    model = NTupleAgent(network).value_model()
    budget = SearchBudget(depth=3, seconds=5.0)
    found = deepening_values(boards, model, budget)
    assert found.depth == 3 and 0 < found.rate < 1e-3  # seconds per spawned board
    slow = deepening_values(boards, model, budget, rate=1e3)  # "a spawn takes 1000 s"
    assert slow.depth == 1 and slow.rate == 1e3 * search.STALE_RATE  # tried again later
    again = deepening_values(boards, model, budget, rate=found.rate)
    assert again.depth == 3


def test_the_policy_counts_its_depth_and_a_depth_alone_still_works(network):
    model = NTupleAgent(network).value_model()
    fixed = search_policy(model, 2)
    evaluate(fixed, games=2, seed=0)
    assert fixed.mean_depth == 2.0 and fixed.budget.describe() == "search depth 2"
    budgeted = search_policy(model, seconds=10.0, nodes=300)
    evaluate(budgeted, games=2, seed=0)
    assert 1.0 < budgeted.mean_depth <= MAX_BUDGET_DEPTH and budgeted.nodes > 0


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["eval", "x.pt", "--search-seconds", "0"], "must be positive"),
        (["eval", "x.pt", "--search-seconds", "abc"], "must be a number"),
        (["eval", "x.pt", "--search-nodes", "-3"], "at least 1"),
        (["play", "--search-nodes", "1.5"], "whole number"),
    ],
)
def test_bad_budget_flags_are_refused_in_one_line(argv, says, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exited.value.code == 2 and says in err and "\n" not in err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["eval", "x.pt", "--search", "9", "--search-seconds", "0.1"], "use 1 to 8"),
        (["eval", "x.pt", "--search", "4"], "or give a time or node budget"),
        (["eval", "x.pt", "--search-nodes", "9", "--sampled"], "drop --sampled"),
        (["play", "--search-seconds", "0.1", "--no-watch"], "needs --checkpoint"),
    ],
)
def test_a_search_that_cannot_be_played_is_refused_before_loading(argv, says, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err and "Traceback" not in err


def test_eval_with_a_node_budget_reports_its_mean_depth(tmp_path, capsys):
    config = TrainerConfig(
        learner="ntuple",
        learner_config=NTupleConfig(tuples="5x4"),
        device="cpu",
        threads=1,
        total_env_steps=20_000,
    )
    path = save_checkpoint(Trainer(config).run().state_dict(), tmp_path / "n.pt")
    argv = ["eval", str(path), "--games", "3", "--search-nodes", "200", "--search", "3"]
    assert main([*argv, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["play"] == "search 200 nodes per move, depth at most 3"
    assert 1.0 <= summary["search_mean_depth"] <= 3.0
    assert main(argv) == 0
    assert "search reached depth" in capsys.readouterr().out


# --- tile-downgrading -----------------------------------------------------------------------


def test_downgrading_the_docstring_example():
    board = np.array([[16, 14, 12, 11], [3, 2, 1, 0], [0] * 4, [0] * 4], dtype=np.uint8)
    want = np.array([[15, 13, 12, 11], [3, 2, 1, 0], [0] * 4, [0] * 4], dtype=np.uint8)
    np.testing.assert_array_equal(downgrade(board[None], TOP)[0], want)


def test_downgrading_fits_the_tables_keeps_tile_order_and_leaves_boards_in_range_alone():
    rng = np.random.default_rng(4)
    beyond = rng.integers(0, 19, (300, 4, 4), dtype=np.uint8)
    beyond[:, 0, 0] = rng.integers(16, 19, 300)  # a 65536 tile or larger on every board
    low = downgrade(beyond, TOP)
    assert low.dtype == np.uint8 and low.shape == beyond.shape and low.max() <= TOP
    a, b = beyond.reshape(300, 16, 1), beyond.reshape(300, 1, 16)
    la, lb = low.reshape(300, 16, 1), low.reshape(300, 1, 16)
    assert ((a < b) == (la < lb)).all() and ((a == b) == (la == lb)).all()
    assert ((low == 0) == (beyond == 0)).all()  # empty cells stay empty
    inside = rng.integers(0, TOP + 1, (300, 4, 4), dtype=np.uint8)
    np.testing.assert_array_equal(downgrade(inside, TOP), inside)


def test_a_board_without_a_gap_loses_the_difference_of_its_2s_and_4s():
    every = np.arange(1, 17, dtype=np.uint8).reshape(1, 4, 4)  # 2, 4, ..., 65536
    low = downgrade(every, TOP)
    np.testing.assert_array_equal(low.ravel(), [1, 1, *range(2, 16)])


def test_a_board_with_a_65536_is_valued_as_its_downgraded_board(network):
    board = np.array([[16, 13, 12, 1], [2, 3, 0, 0], [0] * 4, [0] * 4], dtype=np.uint8)[None]
    with pytest.raises(ValueError):
        network.values(board)  # beyond the tables
    agent = NTupleAgent(network)
    model = agent.value_model()
    np.testing.assert_allclose(model.values(board), network.values(downgrade(board, TOP)))
    q = expectimax_values(board, model, 2)
    assert np.array_equal(np.isfinite(q), rules.legal_mask(board))


def test_the_engine_path_agrees_with_the_network_kernel_in_range(network, boards):
    """Boards with one 32768 take the engine's moves and downgrading (no merge reaches
    65536 here, so nothing is downgraded): the same values as the compiled kernel."""
    edge = boards.copy()
    edge[:, 0, 0] = TOP
    q = downgraded_move_values(network.move_values, network.values, edge, TOP)
    np.testing.assert_allclose(q, network.move_values(edge), rtol=1e-6)


def test_a_32768_pair_about_to_merge_is_played_greedily_and_with_search():
    """Zero weights: a move is worth its score, so the merge of two 32768s (65,536
    points) is the move, where the network alone could not value it."""
    board = np.array([[15, 15, 3, 1], [2, 4, 5, 6], [1, 2, 1, 2], [0, 0, 0, 0]], dtype=np.uint8)
    obs = {"board": board[None], "action_mask": rules.legal_mask(board[None])}
    network = NTupleNetwork(NTupleConfig(tuples="5x4"))
    with pytest.raises(ValueError):
        network.move_values(board[None])
    agent = NTupleAgent(network)
    merges = {int(rules.Action.LEFT), int(rules.Action.RIGHT)}
    assert int(agent.policy()(obs)[0]) in merges
    assert int(agent.search_policy(2)(obs)[0]) in merges
    assert int(agent.search_policy(nodes=500)(obs)[0]) in merges


def test_a_game_beyond_65536_plays_on_to_its_end(network):
    """From a board with a 65536 and two 32768s, the greedy and the budgeted search
    players move (never -1) until no move is left or 40 moves have been played."""
    start = np.array([[16, 15, 15, 3], [2, 1, 0, 0], [0] * 4, [0] * 4], dtype=np.uint8)[None]
    agent = NTupleAgent(network)
    rng = np.random.default_rng(0)
    for policy in (agent.policy(), agent.search_policy(nodes=300)):
        board = start
        for _ in range(40):
            legal = rules.legal_mask(board)
            if not legal.any():
                break
            action = int(policy({"board": board, "action_mask": legal})[0])
            assert legal[0, action]
            board = rules.spawn(rules.slide(board, action)[0], rng)
        assert board.max() >= 16  # the 65536 (or what it became) is still there
