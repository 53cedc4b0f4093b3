"""The rules in g2048lab.engine.rules: literal examples, a reference, symmetries, spawns."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from g2048lab.engine.rules import (
    LEGAL_TABLE,
    MOVE_TABLE,
    Action,
    legal_mask,
    new_boards,
    render,
    sample_legal,
    slide,
    spawn,
    to_exponents,
    to_values,
)

from . import reference

# Few distinct small exponents make merges common; the wide range reaches tiles
# past 2**15, which take the engine's slow path instead of its line tables.
cells = st.one_of(st.integers(0, 3), st.integers(0, 20))
boards = arrays(np.uint8, (4, 4), elements=cells)
batches = arrays(np.uint8, st.tuples(st.integers(1, 6), st.just(4), st.just(4)), elements=cells)


def left(row):
    board = np.zeros((1, 4, 4), dtype=np.uint8)
    board[0, 0] = row
    after, reward, moved = slide(board, Action.LEFT)
    return after[0, 0].tolist(), int(reward[0]), bool(moved[0])


@pytest.mark.parametrize(
    "row, expected, reward",
    [
        ([1, 1, 1, 1], [2, 2, 0, 0], 8),
        ([1, 1, 1, 0], [2, 1, 0, 0], 4),
        ([2, 2, 3, 3], [3, 4, 0, 0], 24),
        ([0, 1, 0, 1], [2, 0, 0, 0], 4),
        ([1, 2, 3, 4], [1, 2, 3, 4], 0),
        ([0, 0, 0, 1], [1, 0, 0, 0], 0),
        ([2, 1, 1, 0], [2, 2, 0, 0], 4),  # a merged tile does not merge again in the same move
        ([16, 16, 17, 0], [17, 17, 0, 0], 2**17),  # past 2**15: the slow path
        ([17, 17, 0, 0], [18, 0, 0, 0], 2**18),
    ],
)
def test_literal_left_moves(row, expected, reward):
    assert left(row) == (expected, reward, expected != row)


def test_action_order_is_up_right_down_left():
    assert [a.name for a in Action] == ["UP", "RIGHT", "DOWN", "LEFT"]
    assert [int(a) for a in Action] == [0, 1, 2, 3]
    board = np.zeros((4, 4, 4), dtype=np.uint8)
    board[:, 1, 1] = 1
    after, _, _ = slide(board, np.arange(4))
    assert after[Action.UP, 0, 1] == 1
    assert after[Action.RIGHT, 1, 3] == 1
    assert after[Action.DOWN, 3, 1] == 1
    assert after[Action.LEFT, 1, 0] == 1


def test_line_tables_agree_with_reference_on_every_line():
    for code in range(65536):
        line = [(code >> (4 * i)) & 15 for i in range(4)]
        if 15 in line:
            continue  # the engine never uses the tables for such lines
        out, score = reference.slide_line(line)
        entry = int(MOVE_TABLE[code])
        assert [(entry >> (4 * i)) & 15 for i in range(4)] == out
        assert (entry >> 16) & 0xFFFFFF == score
        merges = sum(1 for v in line if v) - sum(1 for v in out if v)  # each merge removes a tile
        assert (entry >> 48) & 0xFF == merges
        flags = int(LEGAL_TABLE[code])
        assert bool(flags & 1) == (out != line)
        assert bool(flags & 2) == (reference.slide_line(line[::-1])[0] != line[::-1])


@settings(max_examples=300, deadline=None)
@given(boards)
def test_slide_matches_reference_for_every_action(board):
    for action in Action:
        after, reward, moved = slide(board[None], action)
        ref_board, ref_score, ref_moved = reference.move(board.tolist(), action)
        assert after[0].tolist() == ref_board
        assert reward[0] == ref_score
        assert moved[0] == ref_moved


@settings(max_examples=300, deadline=None)
@given(batches)
def test_legal_mask_matches_reference(batch):
    mask = legal_mask(batch)
    assert mask.shape == (len(batch), 4) and mask.dtype == np.bool_
    assert mask.tolist() == [reference.legal(b.tolist()) for b in batch]


@settings(max_examples=200, deadline=None)
@given(batches, st.data())
def test_batched_slide_is_per_board_slide(batch, data):
    actions = np.array(
        data.draw(st.lists(st.integers(0, 3), min_size=len(batch), max_size=len(batch)))
    )
    after, rewards, moved = slide(batch, actions)
    for i, (b, a) in enumerate(zip(batch, actions)):
        one = slide(b[None], a)
        assert (after[i] == one[0][0]).all() and rewards[i] == one[1][0] and moved[i] == one[2][0]


@settings(max_examples=200, deadline=None)
@given(boards)
def test_rotating_the_board_rotates_the_move(board):
    # A clockwise quarter turn maps UP->RIGHT, RIGHT->DOWN, DOWN->LEFT, LEFT->UP.
    turned = np.rot90(board, -1).copy()
    for action in Action:
        after, reward, _ = slide(board[None], action)
        after_turned, reward_turned, _ = slide(turned[None], (action + 1) % 4)
        assert (after_turned[0] == np.rot90(after[0], -1)).all()
        assert reward_turned[0] == reward[0]
    assert (legal_mask(turned[None])[0] == np.roll(legal_mask(board[None])[0], 1)).all()


@settings(max_examples=200, deadline=None)
@given(boards)
def test_mirroring_swaps_left_and_right(board):
    mirrored = board[:, ::-1].copy()
    for action, mirrored_action in [(3, 1), (1, 3), (0, 0), (2, 2)]:
        after, reward, _ = slide(board[None], action)
        after_m, reward_m, _ = slide(mirrored[None], mirrored_action)
        assert (after_m[0] == after[0][:, ::-1]).all() and reward_m[0] == reward[0]


def test_slide_does_not_touch_its_input():
    board = np.array([[[1, 1, 0, 0]] * 4], dtype=np.uint8)
    copy = board.copy()
    slide(board, Action.LEFT)
    spawn(board, np.random.default_rng(0))
    assert (board == copy).all()


def test_game_over_has_no_legal_move():
    dead = np.array([[[1, 2, 1, 2], [2, 1, 2, 1], [1, 2, 1, 2], [2, 1, 2, 1]]], dtype=np.uint8)
    assert not legal_mask(dead).any()
    assert not slide(np.repeat(dead, 4, 0), np.arange(4))[2].any()
    one_move = dead.copy()
    one_move[0, 3, 3] = 0  # only RIGHT and DOWN can fill the hole
    assert legal_mask(one_move)[0].tolist() == [False, True, True, False]


def test_spawn_statistics():
    # 60,000 spawns on a board with 6 empty cells: the share of 4s is 0.1 and the
    # cell is uniform over the empty ones (fixed seed: the test is deterministic).
    board = np.array([[1, 0, 2, 0], [3, 4, 0, 5], [0, 6, 7, 8], [9, 0, 10, 0]], dtype=np.uint8)
    batch = np.repeat(board[None], 60_000, axis=0)
    out = spawn(batch, np.random.default_rng(12345))
    changed = out != batch
    assert (changed.sum(axis=(1, 2)) == 1).all()
    assert (batch[changed] == 0).all()
    values = out[changed]
    assert set(np.unique(values)) == {1, 2}
    fours = int((values == 2).sum())
    assert stats.binomtest(fours, len(values), 0.1).pvalue > 1e-3
    counts = changed.reshape(len(batch), 16).sum(axis=0)[board.reshape(16) == 0]
    assert len(counts) == 6
    assert stats.chisquare(counts).pvalue > 1e-3


def test_spawn_leaves_full_boards_alone():
    full = np.arange(1, 17, dtype=np.uint8).reshape(1, 4, 4)
    assert (spawn(full, np.random.default_rng(0)) == full).all()


def test_new_boards_have_two_small_tiles_and_follow_the_seed():
    a = new_boards(1000, np.random.default_rng(7))
    b = new_boards(1000, np.random.default_rng(7))
    c = new_boards(1000, np.random.default_rng(8))
    assert a.shape == (1000, 4, 4) and a.dtype == np.uint8
    assert ((a > 0).sum(axis=(1, 2)) == 2).all()
    assert set(np.unique(a)) <= {0, 1, 2}
    assert (a == b).all() and not (a == c).all()


def test_sample_legal_is_uniform_over_legal_moves():
    mask = np.tile([[True, False, True, True]], (30_000, 1))
    actions = sample_legal(mask, np.random.default_rng(0))
    counts = np.bincount(actions, minlength=4)
    assert counts[1] == 0
    assert stats.chisquare(counts[[0, 2, 3]]).pvalue > 1e-3
    assert sample_legal(np.zeros((2, 4), bool), np.random.default_rng(0)).tolist() == [-1, -1]


def test_value_conversions_round_trip():
    values = np.array([0, 2, 4, 2048, 131072])
    assert to_exponents(values).tolist() == [0, 1, 2, 11, 17]
    assert to_values(to_exponents(values)).tolist() == values.tolist()
    with pytest.raises(ValueError, match="powers of two"):
        to_exponents([3])
    with pytest.raises(ValueError, match="powers of two"):
        to_exponents([1])


def test_render_shows_tile_values():
    board = to_exponents([[2, 0, 0, 0], [0, 4, 0, 0], [0, 0, 8, 0], [0, 0, 0, 2048]])
    lines = render(board).splitlines()
    assert lines[0].split() == ["2", ".", ".", "."]
    assert lines[3].split() == [".", ".", ".", "2048"]


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((4, 4), np.uint8), r"shape \(N, 4, 4\)"),
        (np.zeros((1, 4, 4), np.int64), "uint8"),
        (np.full((1, 4, 4), 40, np.uint8), "exponents above"),
    ],
)
def test_bad_boards_say_what_is_wrong(bad, message):
    with pytest.raises(ValueError, match=message):
        legal_mask(bad)


def test_bad_actions_say_what_is_wrong():
    with pytest.raises(ValueError, match="0..3"):
        slide(np.zeros((1, 4, 4), np.uint8), 4)
