"""The learner seam: a learner written in this file alone, with a setting of its own and an
insight of its own (drawn by a dashboard panel written here too), runs through the run, the
run store, a checkpoint and its resume, ``g2048lab train`` (its ``--corner.*`` flags
generated from its config class), ``g2048lab eval`` and the dashboard, touching no package
file (learners/base.py, dashboard/panels.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import ipywidgets as widgets
import numpy as np
import pytest
import torch

from g2048lab import learners
from g2048lab.checkpoint import (
    DICT,
    POSITIVE,
    Checkpointer,
    CheckpointError,
    CheckpointManager,
    check_fields,
    save_checkpoint,
)
from g2048lab.cli import build_parser, main
from g2048lab.dashboard import Dashboard, StoreSource, panels
from g2048lab.engine.env import VecEnv
from g2048lab.evaluation import corner_policy
from g2048lab.learners import Agent, Learner, LearnerView
from g2048lab.learners.loading import load_checkpoint
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.settings import check_settings, setting
from g2048lab.store import RunRecorder, RunStore
from g2048lab.trainer import Trainer, TrainerConfig

from .helpers import metric_trace

GAMES = 8  # parallel games of the corner learner, by default
MOVES = 64  # moves per game per iteration


@dataclass(frozen=True)
class CornerConfig:
    """The corner learner's one setting."""

    games: int = setting(GAMES, ge=1)  # games played at once

    def __post_init__(self):
        check_settings(self)


@panels.register
class CornerPanel(panels.InsightPanel):
    """The corner learner's own insight: how often its shown game's moves went LEFT."""

    title = "corner"
    key = "corner"

    def __init__(self):
        self.html = widgets.HTML()
        super().__init__(self.html)

    def show(self, data):
        self.html.value = f"LEFT in {data['left_share']:.0%} of the shown game's moves"


class CornerAgent(Agent):
    def policy(self, greedy=True, seed=0):
        return corner_policy


@learners.register
class CornerLearner(Learner):
    """Plays the corner heuristic and learns nothing: the least a learner can be."""

    name = "corner"
    config_class = CornerConfig
    flags = {"corner": CornerConfig}
    metrics = {"corner/left_share": "share of moves that went LEFT in the iteration"}

    def __init__(self, config, setup):
        super().__init__(config, setup)
        self.games = self.settings.games
        self.env = VecEnv(self.games, seed=setup.seed)
        self.obs, _ = self.env.reset()
        self.shown = np.zeros(4, np.float32)
        self.lefts = [0, 0]  # moves of game 0 that went LEFT, and all its moves

    @property
    def parallel_games(self):
        return self.games

    def iterate(self, hooks):
        slots = hooks.recorder.slots  # the run records whole games of the first slots
        columns = {k: [] for k in ("boards", "actions", "rewards", "score_gains", "dones")}
        final = {}
        left = 0
        for t in range(MOVES):
            if not hooks.tick():
                return None
            actions = corner_policy(self.obs)
            self.shown = np.eye(4, dtype=np.float32)[actions[0]]
            self.lefts = [self.lefts[0] + int(actions[0] == 3), self.lefts[1] + 1]
            columns["boards"].append(self.obs["board"][:slots])
            self.obs, rewards, done, _, info = self.env.step(actions)
            for name, value in zip(
                ("actions", "rewards", "score_gains", "dones"),
                (actions, rewards, info["score_gain"], done),
            ):
                columns[name].append(value[:slots])
            final.update({(t, s): info["final_board"][s] for s in np.flatnonzero(done[:slots])})
            episode = info["episode"]
            hooks.played(self.games, episode["score"][done], episode["max_tile"][done])
            left += int((actions == 3).sum())
        c = {k: np.asarray(v) for k, v in columns.items()}
        probs = np.eye(4, dtype=np.float32)[c["actions"]]  # a fixed rule: certain of its move
        values = np.full(c["actions"].shape, np.nan, np.float32)  # it has no value estimate
        games = hooks.recorder.add_rollout(
            c["boards"], c["actions"], probs, values, c["rewards"], c["score_gains"],
            c["dones"], final, *hooks.position(),
        )  # fmt: skip
        hooks.recorded(games)
        return {"corner/left_share": left / (self.games * MOVES)}

    def view(self):
        insight = {"left_share": self.lefts[0] / max(1, self.lefts[1])}
        return LearnerView(
            board=self.obs["board"][0], actions=self.shown.tolist(), insights={"corner": insight}
        )

    def state_dict(self):
        state = self.env.state_dict()
        rng = state.pop("rng")
        arrays = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
        return {"corner": {"env": arrays, "rng": rng, "games": self.games}}

    def load_state_dict(self, payload):
        env = {k: v.numpy() for k, v in payload["corner"]["env"].items()}
        self.env.load_state_dict({**env, "rng": payload["corner"]["rng"]})
        self.obs = {"board": self.env.boards.copy(), "action_mask": env["action_mask"].copy()}

    def config_dict(self):
        return {"games": self.games}

    def agent(self):
        return CornerAgent()

    @classmethod
    def check_payload(cls, payload, bad):
        fields = {"corner": DICT, "corner.env": DICT, "corner.rng": DICT, "corner.games": POSITIVE}
        check_fields(payload, fields, bad)
        games, boards = payload["corner"]["games"], payload["corner"]["env"].get("boards")
        if boards is None or boards.shape[0] != games:
            raise bad("corner.env", f"does not hold {games} games")

    @classmethod
    def config_from_payload(cls, payload):
        return CornerConfig(games=payload["corner"]["games"])

    @classmethod
    def load_agent(cls, payload, device):
        return CornerAgent()


def config(**changes) -> TrainerConfig:
    defaults = dict(learner="corner", device="cpu", threads=1, total_env_steps=GAMES * MOVES * 6)
    return TrainerConfig(**{**defaults, **changes})


def test_an_unknown_learner_is_refused_with_the_known_names():
    with pytest.raises(KeyError, match="no learner named 'nope'; choose one of .*corner.*ppo"):
        TrainerConfig(learner="nope")


def test_a_learner_from_a_test_file_runs_through_the_run_store_checkpoints_eval_and_dashboard(
    tmp_path, capsys
):
    store = RunStore(tmp_path)
    trainer = Trainer(config(run_id="c1"))
    store.create_run("c1", config={"learner": "corner"}, device="cpu")
    manager = CheckpointManager(store.run_dir("c1"))
    checkpointer = trainer.subscribe(Checkpointer(manager, every_minutes=None))
    trainer.subscribe(RunRecorder(store, "c1", checkpoint=checkpointer.request))
    trainer.run()
    assert trainer.state == "finished" and trainer.iteration == 6
    assert trainer.env_steps == GAMES * MOVES * 6 and trainer.episodes > 0
    # the run's rows carry the learner's namespaced metric; the message its name
    assert all(row["corner/left_share"] > 0.2 for row in trainer.metrics)
    update = trainer.updates.latest()
    assert update.learner == "corner" and update.loss is None and update.attention_weights is None
    assert update.expert_usage == [] and update.model_params is None
    assert json.loads(update.to_json())["learner"] == "corner"
    # the store has the run, its metrics, its recorded games and the final status
    run = store.get_run("c1")
    assert run.status == "finished" and run.env_steps == trainer.env_steps
    assert len(store.metrics("c1")) == 6
    assert store.games("c1")  # corner games are short: some ended and were recorded
    # the checkpoint holds the run's and the learner's fields and resumes the games exactly
    path = manager.latest()
    payload = load_checkpoint(path)
    assert payload["learner"] == "corner" and payload["counters"]["env_steps"] == trainer.env_steps
    resumed = Trainer.from_checkpoint(path, total_env_steps=GAMES * MOVES * 9, threads=1)
    assert resumed.learner.name == "corner" and resumed.iteration == 6
    assert (resumed.learner.env.boards == trainer.learner.env.boards).all()
    resumed.run()
    straight = Trainer(config(total_env_steps=GAMES * MOVES * 9)).run()
    assert (resumed.learner.env.boards == straight.learner.env.boards).all()
    assert resumed.episodes == straight.episodes and resumed.best_score == straight.best_score
    # a damaged learner field is named in one line
    broken = dict(payload, corner={**payload["corner"], "env": {}})
    save_checkpoint(broken, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="field 'corner.env' does not hold 8 games"):
        load_checkpoint(tmp_path / "broken.pt")
    # eval plays with the learner's agent
    assert main(["eval", str(path), "--games", "20", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["learner"] == "corner" and summary["games"] == 20
    assert summary["mean_score"] > 1000  # the corner heuristic, well above random (~1,100)
    assert main(["eval", str(path), "--search", "2"]) == 2  # no value to search with
    assert "has no value function" in capsys.readouterr().err
    # the dashboard shows the run and hides the panels the learner cannot fill
    dashboard = Dashboard(StoreSource(store, "c1"))
    assert not dashboard.model_panel.shown
    assert "finished" in dashboard.header.value
    (corner,) = [p for p in dashboard.panels if isinstance(p, CornerPanel)]  # its own insight
    share = update.insights["corner"]["left_share"]
    assert corner.shown and 0.2 < share < 1 and f"LEFT in {share:.0%}" in corner.html.value
    for key in ("train/loss", "train/policy_loss", "ntuple/td_error"):
        assert metric_trace(dashboard, key) is None  # no chart for what it does not report
    assert metric_trace(dashboard, "time/steps_per_s").x
    dashboard.close()


def test_the_ppo_learner_keeps_its_panels(tmp_path):
    from g2048lab.learners.ppo.algorithm import PPOConfig

    ppo = PPOConfig(num_envs=16, rollout_steps=8, minibatch_size=64, epochs=1)
    settings = PPOLearnerConfig(preset="tiny", ppo=ppo)
    trainer = Trainer(
        replace(config(), learner="ppo", learner_config=settings, total_env_steps=16 * 8 * 2)
    ).run()
    update = trainer.updates.latest()
    assert update.learner == "ppo" and update.loss is not None and update.attention_weights
    assert update.move_values is None and len(update.expert_usage) > 0


def test_a_learner_from_a_test_file_trains_from_the_command_line_with_its_setting(tmp_path, capsys):
    runs = str(tmp_path / "runs")
    common = ["--device", "cpu", "--threads", "1", "--quiet", "--runs-dir", runs]
    steps = str(4 * MOVES * 3)  # three iterations of 4 games
    argv = ["train", "--learner", "corner", "--corner.games", "4", "--steps", steps, *common]
    assert main([*argv, "--run-name", "c4"]) == 0
    run = RunStore(runs).get_run("c4")
    assert run.status == "finished" and run.env_steps == 4 * MOVES * 3
    assert run.config["learner"] == "corner" and run.config["games"] == 4
    folder = RunStore(runs).run_dir("c4")
    payload = load_checkpoint(folder)
    assert payload["corner"]["games"] == 4 and payload["corner"]["env"]["boards"].shape[0] == 4
    assert Trainer.from_checkpoint(folder, threads=1).learner.games == 4  # resumed as saved
    capsys.readouterr()
    # the flag is checked against the setting's range, and belongs to the corner learner
    for flags, message in [
        (["--learner", "corner", "--corner.games", "0"], "--corner.games must be >= 1, got 0"),
        (["--corner.games", "4"], "--corner.* flags set the corner learner's settings: add "),
        (["--learner", "corner", "--ppo.epochs", "2"], "add --learner ppo or drop them"),
    ]:
        assert main(["train", *flags, "--steps", "64", *common]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert (
        "--corner.games"
        in build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    )
