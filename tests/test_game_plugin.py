"""The game seam: a game described in this file alone (2048 on a 3x3 board whose spawns are a
4 half the time and which starts from one tile) is trained by both learners from the command
line, evaluated, searched, shown in the dashboard and exported, touching no package file."""

from __future__ import annotations

import gc
import json

import numpy as np
import pytest

from g2048lab import games
from g2048lab.cli import main
from g2048lab.dashboard import Dashboard, StoreSource
from g2048lab.engine.rules import legal_mask
from g2048lab.learners.loading import load_agent
from g2048lab.store import RunStore

FOURS = games.register(
    games.Game(
        "fours-3x3",
        rows=3,
        cols=3,
        four_probability=0.5,
        start_tiles=1,
        reach_tiles=(64, 128),
        eval_tiles=(32, 64, 128, 256),
    )
)
COMMON = ["--game", FOURS.name, "--device", "cpu", "--threads", "1", "--quiet"]
PPO_TINY = ["--preset", "tiny", "--ppo.num-envs", "16", "--ppo.rollout-steps", "16"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A runs folder holding a PPO run and an n-tuple run of the game, trained by the CLI."""
    runs = str(tmp_path_factory.mktemp("runs"))
    where = ["--runs-dir", runs]
    assert main(["train", *COMMON, *PPO_TINY, "--steps", "512", *where, "--run-name", "p"]) == 0
    ntuple = ["--learner", "ntuple", "--ntuple.tuples", "5x4", "--steps", "3000"]
    assert main(["train", *COMMON, *ntuple, *where, "--run-name", "n"]) == 0
    return runs


def first_boards(store: RunStore, name: str) -> list[np.ndarray]:
    return [store.load_game(g.id).boards[0] for g in store.games(name)]


@pytest.mark.parametrize("name", ["p", "n"])
def test_both_learners_train_the_game_and_record_it(runs, name, capsys):
    store = RunStore(runs, create=False)
    run = store.get_run(name)
    assert run.status == "finished" and run.config["game"] == FOURS.name
    starts = first_boards(store, name)
    assert starts, "the run recorded no game"
    for board in starts:  # the game's own start: one tile on a 3x3 board
        assert board.shape == (3, 3) and np.count_nonzero(board) == 1
    metrics = store.metrics(name)[-1]
    assert {"rollout/reach_64", "rollout/reach_128"} <= set(metrics)  # the game's report tiles
    capsys.readouterr()
    assert main(["runs", "--runs-dir", runs, "--json"]) == 0
    listed = {r["name"]: r["game"] for r in json.loads(capsys.readouterr().out)}
    assert listed[name] == FOURS.name
    del store
    gc.collect()


@pytest.mark.parametrize("name", ["p", "n"])
def test_a_checkpoint_of_the_game_is_evaluated_searched_and_played_on_it(runs, name, capsys):
    loaded = load_agent(f"{runs}/{name}")
    assert loaded.game is FOURS
    capsys.readouterr()
    assert main(["eval", f"{runs}/{name}", "--games", "8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["game"] == FOURS.name
    assert set(result["tile_share"]) == {str(t) for t in FOURS.eval_tiles}
    assert main(["eval", f"{runs}/{name}", "--games", "2", "--search", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["game"] == FOURS.name
    board = np.array([[[1, 2, 0], [0, 0, 0], [0, 0, 0]]], np.uint8)
    move = loaded.agent.policy()({"board": board, "action_mask": legal_mask(board)})
    assert move.shape == (1,) and legal_mask(board)[0, move[0]]
    assert main(["play", "--checkpoint", f"{runs}/{name}", "--game", "2048-4x4"]) == 2
    assert "plays fours-3x3, not 2048-4x4" in capsys.readouterr().err


def test_the_games_spawn_rule_holds_in_play(capsys):
    """Random play on the game: about half of the spawned tiles are 4s (the 4x4 game: 10%)."""
    from g2048lab.engine.env import VecEnv

    env = VecEnv(64, seed=1, game=FOURS)
    obs, _ = env.reset()
    fours = np.count_nonzero(obs["board"] == 2) / np.count_nonzero(obs["board"])
    assert 0.35 < fours < 0.65  # 64 start tiles, each a 4 with probability 0.5


def test_the_dashboard_and_exports_show_the_games_board(runs, tmp_path):
    store = RunStore(runs, create=False)
    dashboard = Dashboard(StoreSource(store, "p"))
    assert FOURS.name in dashboard.header.value
    assert 'data-shape="3x3"' in dashboard.game_panel.game.board.value
    dashboard.close()
    page = tmp_path / "p.html"
    assert main(["export", "p", "--runs-dir", runs, "--html", str(page)]) == 0
    assert page.read_text().count('<div class="tile"></div>') == 9
    del store
    gc.collect()
