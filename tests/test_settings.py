"""Settings are checked where they are defined: a bad value is one line and exit 2 before a
run starts; a run that learns nothing fails; --steps is env steps for every learner."""

import argparse
import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from g2048lab.checkpoint import save_checkpoint
from g2048lab.cli import main
from g2048lab.device import usable_cores
from g2048lab.engine.env import MAX_GAME_EXPONENT, RewardConfig
from g2048lab.learners.ntuple.network import NTupleConfig
from g2048lab.learners.ntuple.ntuple_learner import CHUNK_MOVES, ITERATION_MOVES
from g2048lab.learners.ppo.algorithm import PPOConfig, ppo_update
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.model import PRESETS, GameTransformer, ModelConfig
from g2048lab.model.memory import count_parameters, ppo_training_bytes
from g2048lab.options.arg_types import positive_float, seed_number
from g2048lab.recording import GameRecorder
from g2048lab.status import Status
from g2048lab.store import RunStore
from g2048lab.trainer import Trainer, TrainerConfig

CLI = [sys.executable, "-m", "g2048lab"]
TRAIN = ["train", "--preset", "tiny", "--steps", "5000", "--device", "cpu", "--quiet"]
CORES = usable_cores()


def tiny(model: ModelConfig | None = None, **changes) -> TrainerConfig:
    ppo = PPOConfig(num_envs=32, rollout_steps=16, minibatch_size=256, epochs=2)
    settings = PPOLearnerConfig(preset="tiny", model=model, ppo=ppo)
    return TrainerConfig(device="cpu", threads=1, learner_config=settings, seed=3, **changes)


def no_run_in(runs: Path) -> bool:
    """Nothing made: the settings are checked before the runs folder is touched."""
    return not runs.exists()


# --- the command line: one line, exit 2, nothing created --------------------------------------


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--model.n-heads", "0"], "--model.n-heads must be >= 1, got 0"),
        (
            ["--model.d-model", "100000"],
            "training this model (40,064.2 M parameters, with gradients and Adam's moments) on "
            "64 games needs about 603.7 GB but only",  # then the free memory, and what to lower
        ),
        (
            ["--ppo.learning-rate", "inf"],
            "--ppo.learning-rate must be a finite number > 0, got inf",
        ),
        (
            ["--ppo.max-grad-norm", "nan"],
            "--ppo.max-grad-norm must be a finite number > 0, got nan",
        ),
        (["--ppo.adam-eps", "0"], "--ppo.adam-eps must be > 0, got 0"),
        (["--ppo.entropy-coef", "nan"], "--ppo.entropy-coef must be a finite number >= 0, got nan"),
        (["--reward.score-weight", "nan"], "--reward.score-weight must be a finite number >= 0"),
        (["--ppo.clip-coef", "-1"], "--ppo.clip-coef must be > 0, got -1"),
        (["--ppo.value-clip", "-1"], "--ppo.value-clip must be > 0, got -1"),
        (["--ppo.target-kl", "0"], "--ppo.target-kl must be > 0, got 0"),
        (["--ppo.gamma", "1.5"], "--ppo.gamma must be in (0, 1], got 1.5"),
        (["--ppo.gae-lambda", "-0.1"], "--ppo.gae-lambda must be in [0, 1], got -0.1"),
        (["--ppo.num-envs", "0"], "--ppo.num-envs must be >= 1, got 0"),
        (["--model.dropout", "1"], "--model.dropout must be in [0, 1), got 1"),
        (["--model.vocab-size", "5"], "--model.vocab-size must be >= 18, got 5"),
        (["--model.top-k", "5"], "top_k=5 must be between 1 and n_experts=4"),
        (["--model.d-model", "31"], "d_model=31 must be divisible by n_heads=2"),
        (["--reward.game-over-penalty=-inf"], "--reward.game-over-penalty must be a finite"),
        (["--threads", "1000"], f"threads must be 1 to {CORES} (the CPU cores this process"),
        (
            ["--learner", "ntuple", "--preset", "tc", "--ntuple.learning-rate", "2"],
            "--ntuple.learning-rate must be in (0, 1], got 2; 1.0 with coherence (the default), "
            "0.4 without",
        ),
        (
            ["--learner", "ntuple", "--preset", "tc", "--ntuple.stages", "3000"],
            "--ntuple.stages: '3000' is not a tile from 4 to 32768",
        ),
        (
            ["--learner", "ntuple", "--preset", "tc", "--ntuple.stages", "16384,8192"],
            "--ntuple.stages: stage '8192' must hold the tiles of the stage before it and more",
        ),
        (
            ["--learner", "ntuple", "--preset", "tc", "--ntuple.threads", "-1"],
            "--ntuple.threads must be >= 0",
        ),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2_before_a_run_exists(tmp_path, capsys, flags, message):
    runs = tmp_path / "runs"
    assert main([*TRAIN, "--runs-dir", str(runs), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("g2048lab train: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert no_run_in(runs)


def test_the_real_command_refuses_a_bad_setting_without_a_traceback(tmp_path):
    runs = tmp_path / "runs"
    done = subprocess.run(
        [*CLI, *TRAIN, "--runs-dir", runs, "--ppo.clip-coef", "-1"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr == "g2048lab train: error: --ppo.clip-coef must be > 0, got -1\n"
    assert no_run_in(runs)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--minutes", "abc"], "argument --minutes: must be a number, got 'abc'"),
        (["--minutes", "nan"], "argument --minutes: must be a finite number, got 'nan'"),
        (["--minutes", "inf"], "argument --minutes: must be a finite number, got 'inf'"),
        (["--minutes", "-2"], "argument --minutes: must be positive, got -2"),
        (["--seed", str(2**63)], "a seed must be a non-negative integer (0, 1, 2, ...) up to"),
        (["--ppo.learning-rate", "abc"], "argument --ppo.learning-rate: must be float, got 'abc'"),
    ],
)
def test_a_value_of_the_wrong_kind_is_refused_by_argparse_in_words(
    tmp_path, capsys, flags, message
):
    runs = tmp_path / "runs"
    train = [arg for arg in TRAIN if arg not in ("--steps", "5000")]  # --minutes excludes it
    with pytest.raises(SystemExit) as exited:
        main([*train, "--runs-dir", str(runs), *flags])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines  # no usage block above it
    assert lines[0].startswith("g2048lab train: error: ") and message in lines[0], lines
    assert lines[0].endswith("(g2048lab train --help lists the options)")
    assert no_run_in(runs)


def test_argument_types_refuse_what_is_not_a_usable_number():
    for text, message in [
        ("abc", "must be a number, got 'abc'"),
        ("nan", "must be a finite number"),
        ("-inf", "must be a finite number"),
        ("0", "must be positive"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            positive_float(text)
    assert positive_float("1.5") == 1.5
    assert seed_number(str(2**63 - 1)) == 2**63 - 1
    with pytest.raises(argparse.ArgumentTypeError, match="up to 2\\*\\*63 - 1"):
        seed_number(str(2**63))


# --- the dataclasses ------------------------------------------------------------------------


CONFIGS = (PPOConfig, RewardConfig, ModelConfig, NTupleConfig, TrainerConfig)


def float_fields():
    for cls in CONFIGS:
        for field in dataclasses.fields(cls):
            if "float" in str(field.type):
                yield cls, field.name


@pytest.mark.parametrize("cls, name", list(float_fields()))
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_every_float_setting_must_be_finite(cls, name, value):
    with pytest.raises(ValueError, match=f"{cls.__name__}.{name} must be "):
        cls(**{name: value})


@pytest.mark.parametrize(
    "cls, changes, message",
    [
        (PPOConfig, {"clip_coef": 0}, "PPOConfig.clip_coef must be > 0, got 0"),
        (PPOConfig, {"max_grad_norm": -0.5}, "PPOConfig.max_grad_norm must be > 0, got -0.5"),
        (PPOConfig, {"adam_eps": 0.0}, "PPOConfig.adam_eps must be > 0, got 0"),
        (PPOConfig, {"learning_rate": 0}, "PPOConfig.learning_rate must be > 0, got 0"),
        (PPOConfig, {"value_coef": -1}, "PPOConfig.value_coef must be >= 0, got -1"),
        (PPOConfig, {"aux_loss_coef": -0.01}, "PPOConfig.aux_loss_coef must be >= 0"),
        (PPOConfig, {"gamma": 0}, "PPOConfig.gamma must be in (0, 1], got 0"),
        (PPOConfig, {"epochs": 0}, "PPOConfig.epochs must be >= 1, got 0"),
        (RewardConfig, {"illegal_penalty": -1}, "RewardConfig.illegal_penalty must be >= 0"),
        (RewardConfig, {"survival_bonus": -0.1}, "RewardConfig.survival_bonus must be >= 0"),
        (ModelConfig, {"n_heads": 0}, "ModelConfig.n_heads must be >= 1, got 0"),
        (ModelConfig, {"d_model": 0, "n_heads": 0}, "ModelConfig.d_model must be >= 1, got 0"),
        (ModelConfig, {"vocab_size": MAX_GAME_EXPONENT}, "ModelConfig.vocab_size must be >= 18"),
        (NTupleConfig, {"optimistic_init": -1}, "NTupleConfig.optimistic_init must be >= 0"),
        (TrainerConfig, {"seed": -1}, "TrainerConfig.seed must be in [0, "),
        (TrainerConfig, {"max_seconds": 0}, "TrainerConfig.max_seconds must be > 0, got 0"),
        (TrainerConfig, {"total_env_steps": 0}, "TrainerConfig.total_env_steps must be >= 1"),
        (TrainerConfig, {"threads": 0}, f"threads must be 1 to {CORES} (the CPU cores"),
        (TrainerConfig, {"threads": CORES + 1}, f"threads must be 1 to {CORES} "),
        (
            TrainerConfig,
            {"learner_config": NTupleConfig()},
            "the ppo learner's settings are a PPOLearnerConfig, got NTupleConfig as learner_config",
        ),
        (PPOLearnerConfig, {"precision": "fp16"}, "must be auto, fp32 or bf16, got 'fp16'"),
        (PPOLearnerConfig, {"preset": "huge"}, "unknown preset 'huge'; choose one of tiny, "),
    ],
)
def test_a_setting_out_of_its_range_is_refused_naming_it(cls, changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        cls(**changes)


def test_the_edges_of_each_range_are_allowed():
    PPOConfig(value_clip=None, target_kl=None, gamma=1.0, gae_lambda=0.0, entropy_coef=0.0)
    PPOConfig(value_clip=0.2, target_kl=0.01, value_coef=0.0, aux_loss_coef=0.0)
    RewardConfig(score_weight=0.0, illegal_penalty=0.0, game_over_penalty=5.0)
    ModelConfig(vocab_size=MAX_GAME_EXPONENT + 1, dropout=0.0, top_k=8, n_experts=8)
    NTupleConfig(learning_rate=1.0, optimistic_init=0.0)
    TrainerConfig(threads=CORES, seed=2**63 - 1)


# --- memory, estimated before anything is allocated -----------------------------------------


@pytest.mark.parametrize("preset", list(PRESETS))
def test_the_parameter_count_without_allocating_is_the_models(preset):
    config = PRESETS[preset]
    assert count_parameters(config) == GameTransformer(config).num_params().total


def test_a_model_too_large_for_memory_is_refused_before_it_is_built():
    huge = ModelConfig.from_preset("tiny", d_model=100_000)
    need = ppo_training_bytes(huge, games=32, steps=16, boards=16)
    assert need.optimizer == 16 * need.parameters  # weights, gradients, Adam's two moments
    with pytest.raises(MemoryError, match=r"needs about [\d,.]+ GB but only [\d,.]+ GB is free on"):
        Trainer(tiny(model=huge))
    small = ppo_training_bytes(PRESETS["tiny"], games=64, steps=32, boards=16)
    assert small.total < 50e6  # and the presets are nowhere near it


# --- a run that learns nothing fails --------------------------------------------------------


def test_a_reward_that_overflows_float32_fails_the_run_saying_so(tmp_path):
    runs = tmp_path / "runs"
    done = subprocess.run(
        [*CLI, *TRAIN, "--threads", "1", "--runs-dir", runs, "--run-name", "big",
         "--reward.score-weight", "1e37", "--reward.log-score", "false"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert (
        "run big failed: RuntimeError: every minibatch of the update (8) had a non-finite loss "
        "or gradient: the rollout's returns and advantages are not finite (rewards too large "
        "for float32?); lower the --reward.* weights"
    ) in done.stderr
    (run,) = RunStore(runs).list_runs()
    assert run.status == Status.FAILED and "non-finite loss" in run.error
    assert run.iteration == 0  # failed in its first update, without counting it


def test_a_value_head_that_went_nan_fails_the_run_at_its_first_update():
    trainer = Trainer(tiny(total_env_steps=10 * 32 * 16))
    with torch.no_grad():
        trainer.learner.model.value_head.bias.fill_(math.nan)
    with pytest.raises(RuntimeError, match="the model's weights are no longer finite: lower"):
        trainer.run()
    assert trainer.state == Status.FAILED and trainer.iteration == 0


def test_a_policy_that_went_nan_stops_the_rollout_in_words_not_with_an_illegal_move():
    trainer = Trainer(tiny(total_env_steps=10 * 32 * 16))
    with torch.no_grad():
        trainer.learner.model.policy_head.weight.fill_(math.nan)
    with pytest.raises(RuntimeError, match="the policy's move scores are NaN; the model's"):
        trainer.run()
    assert trainer.state == Status.FAILED


def test_an_update_says_which_minibatches_it_skipped_and_why():
    model = GameTransformer(PRESETS["tiny"])
    optimizer = torch.optim.Adam(model.parameters())
    size = 64
    batch = {
        "boards": torch.randint(0, 5, (size, 4, 4), dtype=torch.uint8),
        "masks": torch.ones(size, 4, dtype=torch.bool),
        "actions": torch.randint(0, 4, (size,)),
        "logprobs": torch.full((size,), -1.386),
        "values": torch.zeros(size),
        "returns": torch.full((size,), math.nan),  # every minibatch's value loss is NaN
        "advantages": torch.ones(size),
    }
    stats = ppo_update(model, optimizer, batch, PPOConfig(epochs=2), minibatch_size=16)
    assert (stats.minibatches, stats.skipped, stats.interrupted) == (0, 8, False)
    assert stats.events == ["skipped a minibatch: non-finite loss"] * 8
    stopped = ppo_update(
        model, optimizer, batch, PPOConfig(), minibatch_size=16, on_minibatch=lambda: False
    )
    assert (stopped.minibatches, stopped.skipped, stopped.interrupted) == (0, 1, True)


# --- budgets and names that survive a checkpoint --------------------------------------------


def test_ntuple_steps_are_env_steps(tmp_path):
    runs = tmp_path / "runs"
    done = subprocess.run(
        [*CLI, "train", "--learner", "ntuple", "--ntuple.tuples", "5x4", "--steps", "20000",
         "--quiet", "--runs-dir", runs, "--run-name", "n"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "run n finished after 20,000 env steps" in done.stderr  # not 500,000
    (run,) = RunStore(runs).list_runs()
    assert run.env_steps == 20_000


class ChunkHooks:
    """A run whose budget is spent after ``chunks`` of the learner's chunks (RunHooks)."""

    recorder = GameRecorder(slots=0)

    def __init__(self, chunks: int):
        self.chunks, self.steps = chunks, 0

    def tick(self):
        return True

    def progress(self):
        return 1.0 if self.steps >= self.chunks * CHUNK_MOVES else 0.0

    def steps_left(self):
        return None  # a time budget

    def played(self, steps, scores, tiles):
        self.steps += steps

    def recorded(self, games):
        pass

    def note(self, event):
        pass

    def position(self):
        return self.steps, 0


def test_an_ntuple_iteration_ends_where_a_time_budget_ends():
    learner = Trainer(
        TrainerConfig(learner="ntuple", learner_config=NTupleConfig(tuples="5x4"))
    ).learner
    hooks = ChunkHooks(chunks=2)
    assert learner.iterate(hooks) is not None
    assert hooks.steps == 2 * CHUNK_MOVES < ITERATION_MOVES


def test_a_resumed_run_keeps_its_preset_name(tmp_path):
    for model, name in [(None, "tiny"), (ModelConfig.from_preset("tiny", n_layers=2), "custom")]:
        first = Trainer(tiny(model=model, total_env_steps=2 * 32 * 16)).run()
        path = save_checkpoint(first.state_dict(), tmp_path / f"{name}.pt")
        resumed = Trainer.from_checkpoint(path, threads=1)
        assert resumed.learner.describe().startswith(f"ppo: preset {name} (")
        assert resumed.learner.config_dict()["preset"] == (None if name == "custom" else name)
        assert resumed.learner.model_config == first.learner.model_config
