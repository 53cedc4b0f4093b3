"""Start states (learners/ppo/starts.py) and ``VecEnv.place``: games begun from given boards,
boards sampled evenly along games, the restart buffer of long games' endgames, the teacher's
boards and the shares of new games from each source."""

from __future__ import annotations

import numpy as np
import pytest

from g2048lab import games
from g2048lab.engine.env import VecEnv
from g2048lab.engine.rules import legal_mask
from g2048lab.learners.ntuple.network import NTupleConfig, NTupleNetwork
from g2048lab.learners.ntuple.ntuple_learner import NTupleAgent
from g2048lab.learners.ppo.starts import (
    NORMAL,
    OWN,
    TEACHER,
    GameSnapshots,
    RestartBuffer,
    StartConfig,
    choose_starts,
    start_shares,
    teacher_starts,
)

BOARD = np.array([[1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6], [0, 0, 0, 11]], np.uint8)
STUCK = np.array([[1, 2, 1, 2], [2, 1, 2, 1], [1, 2, 1, 2], [2, 1, 2, 1]], np.uint8)


def test_place_starts_games_from_given_boards_and_their_scores_continue():
    env = VecEnv(3, seed=0)
    env.reset()
    env.place([2, 0], np.stack([BOARD, BOARD]), [20_000, 7])
    obs = env.observation()
    assert (obs["board"][2] == BOARD).all() and (obs["board"][0] == BOARD).all()
    assert obs["action_mask"][2].tolist() == [False, False, True, True]  # DOWN, LEFT
    # LEFT slides the 11 along the bottom row and merges nothing
    _, _, terminated, _, info = env.step(np.array([3, obs["action_mask"][1].argmax(), 3]))
    assert not terminated.any()
    assert info["score"][2] == 20_000 and info["score"][0] == 7
    assert info["length"].tolist() == [1, 1, 1] and info["max_tile"][2] == 2048
    assert env.observation()["board"][2][3, 0] == 11


def test_place_refuses_a_bad_board_in_one_line_and_changes_nothing():
    env = VecEnv(2, seed=0)
    env.reset()
    before = env.state_dict()
    too_big = BOARD.copy()
    too_big[0, 0] = env.game.max_exponent + 1
    cases = [
        (np.stack([BOARD, STUCK]), "no legal move"),
        (np.stack([BOARD, too_big]), "outside"),
        (np.zeros((2, 5, 5), np.uint8), "shape"),
    ]
    for boards, words in cases:
        with pytest.raises(ValueError, match=words) as error:
            env.place([0, 1], boards, [0, 0])
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="distinct slots"):
        env.place([1, 1], np.stack([BOARD, BOARD]), [0, 0])
    after = env.state_dict()
    for key in ("boards", "action_mask", "score", "length", "max_exponent"):
        assert (after[key] == before[key]).all(), key


def test_place_on_another_game_checks_its_shape_and_largest_exponent():
    game = games.get("2048-5x5")
    env = VecEnv(1, seed=0, game=game)
    env.reset()
    board = np.zeros((1, 5, 5), np.uint8)
    board[0, 0, 0] = game.max_exponent
    env.place([0], board, [1])
    assert env.observation()["action_mask"][0].sum() == 2
    with pytest.raises(ValueError, match="shape"):
        env.place([0], BOARD[None], [1])


def _play(snapshots: GameSnapshots, moves: int) -> None:
    """Observe ``moves`` steps of one slot whose board holds the move number in cell 0."""
    for t in range(moves):
        board = np.zeros((1, 4, 4), np.uint8)
        board[0, 0, 0] = t % 256
        snapshots.observe(board, np.array([10 * t]))


def test_snapshots_cover_a_long_game_evenly_in_bounded_memory():
    snapshots = GameSnapshots(1, (4, 4), capacity=8)
    _play(snapshots, 100)
    boards, scores, moves = snapshots.finish(0)
    assert moves == 100
    times = scores // 10  # the move each board was taken at
    # 100 moves: stride 1 -> 2 -> 4 -> 8 -> 16, boards at 0, 16, ..., 96
    assert times.tolist() == [0, 16, 32, 48, 64, 80, 96]
    assert (boards[:, 0, 0] == times % 256).all()
    assert 4 <= len(times) <= 8 and times[-1] > moves - 16
    # finish cleared the slot: the next game starts at stride 1
    _play(snapshots, 3)
    assert (snapshots.finish(0)[1] // 10).tolist() == [0, 1, 2]


def test_snapshots_of_many_slots_are_independent_and_round_trip():
    snapshots = GameSnapshots(3, (4, 4), capacity=4)
    boards = np.zeros((3, 4, 4), np.uint8)
    for t in range(10):
        snapshots.observe(boards + t, np.array([t, 100 + t, 200 + t]))
        if t == 4:
            assert snapshots.finish(1)[2] == 5
    copy = GameSnapshots(3, (4, 4), capacity=4)
    copy.load_state_dict(snapshots.state_dict())
    for s in (snapshots, copy):
        assert s.finish(0)[1].tolist() == [0, 4, 8]
        assert s.finish(1)[1].tolist() == [105, 107, 109]
    with pytest.raises(ValueError, match="saved game snapshots"):
        GameSnapshots(2, (4, 4), capacity=4).load_state_dict(snapshots.state_dict())


def _game(moves: int, k: int = 10) -> tuple[np.ndarray, np.ndarray, int]:
    """k boards of a game of ``moves`` moves, each marked by its game length and index."""
    boards = np.zeros((k, 4, 4), np.uint8)
    boards[:, 0, 0] = moves % 256
    boards[:, 0, 1] = np.arange(k)
    return boards, np.arange(k, dtype=np.int64) * moves, moves


def test_the_restart_buffer_keeps_only_the_second_halves_of_long_games():
    buffer = RestartBuffer(1000, (4, 4))
    for i in range(RestartBuffer.WARMUP):  # the first games all count
        assert buffer.offer(*_game(50 + i))
    assert len(buffer) == RestartBuffer.WARMUP * 5
    assert buffer.offer(*_game(200)) and not buffer.offer(*_game(10))
    boards, scores = buffer.sample(np.random.default_rng(0), 500)
    assert (boards[:, 0, 1] >= 5).all()  # the later half of each game's boards
    assert set(boards[:, 0, 0].tolist()) <= set(range(50, 50 + RestartBuffer.WARMUP)) | {200}
    assert (
        scores == boards[:, 0, 1].astype(np.int64) * boards[:, 0, 0]
    ).all()  # boards keep their scores


def test_the_restart_buffer_is_bounded_samples_uniformly_and_round_trips():
    buffer = RestartBuffer(12, (4, 4))
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(np.random.default_rng(0), 1)
    for length in (100, 101, 102):
        buffer.offer(*_game(length))
    assert len(buffer) == 12  # 15 boards offered: the oldest 3 gave way
    boards, _ = buffer.sample(np.random.default_rng(1), 12_000)
    kept = boards[:, 0, 0].astype(int) * 10 + boards[:, 0, 1]
    assert 1000 + 5 not in kept and 1000 + 8 in kept
    counts = np.unique(kept, return_counts=True)[1]
    assert len(counts) == 12 and counts.min() > 800 and counts.max() < 1200  # 1000 ± 6 sd
    copy = RestartBuffer(12, (4, 4))
    copy.load_state_dict(buffer.state_dict())
    for b in (buffer, copy):
        b.offer(*_game(103))
    a, b = (x.sample(np.random.default_rng(2), 50) for x in (buffer, copy))
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()
    with pytest.raises(ValueError, match="saved restart buffer"):
        RestartBuffer(13, (4, 4)).load_state_dict(buffer.state_dict())


def test_start_config_checks_its_shares_and_the_teachers_anneals():
    assert not StartConfig().enabled and StartConfig(own_share=0.3).enabled
    for bad in (dict(own_share=1.5), dict(teacher_share=-0.1), dict(buffer_size=0)):
        with pytest.raises(ValueError):
            StartConfig(**bad)
    with pytest.raises(ValueError, match="<= 1"):
        StartConfig(own_share=0.6, teacher_share=0.5)
    config = StartConfig(own_share=0.2, teacher_share=0.4, teacher_anneal_steps=1000)
    assert start_shares(config, 0) == (0.2, 0.4)
    assert start_shares(config, 250) == pytest.approx((0.2, 0.3))
    assert start_shares(config, 1000) == (0.2, 0.0) == start_shares(config, 5000)


def test_choose_starts_gives_each_source_its_share():
    codes = choose_starts(np.random.default_rng(0), 20_000, 0.25, 0.1)
    assert codes.dtype == np.int8 and set(np.unique(codes)) == {NORMAL, OWN, TEACHER}
    # binomial sd at 20,000 games: 0.003 for 0.25, 0.002 for 0.1; 5 sd margins
    assert abs((codes == OWN).mean() - 0.25) < 0.016
    assert abs((codes == TEACHER).mean() - 0.1) < 0.011
    assert (choose_starts(np.random.default_rng(0), 100, 0.0, 0.0) == NORMAL).all()
    with pytest.raises(ValueError, match="sum"):
        choose_starts(np.random.default_rng(0), 1, 0.7, 0.4)


def test_teacher_starts_are_legal_boards_of_the_teachers_games():
    network = NTupleNetwork(NTupleConfig(tuples="5x4", seed=0, threads=1))
    network.train(5_000)
    boards, scores = teacher_starts(NTupleAgent(network), None, games=4, seed=3, capacity=16)
    assert boards.dtype == np.uint8 and boards.shape[1:] == (4, 4) and scores.dtype == np.int64
    assert 4 * 8 <= len(boards) <= 4 * 16  # each game's 8..16 evenly spaced boards
    assert legal_mask(boards).any(axis=1).all()  # every one a board to move from
    # a game's first board: two tiles, score 0 (later boards hold more tiles or a merge)
    starts = np.flatnonzero((scores == 0) & ((boards > 0).sum(axis=(1, 2)) == 2))
    assert starts.tolist()[:1] == [0] and len(starts) == 4
    ends = np.append(starts[1:] - 1, len(scores) - 1)
    assert (scores[ends] > 0).all() and (boards[ends].max(axis=(1, 2)) >= 5).all()
    within = np.ones(len(scores), np.bool_)
    within[starts] = False
    assert (np.diff(scores)[within[1:]] >= 0).all()  # scores grow along each game
    env = VecEnv(len(boards), seed=0)
    env.reset()
    env.place(np.arange(len(boards)), boards, scores)  # each one can start a game
