"""The n-tuple learner's learning rules beyond TD(0): temporal coherence and its switch from
TD, multistage weights, training on several threads, and checkpoints that fit the disk."""

from __future__ import annotations

import shutil
from collections import namedtuple

import numpy as np
import pytest
import torch

from g2048lab import games
from g2048lab.checkpoint import CheckpointError, CheckpointManager
from g2048lab.evaluation import evaluate
from g2048lab.learners.ntuple.network import (
    NTupleConfig,
    NTupleNetwork,
    network_bytes,
    parse_stages,
)
from g2048lab.learners.ntuple.ntuple_learner import NTupleLearner
from g2048lab.learners.ntuple.td import td_update

SMALL = "5x4"


def network(**config) -> NTupleNetwork:
    return NTupleNetwork(NTupleConfig(tuples=SMALL, **{"threads": 1, **config}))


# --- temporal coherence ----------------------------------------------------------------------


def test_coherence_moves_each_weight_by_its_own_rate():
    weights = np.zeros(4, np.float32)
    stats = np.zeros(8, np.float32)  # E, A of each weight, interleaved
    features = np.array([0, 1], np.int64)
    no_stages = (np.int64(0), np.float32(0))
    # first update: no history, rate 1; both weights move by step * delta = 0.5 * 10
    assert td_update(features, 10.0, 0.5, weights, *no_stages, stats) == pytest.approx(10)
    assert weights[:2].tolist() == [5, 5] and stats[:4].tolist() == [10, 10, 10, 10]
    # V = 10 now; a target of 4 gives delta -6, still at rate |E| / A = 1
    assert td_update(features, 4.0, 0.5, weights, *no_stages, stats) == pytest.approx(-6)
    assert weights[:2].tolist() == [2, 2] and stats[:4].tolist() == [4, 16, 4, 16]
    # errors that cancelled slow the weights down: rate |4| / 16
    td_update(features, 8.0, 0.5, weights, *no_stages, stats)  # delta 4
    assert weights[:2] == pytest.approx([2 + 0.5 * 4 * 4 / 16] * 2)
    # plain TD (no statistics) moves at the step alone
    plain = np.zeros(4, np.float32)
    td_update(features, 10.0, 0.5, plain, *no_stages, np.zeros(0, np.float32))
    assert plain[:2].tolist() == [5, 5]


def test_coherence_starts_on_its_exact_move_after_plain_td():
    net = network(coherence=True, coherence_after=1_000)
    assert net.coherence is not None and net.coherence.shape == (*net.weights.shape, 2)
    net.train(999)
    assert not net.coherence.any() and not net.coherent  # plain TD so far: no statistics
    net.train(2)  # moves 1000 and 1001: the second updates with coherence
    assert net.coherent
    assert net.coherence[..., 1].sum() > 0
    assert np.all(net.coherence[..., 1] >= np.abs(net.coherence[..., 0]) - 1e-3)  # A >= |E|


def test_coherence_learns_and_triples_the_memory():
    assert network_bytes(NTupleConfig(tuples=SMALL, coherence=True)) == 3 * network_bytes(
        NTupleConfig(tuples=SMALL, coherence=False)
    )
    net = network(coherence=True, learning_rate=1.0)
    net.train(150_000)
    result = evaluate(lambda obs: net.greedy_actions(obs["board"]), 100, seed=5)
    assert result.summary()["mean_score"] > 2_500  # random play: about 1,100


# --- multistage --------------------------------------------------------------------------------


def test_stages_parse_in_words():
    assert parse_stages("") == ()
    assert parse_stages("16384, 16384+8192") == (1 << 14, 1 << 14 | 1 << 13)
    for bad, message in [
        ("3000", "'3000' is not a tile from 4 to 32768"),
        ("65536", "'65536' is not a tile"),
        ("x", "'x' is not a tile"),
        ("16384,8192", "must hold the tiles of the stage before it and more"),
        ("1024,1024", "must hold the tiles of the stage before it and more"),
    ]:
        with pytest.raises(ValueError, match=message):
            NTupleConfig(stages=bad)


def test_a_new_stage_starts_from_the_stage_before():
    """Weights of stage 1 that were never trained read as stage 0's (weight promotion); the
    first update writes them in place, and only then do the stages differ."""
    one = network()
    one.train(30_000)
    two = network(stages="128")
    assert two.weights.shape == (2 * one.weights.shape[0], one.weights.shape[1])
    rows = one.weights.shape[0]
    two.weights[:rows] = one.weights
    rng = np.random.default_rng(0)
    boards = rng.integers(0, 7, (200, 4, 4)).astype(np.uint8)
    boards[:100, 0, 0] = 7  # a 128: stage 1, untrained
    assert all(two.stage(b) == (1 if (b == 7).any() else 0) for b in boards)
    np.testing.assert_allclose(two.values(boards), one.values(boards), rtol=1e-6)
    np.testing.assert_allclose(two.move_values(boards), one.move_values(boards), rtol=1e-6)
    two.train(20_000)
    assert two.weights[rows:].any()  # stage 1 learned from games that made a 128
    stats = two.train(20_000)
    assert set(stats.stages.tolist()) <= {0, 1} and stats.stages.max() == 1


# --- threads -------------------------------------------------------------------------------------


def test_two_threads_share_the_weights_and_resume():
    net = network(threads=2, seed=3)
    assert net.threads == 2
    stats = net.train(40_001)
    assert stats.moves == 40_001 and net.moves == 40_001 and len(stats.scores) > 2
    state = net.state_dict()
    assert state["thread_boards"].shape == (1, 2, 4, 4) and state["thread_games"].shape == (1, 4)
    # both threads' games differ: their generators do
    assert not np.array_equal(state["thread_boards"][0, 0], state["board"])
    again = NTupleNetwork.from_state_dict(state, threads=2)
    np.testing.assert_array_equal(again.state_dict()["thread_boards"], state["thread_boards"])
    assert again.state_dict()["thread_games"].tolist() == state["thread_games"].tolist()
    again.train(10_000)
    assert again.moves == 50_001
    # one thread: the other thread's game is dropped, thread 0's goes on exactly
    single = NTupleNetwork.from_state_dict(state, threads=1)
    assert "thread_boards" not in single.state_dict()
    exact = NTupleNetwork.from_state_dict(state, threads=1)
    a, b = single.train(5_000), exact.train(5_000)
    np.testing.assert_array_equal(single.weights, exact.weights)
    assert a.scores.tolist() == b.scores.tolist()


def test_two_threads_learn_as_one_does_per_move():
    results = {}
    for threads in (1, 2):
        net = network(threads=threads, seed=1)
        net.train(150_000)
        play = evaluate(lambda obs, n=net: n.greedy_actions(obs["board"]), 100, seed=9)
        results[threads] = play.summary()["mean_score"]
    assert results[2] > 0.6 * results[1] and results[2] > 2_500, results


def test_a_checkpoint_holds_every_threads_game_and_is_checked(tmp_path):
    from g2048lab.learners.base import LearnerSetup
    from g2048lab.trainer import TrainerConfig

    config = TrainerConfig(
        learner="ntuple",
        learner_config=NTupleConfig(tuples=SMALL, threads=2, coherence=True, stages="256"),
    )
    learner = NTupleLearner(config, LearnerSetup(torch.device("cpu"), 0))
    learner.network.train(20_000)
    payload = {"ntuple": learner.state_dict()["ntuple"], "game": games.DEFAULT}

    def bad(field, why):
        return ValueError(f"{field} {why}")

    NTupleLearner.check_payload(payload, bad)  # a good one passes
    assert NTupleLearner.config_from_payload(payload).stages == "256"
    agent = NTupleLearner.load_agent(payload, torch.device("cpu"))
    assert agent.network.threads == 1  # a player needs one thread
    np.testing.assert_array_equal(agent.network.weights, learner.network.weights)
    for field, value, named in [
        ("thread_games", torch.zeros((1, 3), dtype=torch.int64), "ntuple.thread_boards"),
        ("thread_boards", torch.zeros((1, 2, 3, 3), dtype=torch.uint8), "ntuple.thread_boards"),
        ("coherence_stats", torch.zeros(3), "ntuple.coherence_stats"),
    ]:
        broken = {**payload, "ntuple": {**payload["ntuple"], field: value}}
        with pytest.raises(ValueError, match=named):
            NTupleLearner.check_payload(broken, bad)


# --- checkpoints that fit the disk ----------------------------------------------------------


def test_old_checkpoints_go_first_when_the_disk_is_short(tmp_path, monkeypatch):
    manager = CheckpointManager(tmp_path, keep_last=3)
    blob = {"iteration": 0, "weights": torch.zeros(50_000)}  # ~200 kB each
    for i in range(3):
        manager.save({**blob, "iteration": i})
    assert [p.name for p in manager.saved()] == [f"ckpt-{i:07d}.pt" for i in range(3)]
    size = manager.saved()[-1].stat().st_size
    Usage = namedtuple("Usage", "total used free")
    # a disk with room for the new file and the reserve only once two old files are gone
    capacity = 2 * size + manager.RESERVE + 10

    def usage(path):
        on_disk = sum(p.stat().st_size for p in manager.saved())
        return Usage(capacity, on_disk, capacity - on_disk)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    manager.save({**blob, "iteration": 3})
    assert [p.name for p in manager.saved()] == ["ckpt-0000002.pt", "ckpt-0000003.pt"]
    # a disk that cannot hold one more file keeps the latest and fails in one line
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**12, 0, 0))

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("g2048lab.checkpoint.os.fdopen", full)
    with pytest.raises(CheckpointError, match="No space left on device; free some space"):
        manager.save({**blob, "iteration": 4})
    assert [p.name for p in manager.saved()] == ["ckpt-0000003.pt"]


def test_the_default_layout_is_the_best_measured_for_the_board():
    from g2048lab.learners.ntuple.layouts import tuple_layout

    assert tuple_layout("auto", 4, 4) == tuple_layout("5x6", 4, 4)  # it beat 4x6 at 5 minutes
    for rows, cols in [(3, 3), (3, 5), (5, 5), (6, 6)]:  # where 5x6 is bigger or does not fit
        assert tuple_layout("auto", rows, cols) == tuple_layout("4x6", rows, cols)
    assert NTupleConfig().tuples == "auto"


def test_a_checkpoint_from_before_these_settings_loads_as_td_on_one_thread():
    from g2048lab.learners.base import LearnerSetup
    from g2048lab.trainer import TrainerConfig

    plain = NTupleConfig(
        tuples=SMALL, coherence=False, learning_rate=0.4, threads=1, td_lambda=0, td_horizon=1
    )
    learner = NTupleLearner(
        TrainerConfig(learner="ntuple", learner_config=plain), LearnerSetup(torch.device("cpu"), 0)
    )
    learner.network.train(5_000)
    old = {"ntuple": learner.state_dict()["ntuple"], "game": games.DEFAULT}
    fields = ("coherence", "coherence_after", "stages", "threads", "td_lambda", "td_horizon")
    for field in fields:  # not written then
        del old["ntuple"][field]

    def bad(field, why):
        return ValueError(f"{field} {why}")

    NTupleLearner.check_payload(old, bad)
    config = NTupleLearner.config_from_payload(old)
    assert (config.coherence, config.threads, config.stages) == (False, 1, "")
    assert config.td_horizon == 1  # TD(0) trained it
    agent = NTupleLearner.load_agent(old, torch.device("cpu"))
    np.testing.assert_array_equal(agent.network.weights, learner.network.weights)


# --- λ-returns: TD(λ) and n-step TD ----------------------------------------------------------


def test_lambda_weights_mix_the_k_step_returns():
    from g2048lab.learners.ntuple.td import lambda_weights

    assert lambda_weights(0.0, 1).tolist() == [1.0]  # TD(0)
    assert lambda_weights(1.0, 3).tolist() == [0.0, 0.0, 1.0]  # 3-step TD
    assert lambda_weights(0.5, 3).tolist() == [0.5, 0.25, 0.25]
    assert lambda_weights(0.5, 1).tolist() == [1.0]  # horizon 1 is TD(0) whatever λ
    # the default: λ 0.5 over 3 moves learned 16% more per move than TD(0) (README)
    assert (NTupleConfig().td_lambda, NTupleConfig().td_horizon) == (0.5, 3)
    with pytest.raises(ValueError, match="td_horizon"):
        NTupleConfig(td_horizon=0)


def test_an_afterstate_moves_toward_its_lambda_return_and_the_rest_at_the_end():
    from g2048lab.learners.ntuple.td import lambda_weights, learn_end, learn_move

    lam = lambda_weights(0.5, 2)  # G = (G1 + G2) / 2
    weights = np.zeros(4, np.float32)
    pending = np.zeros((3, 1), np.int64)  # a ring of H + 1 afterstates, one feature each
    returns = np.zeros((3, 2), np.float64)
    stages = (np.zeros(0, np.int64), np.int64(0), np.float32(0))
    no_tc = np.zeros(0, np.float32)
    learning = (lam, 1.0, weights, stages, no_tc)  # step 1: V moves all the way
    start, count = 0, 0
    # afterstates 0, 1, 2 made by moves rewarded 4, 8, 2 (every value still 0: q = reward)
    for feature, reward in [(0, 4), (1, 8), (2, 2)]:
        features = np.array([feature], np.int64)
        start, count, error, updates = learn_move(
            pending, returns, start, count, features, reward, float(reward), learning
        )
    # only afterstate 0 has its 2 successors: G1 = 8 + V(1), G2 = 8 + 2 + V(2)
    assert (error, updates) == (9.0, 1) and weights.tolist() == [9.0, 0.0, 0.0, 0.0]
    assert count == 2
    # the game ends: afterstate 1 has one successor, then the end (value 0): G1 = 2, G2 = 2;
    # afterstate 2's return is 0
    weights[2] = 5.0
    errors, updates = learn_end(pending, returns, start, count, learning)
    assert weights.tolist() == [9.0, 2.0, 0.0, 0.0] and (errors, updates) == (7.0, 2)


@pytest.mark.parametrize("game", ["2048-4x4", "2048-3x3"])  # the packed and the flat kernels
def test_a_lambda_run_resumes_exactly_and_its_agent_plays(game):
    config = NTupleConfig(tuples="auto" if game != "2048-4x4" else SMALL, threads=1, seed=2,
                          td_lambda=0.5, td_horizon=3)  # fmt: skip
    whole = NTupleNetwork(config, games.get(game))
    whole.train(30_000)
    state = whole.state_dict()
    assert state["td_pending"].shape == (1, 3, whole.features)
    assert 0 <= state["td_pending_count"][0] <= 3
    resumed = NTupleNetwork.from_state_dict(state)
    a, b = whole.train(20_000), resumed.train(20_000)
    np.testing.assert_array_equal(whole.weights, resumed.weights)
    assert a.scores.tolist() == b.scores.tolist() and a.updates == b.updates


def test_n_step_td_learns_and_its_checkpoint_is_checked():
    from g2048lab.learners.base import LearnerSetup
    from g2048lab.trainer import TrainerConfig

    config = NTupleConfig(
        tuples=SMALL, threads=2, coherence=False, learning_rate=0.4, td_lambda=1.0, td_horizon=2
    )
    learner = NTupleLearner(
        TrainerConfig(learner="ntuple", learner_config=config), LearnerSetup(torch.device("cpu"), 0)
    )
    assert "λ-return of 2 moves at λ = 1" in learner.describe()
    net = learner.network
    net.train(150_000)
    play = evaluate(lambda obs: net.greedy_actions(obs["board"]), 100, seed=9)
    assert play.summary()["mean_score"] > 2_500  # random play scores ~1,100
    payload = {"ntuple": learner.state_dict()["ntuple"], "game": games.DEFAULT}

    def bad(field, why):
        return ValueError(f"{field} {why}")

    NTupleLearner.check_payload(payload, bad)
    agent = NTupleLearner.load_agent(payload, torch.device("cpu"))
    np.testing.assert_array_equal(agent.network.weights, net.weights)
    broken = {**payload, "ntuple": {**payload["ntuple"], "td_returns": torch.zeros(2, 3)}}
    with pytest.raises(ValueError, match="ntuple.td_returns"):
        NTupleLearner.check_payload(broken, bad)


def test_a_state_loaded_into_a_network_of_another_lambda_return_trains_by_its_own():
    for saved, built in [((0.0, 1), (0.5, 3)), ((0.5, 3), (0.0, 1)), ((0.7, 2), (0.5, 3))]:
        source = network(seed=4, td_lambda=saved[0], td_horizon=saved[1])
        source.train(20_000)
        state = source.state_dict()
        loaded = network(td_lambda=built[0], td_horizon=built[1])
        loaded.load_state_dict(state)
        assert (loaded.config.td_lambda, loaded.config.td_horizon) == saved
        exact = NTupleNetwork.from_state_dict(state)
        a, b = loaded.train(10_000), exact.train(10_000)
        np.testing.assert_array_equal(loaded.weights, exact.weights)
        assert a.scores.tolist() == b.scores.tolist() and a.updates == b.updates
