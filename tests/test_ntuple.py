"""The n-tuple network in g2048lab.learners.ntuple.network: lookups against a slow reference,
the TD(0) update by hand, exact resumption, learning, and expectimax against a reference.

Most tests use the small "5x4" layout (1.3 MB); one module fixture trains the standard
268 MB "4x6" network once.
"""

import itertools

import numpy as np
import pytest

from g2048lab import games
from g2048lab.engine.rules import legal_mask, slide
from g2048lab.engine.search import expectimax_actions, expectimax_values
from g2048lab.evaluation import corner_policy, evaluate, random_policy
from g2048lab.learners.ntuple.network import (
    NETWORK_BYTES,
    TUPLE_LAYOUTS,
    NTupleConfig,
    NTupleNetwork,
    check_memory,
    network_bytes,
    pack_boards,
    unpack_boards,
)
from g2048lab.learners.ntuple.ntuple_learner import NTupleAgent

from . import reference

SMALL = "5x4"


def small_network(seed=0, **config) -> NTupleNetwork:
    """One training thread and TD(0) (each afterstate updated at the next move) unless told:
    its games and weights are then exactly reproducible, and checked by hand."""
    config = {"threads": 1, "td_lambda": 0.0, "td_horizon": 1, **config}
    return NTupleNetwork(NTupleConfig(tuples=SMALL, seed=seed, **config))


@pytest.fixture(scope="module")
def random_weights() -> NTupleNetwork:
    """A "5x4" network with random weights, so that every lookup matters."""
    network = small_network()
    network.weights[:] = np.random.default_rng(0).normal(0, 100, network.weights.shape)
    return network


@pytest.fixture(scope="module")
def trained() -> NTupleNetwork:
    """The standard "4x6" network after 300k training moves (about 0.3 s)."""
    network = NTupleNetwork(NTupleConfig(seed=1, threads=1))
    network.train(300_000)
    return network


def random_boards(n: int, seed: int = 0, top: int = 12) -> np.ndarray:
    """(n, 4, 4) uint8 boards with about a third of the cells empty."""
    rng = np.random.default_rng(seed)
    boards = rng.integers(1, top + 1, (n, 4, 4)).astype(np.uint8)
    boards[rng.random((n, 4, 4)) < 0.35] = 0
    return boards


def images(board: np.ndarray) -> list[np.ndarray]:
    """The 8 rotations and reflections of a (4, 4) board."""
    rotations = [np.rot90(board, k) for k in range(4)]
    return rotations + [np.fliplr(r) for r in rotations]


def reference_value(network: NTupleNetwork, board: np.ndarray) -> float:
    """V by the definition: each tuple read on each image, digit k = exponent on cell k."""
    total = 0.0
    for image in images(board):
        cells = image.reshape(16).astype(np.int64)
        for t, tuple_cells in enumerate(TUPLE_LAYOUTS[network.config.tuples]):
            index = sum(int(cells[c]) << (4 * k) for k, c in enumerate(tuple_cells))
            total += float(network.weights[t, index])
    return total


def reference_features(network: NTupleNetwork, board: np.ndarray) -> list[tuple[int, int]]:
    """The (tuple, index) of each of the board's features, repeats included."""
    out = []
    for image in images(board):
        cells = image.reshape(16).astype(np.int64)
        for t, tuple_cells in enumerate(TUPLE_LAYOUTS[network.config.tuples]):
            out.append((t, sum(int(cells[c]) << (4 * k) for k, c in enumerate(tuple_cells))))
    return out


def set_game(network: NTupleNetwork, board, prev=None, score=0, length=0) -> None:
    """Put the network's training game at ``board`` (lists of exponents)."""
    state = network.state_dict()
    state["board"] = np.array(board, dtype=np.uint8)
    state["has_prev"] = prev is not None
    state["prev_afterstate"] = np.array(prev if prev is not None else board, dtype=np.uint8)
    state["score"] = score
    state["length"] = length
    network.load_state_dict(state)


# --- boards and lookups ------------------------------------------------------------------------


def test_pack_round_trip_and_layout():
    boards = random_boards(50, top=15)
    assert np.array_equal(unpack_boards(pack_boards(boards)), boards)
    one = np.zeros((1, 4, 4), np.uint8)
    one[0, 0, :2] = [1, 2]
    one[0, 3, 3] = 15
    assert int(pack_boards(one)[0]) == 0x21 | (15 << 60)  # cell i in bits 4i..4i+3


def test_network_size():
    plain = NTupleConfig(tuples="4x6", coherence=False)
    assert network_bytes(plain) == 4 * 16**6 * 4 == 268_435_456 and plain.features == 32
    # the default: "auto" is 5x6 on 4x4, with TC's E and A beside each weight
    assert NETWORK_BYTES == network_bytes(NTupleConfig()) == 3 * 5 * 16**6 * 4 == 1_006_632_960
    assert NTupleConfig().features == 40
    five = games.get("2048-5x5")  # and 4x6 elsewhere: 6 tuples on 5x5
    assert network_bytes(NTupleConfig(), five) == network_bytes(NTupleConfig(tuples="4x6"), five)
    assert network_bytes(NTupleConfig(tuples=SMALL, coherence=False)) == 5 * 16**4 * 4


def test_symmetric_boards_have_the_same_value(random_weights):
    for board in random_boards(20, seed=1):
        values = random_weights.values(np.stack(images(board)))
        np.testing.assert_allclose(values, values[0], rtol=1e-5, atol=1e-2)


def test_values_match_the_reference_lookup(random_weights):
    boards = random_boards(30, seed=2, top=15)
    expected = [reference_value(random_weights, b) for b in boards]
    np.testing.assert_allclose(random_weights.values(boards), expected, rtol=1e-5, atol=1e-2)


def test_move_values_are_reward_plus_value_and_minus_inf_when_illegal(random_weights):
    boards = random_boards(30, seed=3)
    boards[0] = [[1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6], [4, 5, 6, 7]]  # no legal move
    q = random_weights.move_values(boards)
    legal = legal_mask(boards)
    assert np.array_equal(np.isneginf(q), ~legal)
    for action in range(4):
        after, reward, _ = slide(boards, action)
        expected = reward + random_weights.values(after)
        np.testing.assert_allclose(q[legal[:, action], action], expected[legal[:, action]], 1e-5)
    actions = random_weights.greedy_actions(boards)
    assert actions[0] == -1
    assert np.array_equal(actions[1:], np.argmax(q[1:], axis=1))


def test_moves_with_the_largest_tile_the_tables_hold(random_weights):
    boards = random_boards(200, seed=4, top=14)
    boards[np.arange(200), np.arange(200) % 4, np.arange(200) // 4 % 4] = 15  # one 32768 each
    q = random_weights.move_values(boards)
    for action in range(4):
        after, reward, moved = slide(boards, action)
        expected = np.where(moved, reward + random_weights.values(after), -np.inf)
        np.testing.assert_allclose(q[:, action], expected, rtol=1e-5)


def test_a_tile_beyond_the_tables_is_refused_by_the_network_downgraded_by_search(random_weights):
    board = np.zeros((2, 4, 4), np.uint8)
    board[1, 2, 3] = 16
    with pytest.raises(ValueError, match=r"board 1 holds the tile 2\*\*16 = 65536.*0\.\.15"):
        random_weights.values(board)
    board[1, 2, 3] = 15
    board[1, 2, 2] = 15  # two 32768s side by side: moving LEFT or RIGHT would make 65536
    with pytest.raises(ValueError, match="board 1 would create the tile 65536"):
        random_weights.move_values(board)
    # the agent's search values such boards by tile-downgrading (downgrade.py) and plays on
    actions = expectimax_actions(board, NTupleAgent(random_weights).value_model(), 2)
    assert actions[0] == -1 and legal_mask(board)[1, actions[1]]  # board 0 is empty: no move


# --- config and memory -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, message",
    [
        ({"learning_rate": 0}, "learning_rate must be in"),
        ({"learning_rate": float("nan")}, "learning_rate must be in"),
        ({"optimistic_init": -1}, "optimistic_init must be"),
        ({"tuples": "9x9"}, "unknown tuples layout '9x9'; use one of"),
        ({"seed": -1}, "seed must be"),
    ],
)
def test_config_errors_say_what_to_do(config, message):
    with pytest.raises(ValueError, match=message):
        NTupleConfig(**config)


def test_check_memory_refuses_more_than_is_free():
    check_memory(1)
    with pytest.raises(MemoryError, match=r"needs 1,000,000,000 MB but only [\d,]+ MB is free"):
        check_memory(10**15)


# --- TD(0) by hand -----------------------------------------------------------------------------


def test_one_move_updates_exactly_the_previous_afterstates_weights():
    network = small_network(learning_rate=0.1)
    prev = [[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 3, 0], [0, 0, 0, 0]]
    board = [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 3, 0], [0, 0, 0, 1]]
    set_game(network, board, prev=prev, score=100, length=7)
    stats = network.train(1)
    # all weights are 0, so the greedy move is the one with the largest reward:
    # LEFT and RIGHT merge the two 2s (reward 4); RIGHT comes first in Action order
    assert stats.updates == 1 and stats.td_error_sum == pytest.approx(4.0)
    step = np.float32(0.1 / 40) * np.float32(4.0)
    expected = np.zeros_like(network.weights)
    for t, index in reference_features(network, np.array(prev, np.uint8)):
        expected[t, index] += step
    assert np.array_equal(network.weights, expected)
    state = network.state_dict()
    after_right = [[0, 0, 0, 2], [0, 0, 0, 2], [0, 0, 0, 3], [0, 0, 0, 1]]
    assert state["prev_afterstate"].tolist() == after_right
    assert state["score"] == 104 and state["length"] == 8
    assert (state["board"] != np.array(after_right)).sum() == 1  # one tile spawned


def test_the_last_afterstate_of_a_game_moves_toward_zero():
    network = small_network(learning_rate=0.5, optimistic_init=4000.0)
    # RIGHT and DOWN are legal (reward 0, same value: RIGHT); whatever spawns, the game is over
    board = [[7, 9, 7, 3], [8, 5, 6, 4], [5, 4, 1, 7], [6, 7, 4, 0]]
    set_game(network, board, score=1234, length=99)
    stats = network.train(1)
    assert stats.scores.tolist() == [1234] and stats.lengths.tolist() == [100]
    assert stats.max_tiles.tolist() == [512]
    assert stats.updates == 1 and stats.td_error_sum == pytest.approx(4000.0)
    start = np.float32(4000.0 / 40)
    step = np.float32(0.5 / 40) * np.float32(-4000.0)
    expected = np.full_like(network.weights, start)
    after = np.array(board, np.uint8)
    after[3] = [0, 6, 7, 4]
    for t, index in reference_features(network, after):
        expected[t, index] += step
    assert np.array_equal(network.weights, expected)
    assert network.games == 1
    assert not network.state_dict()["has_prev"]  # a new game has started


def test_a_game_reaching_the_tables_range_ends_and_is_counted():
    network = small_network()
    set_game(network, [[15, 15, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], score=7)
    stats = network.train(3)
    assert stats.hit_table_range and stats.range_games == 1
    assert stats.scores.tolist()[0] == 7 and stats.max_tiles.tolist()[0] == 32768
    assert stats.moves == 3 and network.state_dict()["length"] == 3  # the next game went on
    assert np.abs(network.weights).max() < 1e6


# --- training: chunks, resumption, learning ----------------------------------------------------


def test_training_in_chunks_equals_one_long_call():
    whole, chunked = small_network(seed=5), small_network(seed=5)
    one = whole.train(20_000)
    parts = [chunked.train(k) for k in (1, 0, 2_999, 7_000, 10_000)]
    assert np.array_equal(whole.weights, chunked.weights)
    for name in ("scores", "max_tiles", "lengths"):
        assert np.array_equal(getattr(one, name), np.concatenate([getattr(p, name) for p in parts]))
    assert one.updates == sum(p.updates for p in parts)
    assert one.td_error_sum == pytest.approx(sum(p.td_error_sum for p in parts))
    a, b = whole.state_dict(), chunked.state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_a_loaded_network_continues_bit_exactly():
    network = small_network(seed=3, learning_rate=0.05)
    network.train(5_000)
    saved = network.state_dict()
    later = network.train(5_000)
    resumed = NTupleNetwork.from_state_dict(saved)
    assert resumed.config == network.config
    again = resumed.train(5_000)
    assert np.array_equal(resumed.weights, network.weights)
    assert np.array_equal(again.scores, later.scores)
    assert again.td_error_sum == later.td_error_sum and again.updates == later.updates
    assert resumed.moves == network.moves == 10_000 and resumed.games == network.games


def test_loading_another_layout_says_what_to_create():
    state = small_network().state_dict()
    state["tuples"] = "4x6"
    with pytest.raises(ValueError, match="create NTupleNetwork"):
        small_network().load_state_dict(state)
    with pytest.raises(ValueError, match="weights missing"):
        small_network().load_state_dict({k: v for k, v in state.items() if k != "weights"})


def test_training_games_look_like_2048(trained):
    stats = trained.train(20_000)
    assert len(stats.scores) > 5 and stats.moves == 20_000
    assert (stats.lengths > 14).all() and (stats.scores > 0).all()
    assert set(np.log2(stats.max_tiles).tolist()) <= set(range(4, 16))
    assert 0 < stats.mean_td_error < 10_000


def test_greedy_play_after_a_few_seconds_beats_simple_policies(trained):
    greedy = evaluate(lambda obs: trained.greedy_actions(obs["board"]), 50, seed=11)
    baseline = max(
        evaluate(random_policy(0), 50, seed=11).scores.mean(),
        evaluate(corner_policy, 50, seed=11).scores.mean(),
    )
    assert greedy.scores.mean() > 2 * baseline, (greedy.scores.mean(), baseline)


# --- expectimax (engine.search over the network's values) ---------------------------------------


def played_boards(network: NTupleNetwork, n: int) -> np.ndarray:
    """Boards from the network's own training games: realistic positions with legal moves."""
    boards = []
    for _ in range(n):
        network.train(37)
        boards.append(network.board)
    return np.stack(boards)


def search_values(network: NTupleNetwork, boards: np.ndarray, depth: int) -> np.ndarray:
    return expectimax_values(boards, NTupleAgent(network).value_model(), depth)


def search_actions(network: NTupleNetwork, boards: np.ndarray, depth: int) -> np.ndarray:
    return expectimax_actions(boards, NTupleAgent(network).value_model(), depth)


def test_depth_one_search_is_greedy(trained):
    boards = played_boards(trained, 40)
    assert np.array_equal(search_actions(trained, boards, 1), trained.greedy_actions(boards))
    np.testing.assert_allclose(search_values(trained, boards, 1), trained.move_values(boards))


def reference_chance(network, after: np.ndarray, depth: int) -> float:
    """C_depth of an afterstate by the definition (see ``engine.search``)."""
    if depth == 1:
        return float(network.values(after[None])[0])
    total, empty = 0.0, 0
    for r, c in itertools.product(range(4), range(4)):
        if after[r, c]:
            continue
        empty += 1
        for tile, p in ((1, 0.9), (2, 0.1)):
            state = after.copy()
            state[r, c] = tile
            total += p * max([0.0] + reference_q(network, state, depth - 1))
    return total / empty


def reference_q(network, board: np.ndarray, depth: int) -> list[float]:
    """Q_depth of each legal move of a board."""
    out = []
    for action in range(4):
        after, reward, changed = reference.move(board.tolist(), action)
        if changed:
            out.append(reward + reference_chance(network, np.array(after, np.uint8), depth))
    return out


@pytest.mark.parametrize("depth, positions", [(2, 6), (3, 2)])
def test_search_values_match_a_reference_expectimax(trained, depth, positions):
    boards = played_boards(trained, 12)
    boards = boards[np.argsort((boards == 0).sum(axis=(1, 2)))[:positions]]  # few empty cells
    q = search_values(trained, boards, depth)
    for board, row in zip(boards, q):
        expected = [
            reward + reference_chance(trained, np.array(after, np.uint8), depth)
            if changed
            else -np.inf
            for after, reward, changed in (reference.move(board.tolist(), a) for a in range(4))
        ]
        np.testing.assert_allclose(row, expected, rtol=1e-5)
    assert np.array_equal(search_actions(trained, boards, depth), np.argmax(q, axis=1))


def test_search_with_no_legal_move_returns_minus_one(trained):
    board = np.array([[[1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6], [4, 5, 6, 7]]], np.uint8)
    assert search_actions(trained, board, 2).tolist() == [-1]
    with pytest.raises(ValueError, match="depth must be an int >= 1"):
        search_actions(trained, board, 0)
