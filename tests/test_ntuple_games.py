"""The n-tuple network on games of the 2048 family other than 4x4: tuple layouts and
symmetries placed for the board, features against a slow reference on a 3x5 board, the
flat kernels playing exactly as the packed ones on 4x4, the game's spawn rule, learning on
3x3 and 5x5, the table's range, and state dicts that record their game.

The small "5x4" layout keeps every network here under 2 MB.
"""

from __future__ import annotations

import numpy as np
import pytest

from g2048lab import games
from g2048lab.engine.env import VecEnv
from g2048lab.engine.rules import legal_mask, slide
from g2048lab.evaluation import random_policy
from g2048lab.learners.ntuple.layouts import symmetries, tuple_layout
from g2048lab.learners.ntuple.network import (
    TUPLE_LAYOUTS,
    NTupleConfig,
    NTupleNetwork,
    network_bytes,
    weights_shape,
)

SMALL = "5x4"


def network(game: str, seed: int = 0, packed: bool | None = None, **config) -> NTupleNetwork:
    config = NTupleConfig(tuples=SMALL, seed=seed, **{"threads": 1, **config})  # reproducible
    return NTupleNetwork(config, games.get(game), packed=packed)


def random_boards(n: int, shape: tuple[int, int], seed: int = 0, top: int = 12) -> np.ndarray:
    """(n, R, C) uint8 boards with about a third of the cells empty."""
    rng = np.random.default_rng(seed)
    boards = rng.integers(1, top + 1, (n, *shape)).astype(np.uint8)
    boards[rng.random((n, *shape)) < 0.35] = 0
    return boards


def images(board: np.ndarray) -> list[np.ndarray]:
    """The symmetric images of a board: 8 on a square one, else the flips and the half turn."""
    if board.shape[0] == board.shape[1]:
        rotations = [np.rot90(board, k) for k in range(4)]
        return rotations + [np.fliplr(r) for r in rotations]
    return [board, np.fliplr(board), np.flipud(board), np.rot90(board, 2)]


def reference_value(net: NTupleNetwork, board: np.ndarray) -> float:
    """V by the definition: each tuple read on each image, digit k = exponent on cell k."""
    total = 0.0
    for image in images(board):
        cells = image.reshape(-1).astype(np.int64)
        for t, tuple_cells in enumerate(net.layout):
            index = sum(int(cells[c]) << (4 * k) for k, c in enumerate(tuple_cells))
            total += float(net.weights[t, index])
    return total


def mean_score(policy, game: games.Game, n: int, seed: int) -> float:
    """Mean score of the first game in each of ``n`` slots of a VecEnv of ``game``."""
    env = VecEnv(n, seed=seed, game=game)
    obs, _ = env.reset()
    done = np.zeros(n, dtype=np.bool_)
    scores = np.zeros(n, dtype=np.int64)
    while not done.all():
        obs, _, terminated, _, info = env.step(policy(obs))
        first = terminated & ~done
        scores[first] = info["episode"]["score"][first]
        done |= terminated
    return float(scores.mean())


# --- layouts and symmetries ----------------------------------------------------------------


def test_on_4x4_the_layouts_are_the_papers():
    assert TUPLE_LAYOUTS["4x6"] == (
        (0, 1, 2, 3, 4, 5),
        (4, 5, 6, 7, 8, 9),
        (0, 1, 2, 4, 5, 6),
        (4, 5, 6, 8, 9, 10),
    )
    assert TUPLE_LAYOUTS["5x4"] == (
        (0, 1, 2, 3),
        (4, 5, 6, 7),
        (0, 1, 4, 5),
        (1, 2, 5, 6),
        (5, 6, 9, 10),
    )


def test_layouts_are_placed_for_the_board():
    # 3x3: lines and a 2x2 square, also for the standard layout (a row of 4 does not fit)
    assert (
        tuple_layout("4x6", 3, 3)
        == tuple_layout("5x4", 3, 3)
        == ((0, 1, 2), (3, 4, 5), (0, 1, 3, 4))
    )
    # 5x5: the row of 4 with 2 below at rows 0 and 1, the 2x3 rectangle at 4 places
    assert tuple_layout("4x6", 5, 5) == (
        (0, 1, 2, 3, 5, 6),
        (5, 6, 7, 8, 10, 11),
        (0, 1, 2, 5, 6, 7),
        (1, 2, 3, 6, 7, 8),
        (5, 6, 7, 10, 11, 12),
        (6, 7, 8, 11, 12, 13),
    )
    # 3x5 has no symmetry that turns it: columns of 3 are tuples of their own
    assert {(0, 5, 10), (1, 6, 11), (2, 7, 12)} <= set(tuple_layout("5x4", 3, 5))
    assert weights_shape(NTupleConfig(), games.get("2048-5x5")) == (6, 16**6)
    assert (
        network_bytes(NTupleConfig(tuples=SMALL, coherence=False), games.get("2048-3x3"))
        == 3 * 16**4 * 4
    )


@pytest.mark.parametrize("rows, cols", [(3, 3), (4, 4), (5, 5), (6, 6), (3, 5), (4, 6), (2, 3)])
@pytest.mark.parametrize("name", ["4x6", "5x4"])
def test_no_tuple_is_another_seen_through_a_symmetry(name, rows, cols):
    layout = tuple_layout(name, rows, cols)
    perms = symmetries(rows, cols)
    assert len(perms) == (8 if rows == cols else 4)
    assert all(sorted(p) == list(range(rows * cols)) for p in perms.tolist())
    seen = set()
    for cells in layout:
        assert list(cells) == sorted(set(cells)) and cells[0] >= 0 and cells[-1] < rows * cols
        classes = {tuple(sorted(np.flatnonzero(np.isin(perm, cells)).tolist())) for perm in perms}
        assert not classes & seen, cells
        seen |= classes


# --- values on another board, against the definition ----------------------------------------


@pytest.fixture(scope="module")
def random_3x5() -> NTupleNetwork:
    net = network("2048-3x5")
    net.weights[:] = np.random.default_rng(0).normal(0, 100, net.weights.shape)
    return net


def test_values_on_3x5_match_the_reference_lookup(random_3x5):
    boards = random_boards(30, (3, 5), seed=2, top=15)
    expected = [reference_value(random_3x5, b) for b in boards]
    np.testing.assert_allclose(random_3x5.values(boards), expected, rtol=1e-5, atol=1e-2)
    assert random_3x5.features == 4 * len(random_3x5.layout)


def test_move_values_on_3x5_are_reward_plus_value(random_3x5):
    boards = random_boards(30, (3, 5), seed=3)
    boards[0] = [[1, 2, 3, 4, 5], [2, 3, 4, 5, 6], [1, 2, 3, 4, 5]]  # no legal move
    q = random_3x5.move_values(boards)
    legal = legal_mask(boards)
    assert np.array_equal(np.isneginf(q), ~legal)
    for action in range(4):
        after, reward, _ = slide(boards, action)
        expected = reward + random_3x5.values(after)
        np.testing.assert_allclose(q[legal[:, action], action], expected[legal[:, action]], 1e-5)
    assert random_3x5.greedy_actions(boards)[0] == -1
    with pytest.raises(ValueError, match=r"shape \(N, 3, 5\)"):
        random_3x5.values(np.zeros((1, 4, 4), np.uint8))


# --- the flat kernels, the spawn rule, the table's range ------------------------------------


def test_the_flat_kernels_play_and_learn_on_4x4_exactly_as_the_packed_ones():
    packed, flat = network("2048-4x4", seed=7), network("2048-4x4", seed=7, packed=False)
    assert packed.packed and not flat.packed
    one, other = packed.train(30_000), flat.train(30_000)
    assert np.array_equal(packed.weights, flat.weights)
    assert np.array_equal(one.scores, other.scores) and one.td_error_sum == other.td_error_sum
    a, b = packed.state_dict(), flat.state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    boards = random_boards(20, (4, 4), seed=1, top=14)
    np.testing.assert_array_equal(packed.move_values(boards), flat.move_values(boards))


@pytest.mark.parametrize("packed", [True, False])
def test_training_spawns_by_the_games_rule(packed):
    fours = games.Game("2048-4x4-fours", 4, 4, four_probability=1.0, start_tiles=3)
    net = NTupleNetwork(NTupleConfig(tuples=SMALL, threads=1), fours, packed=packed)
    board = net.board
    assert (board == 2).sum() == 3 and (board != 2).sum() == (board == 0).sum()
    for _ in range(20):
        net.train(97)
        assert not (net.board == 1).any()  # every spawn a 4: no 2 ever appears


def test_a_game_reaching_the_tables_range_on_5x5_ends_and_is_counted():
    net = network("2048-5x5")
    state = net.state_dict()
    state["board"] = np.zeros((5, 5), np.uint8)
    state["board"][0, :2] = 15  # two 32768s side by side: LEFT or RIGHT would make 65536
    state["board"][1, 0] = 1
    state["score"] = 7
    net.load_state_dict(state)
    with pytest.raises(ValueError, match="board 0 would create the tile 65536"):
        net.move_values(net.board[None])
    stats = net.train(3)
    assert stats.range_games == 1 and stats.scores.tolist()[0] == 7
    assert stats.max_tiles.tolist()[0] == 32768 and net.state_dict()["length"] == 3


# --- learning on other boards -----------------------------------------------------------------


@pytest.mark.parametrize(
    "game, moves, factor", [("2048-3x3", 20_000, 3.0), ("2048-5x5", 20_000, 1.5)]
)
def test_a_few_thousand_moves_beat_random_play(game, moves, factor):
    net = network(game, seed=1)
    net.train(moves)
    greedy = mean_score(lambda obs: net.greedy_actions(obs["board"]), net.game, 20, seed=3)
    random = mean_score(random_policy(0), net.game, 20, seed=3)
    assert greedy > factor * random, (greedy, random)


# --- state dicts record their game --------------------------------------------------------------


def test_a_5x5_state_dict_round_trip_continues_bit_exactly():
    net = network("2048-5x5", seed=3, learning_rate=0.05)
    net.train(3_000)
    saved = net.state_dict()
    assert saved["game"] == "2048-5x5" and saved["board"].shape == (5, 5)
    later = net.train(3_000)
    resumed = NTupleNetwork.from_state_dict(saved)
    assert resumed.game == net.game and resumed.config == net.config
    again = resumed.train(3_000)
    assert np.array_equal(resumed.weights, net.weights)
    assert np.array_equal(again.scores, later.scores) and again.updates == later.updates
    with pytest.raises(
        ValueError, match=r"for 2048-5x5, this one plays 2048-4x4; create .*'2048-5x5'"
    ):
        network("2048-4x4").load_state_dict(saved)


def test_a_state_dict_without_a_game_is_of_4x4():
    state = network("2048-4x4", seed=2).state_dict()
    del state["game"]  # as written before games
    assert NTupleNetwork.from_state_dict(state).game == games.get("2048-4x4")
