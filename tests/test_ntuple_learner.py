"""The n-tuple learner through the run: training, messages, checkpoints and exact resume,
eval with and without search, the CLI. The small "5x4" layout (1.3 MB) keeps it fast;
tests/test_ntuple.py tests the network itself."""

from __future__ import annotations

import json

import numpy as np
import pytest

from g2048lab.checkpoint import CheckpointError, save_checkpoint
from g2048lab.cli import main
from g2048lab.evaluation import evaluate, random_policy
from g2048lab.learners.loading import load_agent, load_checkpoint
from g2048lab.learners.ntuple.network import NTupleConfig
from g2048lab.learners.ntuple.ntuple_learner import ITERATION_MOVES
from g2048lab.trainer import Trainer, TrainerConfig

from .helpers import StopAfter, metric_trace

SMALL = NTupleConfig(tuples="5x4", threads=1)  # one thread: bit-exact resume


def config(iterations: int, **changes) -> TrainerConfig:
    settings = dict(
        learner="ntuple",
        learner_config=SMALL,
        device="cpu",
        threads=1,
        seed=5,
        total_env_steps=iterations * ITERATION_MOVES,
    )
    return TrainerConfig(**{**settings, **changes})


@pytest.fixture(scope="module")
def trained():
    """A run of 4 iterations (2 M moves), and its checkpoint halfway."""
    return Trainer(config(4)).run()


def test_it_learns_and_reports_through_the_run(trained):
    assert trained.state == "finished" and trained.env_steps == 4 * ITERATION_MOVES
    assert trained.episodes > 1000  # about 1,400 moves a game early on
    rows = list(trained.metrics)
    assert all(row["ntuple/td_error"] > 0 for row in rows)
    assert (
        rows[-1]["ntuple/games_per_s"] > 0
        and rows[-1]["ntuple/learning_rate"] == SMALL.learning_rate
    )
    update = trained.updates.latest()
    assert update.learner == "ntuple" and update.loss == pytest.approx(rows[-1]["ntuple/td_error"])
    legal = [v for v in update.move_values if v is not None]
    assert legal and update.value == max(legal)  # greedy: the best move's value
    assert sum(update.actions) == 1.0 and update.actions[int(np.argmax(update.actions))] == 1.0
    assert update.attention_weights is None and update.expert_usage == []
    assert trained.recorder.recent  # a greedy game recorded for replay


def test_a_resumed_run_continues_bit_exactly(tmp_path, trained):
    first = Trainer(config(4))
    first.subscribe(StopAfter(2))
    first.run()
    path = save_checkpoint(first.state_dict(), tmp_path / "half.pt")
    resumed = Trainer.from_checkpoint(path, threads=1)
    assert resumed.learner.options == first.learner.options and resumed.iteration == 2
    resumed.run()
    assert resumed.env_steps == trained.env_steps and resumed.episodes == trained.episodes
    assert np.array_equal(resumed.learner.network.weights, trained.learner.network.weights)
    assert resumed.best_score == trained.best_score


def test_eval_greedy_and_with_search_and_damage_in_words(tmp_path, trained, capsys):
    path = save_checkpoint(trained.state_dict(), tmp_path / "n.pt")
    assert main(["eval", str(path), "--games", "30", "--json"]) == 0
    greedy = json.loads(capsys.readouterr().out)
    assert greedy["learner"] == "ntuple" and greedy["play"] == "greedy"
    assert greedy["mean_score"] > 2500  # the corner heuristic scores about 2,300
    assert main(["eval", str(path), "--games", "30", "--search", "2", "--json"]) == 0
    searched = json.loads(capsys.readouterr().out)
    assert searched["play"] == "search depth 2" and searched["ms_per_move"] > 0
    assert main(["play", "--checkpoint", str(path), "--search", "2", "--no-watch", "--games",
                 "5", "--json"]) == 0  # fmt: skip
    played = json.loads(capsys.readouterr().out)
    assert set(played) == {"random", "corner", "ntuple search 2"}
    assert main(["eval", str(path), "--sampled"]) == 2
    assert "no move probabilities" in capsys.readouterr().err
    payload = load_checkpoint(path)
    payload["ntuple"]["weights"] = payload["ntuple"]["weights"][:, :10]
    save_checkpoint(payload, tmp_path / "cut.pt")
    with pytest.raises(
        CheckpointError, match=r"field 'ntuple.weights' is .* not float32 \(5, 65536\)"
    ):
        load_checkpoint(tmp_path / "cut.pt")


def test_the_cli_trains_it_and_refuses_distributed(tmp_path, capsys):
    assert main(["train", "--learner", "ntuple", "--distributed", "--steps", "10"]) == 2
    assert "trains in one process: drop --distributed" in capsys.readouterr().err


def test_a_game_played_with_search_is_recorded_for_the_replay_viewer(trained):
    from g2048lab.dashboard import ReplayViewer
    from g2048lab.engine.rules import slide
    from g2048lab.evaluation import record_game

    agent = trained.learner.agent()
    game = record_game(agent.search_policy(2), seed=7, move_values=agent.network.move_values)
    assert game.length > 100 and game.score == int(game.score_gains.sum())
    after, gains, moved = slide(game.boards[:-1], game.actions)  # each move as recorded
    assert moved.all() and (gains == game.score_gains).all()
    assert ((game.boards[1:] > 0).sum(axis=(1, 2)) == (after > 0).sum(axis=(1, 2)) + 1).all()
    assert np.isfinite(game.values).all() and (game.probs.sum(axis=1) == 1).all()
    viewer = ReplayViewer([game])
    viewer.slider.value = 10
    assert "value " in viewer.view.caption.value


def test_the_dashboard_shows_move_values_and_games_per_second_and_no_model_panel(trained):
    from g2048lab.dashboard import Dashboard

    dashboard = Dashboard(trained)
    caption = dashboard.game_panel.game.caption.value
    assert "move values" in caption and "games/s" in caption
    assert not dashboard.model_panel.shown
    assert metric_trace(dashboard, "ntuple/td_error").x
    assert metric_trace(dashboard, "train/policy_loss") is None
    dashboard.close()


def test_a_5x5_run_learns_on_its_board_and_its_checkpoint_plays_5x5(tmp_path, capsys):
    run = Trainer(config(0, game="2048-5x5", total_env_steps=60_000)).run()
    network = run.learner.network
    assert network.game.name == "2048-5x5" and run.env_steps == 60_000
    assert run.learner.view().board.shape == (5, 5) and run.recorder.recent
    path = save_checkpoint(run.state_dict(), tmp_path / "five.pt")
    loaded = load_agent(path)
    assert loaded.game.name == "2048-5x5" and loaded.agent.network.game == loaded.game
    greedy = evaluate(loaded.agent.policy(), 10, seed=2, game=loaded.game)
    random = evaluate(random_policy(0), 10, seed=2, game=loaded.game)
    assert greedy.scores.mean() > 1.5 * random.scores.mean()
    assert main(["eval", str(path), "--games", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["game"] == "2048-5x5"
    payload = load_checkpoint(path)
    payload["ntuple"]["board"] = payload["ntuple"]["board"][:4, :4].contiguous()
    save_checkpoint(payload, tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match=r"'ntuple.board' is .* not a \(5, 5\) board"):
        load_checkpoint(tmp_path / "cut.pt")


def test_a_board_beyond_the_tables_shows_no_values_instead_of_failing_the_run():
    """On big boards a training game soon holds two 32768s: the run goes on (the kernel ends
    such games and counts them), and the view of that board has no move values to show."""
    trainer = Trainer(
        TrainerConfig(
            learner="ntuple",
            game="2048-5x5",
            learner_config=NTupleConfig(tuples="5x4"),
            device="cpu",
            total_env_steps=1,
        )
    )
    network = trainer.learner.network
    state = network.state_dict()
    board = np.zeros((5, 5), np.uint8)
    board[0, :2] = 15  # LEFT would make 65536: beyond the 4-bit tables
    network.load_state_dict({**state, "board": board})
    with pytest.raises(ValueError, match="65536"):
        network.move_values(board[None])
    view = trainer.learner.view()
    assert view.move_values == [None] * 4 and view.actions == [] and view.value is None
    assert (view.board == board).all()
