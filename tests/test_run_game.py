"""The game is a run field: checked by name, handed to the learner (``LearnerSetup.game``),
reported in the reach-tile metrics, stored with the run and in every checkpoint, kept on
resume; runs and checkpoints from before games are 2048 on 4x4.

The learner here plays no game: it reports finished games of chosen tiles, so that each
check is about the run, cheap and exact."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from g2048lab import games, learners
from g2048lab.checkpoint import DICT, CheckpointError, check_fields, save_checkpoint
from g2048lab.cli import build_parser, main
from g2048lab.evaluation import corner_policy
from g2048lab.learners import Agent, Learner, LearnerView
from g2048lab.learners.loading import load_checkpoint
from g2048lab.store import RunStore
from g2048lab.trainer import Trainer, TrainerConfig

TILES = np.array([1024, 2048, 4096, 8192])  # the largest tile of the games each iteration ends


@dataclass(frozen=True)
class TileConfig:
    """No settings."""


class CornerAgent(Agent):
    def policy(self, greedy=True, seed=0):
        return corner_policy


@learners.register
class TileLearner(Learner):
    """Ends four games an iteration, whose largest tiles are ``TILES``."""

    name = "tiles"
    config_class = TileConfig

    @property
    def parallel_games(self):
        return 1

    def iterate(self, hooks):
        if not hooks.tick():
            return None
        hooks.played(len(TILES), TILES * 2, TILES)
        return {}

    def view(self):
        return LearnerView(board=np.zeros(self.setup.game.shape, np.uint8))

    def state_dict(self):
        return {"tiles": {"game": self.setup.game.name}}

    def load_state_dict(self, payload):
        pass

    def config_dict(self):
        return {}

    def agent(self):
        return CornerAgent()

    @classmethod
    def check_payload(cls, payload, bad):
        check_fields(payload, {"tiles": DICT}, bad)

    @classmethod
    def config_from_payload(cls, payload):
        return TileConfig()

    @classmethod
    def load_agent(cls, payload, device):
        return CornerAgent()


def run(game: str | None = None, **changes) -> Trainer:
    game = {} if game is None else {"game": game}
    config = TrainerConfig(learner="tiles", device="cpu", threads=1, total_env_steps=8, **game)
    return Trainer(config, **changes).run()


def test_an_unknown_game_is_refused_with_the_games_there_are():
    with pytest.raises(ValueError, match="no game named '2048-9x9'; choose one of 2048-3x3, "):
        TrainerConfig(game="2048-9x9")


@pytest.mark.parametrize(
    "game, shares",
    [
        (None, {"rollout/reach_1024": 1.0, "rollout/reach_2048": 0.75}),  # 4x4: as before
        ("2048-5x5", {"rollout/reach_4096": 0.5, "rollout/reach_8192": 0.25}),
    ],
)
def test_the_learner_gets_the_game_and_the_metrics_report_its_tiles(game, shares):
    trainer = run(game)
    assert trainer.learner.setup.game is games.get(game)
    row = trainer.metrics[-1]
    assert {k: v for k, v in row.items() if k.startswith("rollout/reach_")} == shares


def test_a_checkpoint_records_its_game_and_a_resume_keeps_it(tmp_path):
    path = save_checkpoint(run("2048-5x5").state_dict(), tmp_path / "five.pt")
    assert load_checkpoint(path)["game"] == "2048-5x5"
    resumed = Trainer.from_checkpoint(path, threads=1)
    assert resumed.config.game == "2048-5x5" and resumed.learner.setup.game.name == "2048-5x5"
    assert Trainer.from_checkpoint(path, threads=1, game="2048-5x5").game.name == "2048-5x5"
    with pytest.raises(ValueError, match="is a run of 2048-5x5; a resumed run keeps its game"):
        Trainer.from_checkpoint(path, threads=1, game="2048-3x3")
    with pytest.raises(
        CheckpointError, match="is of a run of 2048-5x5, this trainer plays 2048-4x4"
    ):
        run().load_state_dict(load_checkpoint(path))
    # a checkpoint from before games names none: 2048 on 4x4
    old = {k: v for k, v in load_checkpoint(path).items() if k != "game"}
    old_path = save_checkpoint(old, tmp_path / "old.pt")
    assert Trainer.from_checkpoint(old_path, threads=1).config.game == "2048-4x4"


def test_train_takes_the_game_records_it_and_keeps_it_on_resume(tmp_path, capsys):
    runs = str(tmp_path / "runs")
    common = ["--learner", "tiles", "--device", "cpu", "--threads", "1", "--quiet"]
    common += ["--runs-dir", runs]
    assert main(["train", "--game", "2048-3x3", "--steps", "8", "--run-name", "t3", *common]) == 0
    store = RunStore(runs)
    assert store.get_run("t3").config["game"] == "2048-3x3"
    assert load_checkpoint(store.run_dir("t3"))["game"] == "2048-3x3"
    assert main(["train", "--resume", "t3", "--steps", "16", *common]) == 0
    assert load_checkpoint(store.run_dir("t3"))["game"] == "2048-3x3"
    assert RunStore(runs).get_run("t3").config["game"] == "2048-3x3"
    capsys.readouterr()
    assert main(["train", "--resume", "t3", "--game", "2048-4x4", "--steps", "24", *common]) == 2
    err = capsys.readouterr().err
    assert "is a run of 2048-3x3; a resumed run keeps its game" in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exit:
        main(["train", "--game", "2048-1x9", "--steps", "8", *common])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "no game named '2048-1x9'; choose one of 2048-3x3" in err
    assert len(err.strip().splitlines()) == 1
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert all(name in " ".join(help_text.split()) for name in games.names())


def test_a_sweep_over_games_checks_each_name_before_it_runs():
    from g2048lab.sweeps.spec import SweepSpec, check_train_flags

    good = SweepSpec(grid={"game": ["2048-3x3", "2048-5x5"]}, train=["--learner", "tiles"])
    check_train_flags(good, good.grid_settings())
    bad = SweepSpec(grid={"game": ["2048-3x3", "2048-9x9"]}, train=["--learner", "tiles"])
    with pytest.raises(ValueError, match="no game named '2048-9x9'; choose one of"):
        check_train_flags(bad, bad.grid_settings())
