"""The engine on boards other than 4x4: rules against a slow reference, spawns, VecEnv."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from g2048lab import games
from g2048lab.engine.env import Game2048Env, VecEnv
from g2048lab.engine.rules import (
    Action,
    legal_mask,
    line_cells,
    new_boards,
    render,
    sample_legal,
    slide,
    spawn,
)
from g2048lab.evaluation import EvalResult, corner_policy, evaluate, random_policy, record_game
from g2048lab.recording import GameRecord

SHAPES = [(3, 3), (4, 4), (5, 5), (3, 5), (6, 6), (2, 3), (4, 3), (8, 2)]


def reference_slide(line: list[int]) -> tuple[list[int], int]:
    """Slide exponents toward index 0; return (new line, game score of the merges)."""
    tiles = [v for v in line if v]
    out, score, i = [], 0, 0
    while i < len(tiles):
        if i + 1 < len(tiles) and tiles[i] == tiles[i + 1]:
            out.append(tiles[i] + 1)
            score += 2 ** (tiles[i] + 1)
            i += 2
        else:
            out.append(tiles[i])
            i += 1
    return out + [0] * (len(line) - len(out)), score


def reference_move(board: np.ndarray, action: int) -> tuple[np.ndarray, int, bool]:
    """(new board, score, changed) of one move on an (R, C) board, by turning the board so
    that the move is LEFT, sliding its rows, and turning it back."""
    turns = {Action.LEFT: 0, Action.UP: 1, Action.RIGHT: 2, Action.DOWN: 3}[Action(action)]
    turned = np.rot90(board, turns)  # a counter-clockwise quarter turn takes the top to the left
    rows = [reference_slide([int(v) for v in row]) for row in turned]
    after = np.rot90(np.array([row for row, _ in rows], dtype=np.uint8), -turns)
    return after, sum(score for _, score in rows), not np.array_equal(after, board)


def random_boards(shape: tuple[int, int], n: int, seed: int) -> np.ndarray:
    """(n, R, C) boards: mostly small exponents (merges are common), some past 2**15
    (the engine's slow path), some boards full."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 4, (n, *shape))
    wide = rng.integers(0, 21, (n, *shape))
    boards = np.where(rng.random((n, 1, 1)) < 0.7, small, wide)
    boards[: n // 10] = rng.integers(1, 5, (n // 10, *shape))  # full: legality from merges
    return boards.astype(np.uint8)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_slide_and_legal_mask_match_the_reference(shape):
    boards = random_boards(shape, 150, seed=sum(shape))
    mask = legal_mask(boards)
    assert mask.shape == (len(boards), 4)
    for action in Action:
        after, rewards, moved = slide(boards, action)
        assert after.shape == boards.shape and after.dtype == np.uint8
        for i, board in enumerate(boards):
            expected, score, changed = reference_move(board, action)
            assert np.array_equal(after[i], expected), (board, action)
            assert rewards[i] == score and moved[i] == changed and mask[i, action] == changed


def test_literal_moves_on_a_3x5_board():
    board = np.array([[[1, 1, 1, 0, 2], [0, 0, 0, 0, 0], [3, 0, 3, 0, 3]]], dtype=np.uint8)
    after, reward, _ = slide(board, Action.LEFT)
    assert after[0].tolist() == [[2, 1, 2, 0, 0], [0, 0, 0, 0, 0], [4, 3, 0, 0, 0]]
    assert reward[0] == 4 + 16
    after, reward, _ = slide(board, Action.DOWN)
    assert after[0].tolist() == [[0, 0, 0, 0, 0], [1, 0, 1, 0, 2], [3, 1, 3, 0, 3]]
    assert reward[0] == 0
    assert legal_mask(board)[0].tolist() == [True, True, True, True]
    # a 3-cell line full to the far wall cannot move there, though the 4-cell tables pad it
    full_right = np.array([[[0, 1, 2], [0, 0, 3], [0, 2, 1]]], dtype=np.uint8)
    assert legal_mask(full_right)[0].tolist() == [True, False, True, True]


def test_line_cells_read_each_line_from_the_wall_moved_to():
    lines = line_cells(2, 3)  # cells 0 1 2 / 3 4 5
    assert lines.shape == (4, 3, 3)
    assert lines[Action.LEFT].tolist() == [[0, 1, 2], [3, 4, 5], [-1, -1, -1]]
    assert lines[Action.RIGHT].tolist() == [[2, 1, 0], [5, 4, 3], [-1, -1, -1]]
    assert lines[Action.UP].tolist() == [[0, 3, -1], [1, 4, -1], [2, 5, -1]]
    assert lines[Action.DOWN].tolist() == [[3, 0, -1], [4, 1, -1], [5, 2, -1]]
    with pytest.raises(ValueError, match="2..8 rows"):
        line_cells(1, 4)


def test_spawn_follows_the_games_four_probability_on_its_board():
    game = games.Game("test-quarter-fours-3x4", 3, 4, four_probability=0.25, start_tiles=3)
    board = np.array([[1, 0, 2, 0], [3, 0, 0, 5], [0, 6, 7, 8]], dtype=np.uint8)
    batch = np.repeat(board[None], 20_000, axis=0)
    out = spawn(batch, np.random.default_rng(1), game)
    changed = out != batch
    assert (changed.sum(axis=(1, 2)) == 1).all() and (batch[changed] == 0).all()
    fours = int((out[changed] == 2).sum())
    assert stats.binomtest(fours, changed.sum(), 0.25).pvalue > 1e-3
    counts = changed.reshape(len(batch), -1).sum(axis=0)[board.reshape(-1) == 0]
    assert len(counts) == 5 and stats.chisquare(counts).pvalue > 1e-3
    starts = new_boards(2000, np.random.default_rng(2), game)
    assert starts.shape == (2000, 3, 4)
    assert ((starts > 0).sum(axis=(1, 2)) == 3).all() and set(np.unique(starts)) <= {0, 1, 2}
    with pytest.raises(ValueError, match=r"shape \(N, 3, 4\)"):
        spawn(np.zeros((1, 4, 4), np.uint8), np.random.default_rng(0), game)


def test_vec_env_plays_5x5_games_to_the_end():
    game = games.get("2048-5x5")
    env = VecEnv(8, seed=3, game=game)
    assert env.single_observation_space["board"].shape == (5, 5)
    assert env.single_observation_space["board"].high.max() == game.max_exponent
    obs, _ = env.reset()
    assert obs["board"].shape == (8, 5, 5)
    assert ((obs["board"] > 0).sum(axis=(1, 2)) == 2).all()
    rng = np.random.default_rng(0)
    finished, moves = 0, 0
    while finished < 8:
        actions = sample_legal(obs["action_mask"], rng)
        before = obs["board"]
        obs, _, terminated, _, info = env.step(actions)
        moves += 1
        for n in range(8):
            after, score, changed = reference_move(before[n], actions[n])
            assert changed and info["score_gain"][n] == score
            board = info["final_board"][n] if terminated[n] else obs["board"][n]
            spawned = board != after  # the move's board plus one new 2 or 4
            assert spawned.sum() == 1 and after[spawned] == 0 and board[spawned] in (1, 2)
            if terminated[n]:
                assert not any(reference_move(board, a)[2] for a in Action)
                assert info["episode"]["max_tile"][n] == 2 ** int(board.max())
                assert ((obs["board"][n] > 0).sum()) == 2  # the next game has begun
        finished += int(terminated.sum())
    assert moves > 100  # random play on 5x5 lasts longer than on 4x4


def test_vec_env_state_records_its_shape():
    env = VecEnv(2, seed=0, game="2048-3x3")
    env.reset()
    state = env.state_dict()
    assert state["boards"].shape == (2, 3, 3)
    other = VecEnv(2, seed=1, game="2048-3x3")
    other.load_state_dict(state)
    assert np.array_equal(other.boards, env.boards)
    with pytest.raises(ValueError, match="make the env with the saved game"):
        VecEnv(2, game="2048-4x4").load_state_dict(state)


def test_gymnasium_env_on_3x3_and_render():
    env = Game2048Env(game="2048-3x3", render_mode="ansi")
    board, info = env.reset(seed=0)
    assert board.shape == (3, 3) and env.observation_space.shape == (3, 3)
    done, steps = False, 0
    while not done:
        legal = np.flatnonzero(info["action_mask"])
        board, _, done, _, info = env.step(int(legal[0]))
        steps += 1
    assert board.shape == (3, 3) and not legal_mask(board[None]).any()
    assert len(env.render().splitlines()) == 4  # the score, then 3 rows
    assert render(np.zeros((2, 5), np.uint8)).splitlines()[0].split() == ["."] * 5


def test_no_game_means_the_default_4x4_game():
    assert new_boards(3, np.random.default_rng(0)).shape == (3, 4, 4)
    assert VecEnv(1).game.name == games.DEFAULT == "2048-4x4"


def test_evaluate_and_record_a_3x3_game_with_random_play():
    game = games.get("2048-3x3")
    result = evaluate(random_policy(0), 30, seed=1, game=game)
    summary = result.summary()
    assert summary["game"] == "2048-3x3" and summary["games"] == 30
    assert tuple(summary["tile_share"]) == game.eval_tiles
    assert (result.max_tiles >= 8).all() and result.max_tiles.max() <= 2**game.max_exponent
    assert 0 < summary["mean_length"] < 300  # a 3x3 board fills in tens of moves
    assert evaluate(random_policy(0), 30, seed=1, game="2048-3x3").scores.tolist() == (
        result.scores.tolist()
    )
    record = record_game(random_policy(2), seed=4, game=game)
    assert record.boards.shape == (record.length + 1, 3, 3) and record.shape == (3, 3)
    assert not legal_mask(record.boards[-1:]).any()
    again = GameRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again.boards.shape == record.boards.shape
    assert np.array_equal(again.boards, record.boards)


def test_a_recorded_game_written_before_games_reads_as_4x4():
    old = record_game(corner_policy, seed=0).to_dict()
    del old["shape"]
    assert GameRecord.from_dict(old).shape == (4, 4)
    assert EvalResult(np.array([4]), np.array([4]), np.array([1])).summary()["game"] == "2048-4x4"


def test_a_player_that_cannot_play_a_board_ends_that_game_and_it_is_counted():
    """A policy answers -1 for a board it cannot value (the n-tuple network's boards beyond
    its tables): that game ends there with its score so far, and the summary counts it."""

    def until_64(obs):  # the corner heuristic, giving up once a board holds a 64
        actions = corner_policy(obs)
        actions[obs["board"].reshape(len(actions), -1).max(axis=1) >= 6] = -1
        return actions

    result = evaluate(until_64, 40, seed=3, game="2048-3x3")
    assert 0 < result.ended_early < 40
    assert (result.max_tiles <= 64).all()  # no game went on past its first 64
    assert result.ended_early <= int((result.max_tiles == 64).sum())  # each ended at its 64
    assert result.summary()["ended_early"] == result.ended_early
