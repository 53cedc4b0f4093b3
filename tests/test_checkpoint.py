"""Checkpoints: atomic writes, exact resume, and one clear line for every bad file."""

import copy
import os
import pickle
import signal
import subprocess
import sys

import pytest
import torch

from g2048lab.checkpoint import Checkpointer, CheckpointError, CheckpointManager, save_checkpoint
from g2048lab.cli import main
from g2048lab.learners.loading import load_checkpoint
from g2048lab.learners.ppo.algorithm import PPOConfig
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.trainer import Trainer, TrainerConfig

from .helpers import StopAfter

ITERATION_STEPS = 32 * 16


def tiny(**changes) -> TrainerConfig:
    # serial: one iteration learns (test_actor_learner.py resumes overlapped runs)
    ppo = PPOConfig(num_envs=32, rollout_steps=16, minibatch_size=256, epochs=2, overlap=False)
    settings = PPOLearnerConfig(preset="tiny", ppo=ppo)
    return TrainerConfig(device="cpu", threads=1, learner_config=settings, seed=3, **changes)


@pytest.fixture(scope="module")
def trained() -> dict:
    """A real checkpoint's payload, after one iteration (so it holds games in play)."""
    return Trainer(tiny(total_env_steps=ITERATION_STEPS)).run().state_dict()


@pytest.fixture
def state(trained) -> dict:
    """A copy of ``trained`` that a test may change."""
    return copy.deepcopy(trained)


def test_a_resumed_run_continues_as_the_uninterrupted_run(tmp_path):
    straight = Trainer(tiny(total_env_steps=4 * ITERATION_STEPS)).run()
    first = Trainer(tiny(total_env_steps=4 * ITERATION_STEPS))
    first.subscribe(StopAfter(2))  # interrupted halfway through the same budget
    first.run()
    path = save_checkpoint(first.state_dict(), tmp_path / "half.pt")
    resumed = Trainer.from_checkpoint(path, threads=1)  # toward the saved budget
    assert resumed.iteration == 2 and resumed.run_id == first.run_id
    resumed.run()
    assert resumed.iteration == 4 and resumed.env_steps == straight.env_steps
    assert resumed.episodes == straight.episodes
    for (name, a), b in zip(
        straight.learner.model.state_dict().items(), resumed.learner.model.state_dict().values()
    ):
        assert torch.equal(a, b), name
    losses = [row["train/loss"] for row in resumed.metrics]  # the rows since the resume
    assert losses == [row["train/loss"] for row in straight.metrics][2:]  # the curves continue
    assert (resumed.learner.env.boards == straight.learner.env.boards).all()


def test_the_checkpoint_holds_metadata_and_loads_with_weights_only(tmp_path):
    trainer = Trainer(tiny(total_env_steps=ITERATION_STEPS)).run()
    path = save_checkpoint(trainer.state_dict(), tmp_path / "c.pt")
    payload = load_checkpoint(path)
    assert payload["format"] == "g2048lab-checkpoint"
    assert payload["model_config"]["d_model"] == trainer.learner.model_config.d_model
    assert payload["counters"]["env_steps"] == ITERATION_STEPS
    assert payload["torch_version"] == torch.__version__ and payload["device"] == "cpu"
    assert "train/loss" in payload["metric_summary"]
    torch.load(path, weights_only=True)  # no pickled code needed


WRITER = """
import sys, time, torch
from g2048lab import checkpoint
real_save = torch.save
def slow_save(obj, file):
    file.write(b"partial bytes of a checkpoint" * 1000)
    file.flush()
    print("writing", flush=True)
    time.sleep(60)
checkpoint.torch.save = slow_save
checkpoint.save_checkpoint({"iteration": 2, "weights": torch.ones(3)}, sys.argv[1])
"""


def test_a_write_killed_midway_leaves_the_previous_checkpoint(tmp_path, state):
    target = tmp_path / "run" / "ckpt-0000001.pt"
    save_checkpoint({**state, "iteration": 1, "weights": torch.zeros(3)}, target)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "writing"
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(10)
    finally:
        writer.kill()
    assert load_checkpoint(target)["iteration"] == 1
    assert torch.equal(load_checkpoint(target)["weights"], torch.zeros(3))
    manager = CheckpointManager(target.parent)
    manager.save({"iteration": 5})
    leftovers = [p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_an_interrupted_write_cleans_up_and_keeps_the_old_file(tmp_path, monkeypatch, state):
    target = tmp_path / "c.pt"
    save_checkpoint({**state, "iteration": 1}, target)

    def interrupted(obj, file):
        file.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr("g2048lab.checkpoint.torch.save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"iteration": 2}, target)
    monkeypatch.undo()
    assert load_checkpoint(target)["iteration"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the deliberately foreign file
def test_bad_files_give_one_clear_line(tmp_path):
    good = save_checkpoint({"iteration": 1, "w": torch.ones(1000)}, tmp_path / "good.pt")
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "corrupt.pt").write_bytes(os.urandom(2000))
    torch.save({"state": torch.ones(2)}, tmp_path / "foreign.pt")
    (tmp_path / "code.pt").write_bytes(pickle.dumps(Exploit()))
    torch.save({"format": "g2048lab-checkpoint", "format_version": 99}, tmp_path / "newer.pt")
    cases = {
        "missing.pt": "no checkpoint at",
        "truncated.pt": "not a readable checkpoint",
        "corrupt.pt": "not a readable checkpoint",
        "foreign.pt": "not a g2048lab checkpoint",
        "code.pt": "not a readable checkpoint",  # weights_only refuses to run its code
        "newer.pt": "newer g2048lab",
    }
    for name, message in cases.items():
        with pytest.raises(CheckpointError, match=message) as caught:
            load_checkpoint(tmp_path / name)
        assert "\n" not in str(caught.value)
    with pytest.raises(CheckpointError, match="no checkpoint files"):
        load_checkpoint(tmp_path)


def test_an_incompatible_architecture_is_named(tmp_path):
    trainer = Trainer(tiny(total_env_steps=ITERATION_STEPS)).run()
    path = save_checkpoint(trainer.state_dict(), tmp_path / "tiny.pt")
    other = Trainer(
        TrainerConfig(
            device="cpu",
            threads=1,
            learner_config=PPOLearnerConfig(
                preset="cpu", ppo=PPOConfig(num_envs=32, rollout_steps=16)
            ),
        )
    )
    with pytest.raises(CheckpointError, match="does not fit this trainer"):
        other.load_state_dict(load_checkpoint(path))


def test_the_manager_keeps_the_last_k_and_the_best(tmp_path, state):
    manager = CheckpointManager(tmp_path, keep_last=2)
    for iteration, score in [(1, 10.0), (2, 30.0), (3, 20.0), (4, 5.0)]:
        manager.save({**state, "iteration": iteration}, score)
    assert [p.name for p in manager.saved()] == ["ckpt-0000003.pt", "ckpt-0000004.pt"]
    assert load_checkpoint(manager.best_path)["iteration"] == 2
    assert load_checkpoint(tmp_path)["iteration"] == 4  # a folder means its latest file


def test_the_checkpointer_saves_on_schedule_on_request_and_at_the_end(tmp_path):
    trainer = Trainer(tiny(total_env_steps=3 * ITERATION_STEPS))
    checkpointer = trainer.subscribe(
        Checkpointer(
            CheckpointManager(tmp_path, keep_last=10), every_episodes=None, every_minutes=None
        )
    )
    checkpointer.request()
    trainer.run()
    names = [p.name for p in CheckpointManager(tmp_path).saved()]
    assert names == ["ckpt-0000001.pt", "ckpt-0000003.pt"]  # the request, then the end
    events = [e for u in trainer.updates.drain() for e in u.events]
    assert any(e.startswith("checkpoint saved") for e in events)
    # every game: a save at each iteration in which games ended (random games last ~120 moves)
    frequent = Trainer(tiny(total_env_steps=12 * ITERATION_STEPS))
    frequent.subscribe(
        Checkpointer(
            CheckpointManager(tmp_path / "f", keep_last=100), every_episodes=1, every_minutes=None
        )
    )
    frequent.run()
    episodes = [0] + [row["episodes"] for row in frequent.metrics]
    expected = {i for i in range(1, 13) if episodes[i] > episodes[i - 1]} | {12}
    saved = {int(p.name[5:12]) for p in CheckpointManager(tmp_path / "f").saved()}
    assert saved == expected and len(saved) >= 3


def parent_of(state, name):
    """The dict holding the field ``name`` (dotted ``a.b.c`` or a tuple of keys), and its key."""
    *parents, last = name.split(".") if isinstance(name, str) else name
    for key in parents:
        state = state[key]
    return state, last


def drop(name):
    def edit(state):
        holder, key = parent_of(state, name)
        del holder[key]

    return edit


def set_to(name, value):
    def edit(state):
        holder, key = parent_of(state, name)
        holder[key] = value

    return edit


def drop_last_parameter(state):
    state["optimizer"]["param_groups"][0]["params"].pop()


def wrong_moment_shape(state):
    state["optimizer"]["state"][0]["exp_avg"] = torch.zeros(3)


MALFORMED = {  # case: (edit of a real checkpoint's payload, start of the error after the path)
    "counters missing": (drop("counters"), "field 'counters' is missing"),
    "optimizer missing": (drop("optimizer"), "field 'optimizer' is missing"),
    "rng.env missing": (drop("rng.env"), "field 'rng.env' is missing"),
    "rng.torch missing": (drop("rng.torch"), "field 'rng.torch' is missing"),
    "env entry missing": (drop("env.boards"), "field 'env.boards' is missing"),
    "counter missing": (drop("counters.env_steps"), "field 'counters.env_steps' is missing"),
    "a string for a dict": (set_to("counters", "x"), "field 'counters' is a str, not a dict"),
    "negative iteration": (set_to("iteration", -1), "field 'iteration' is -1, not a whole"),
    "float iteration": (set_to("iteration", 1.5), "field 'iteration' is 1.5, not a whole"),
    "None run id": (set_to("run_id", None), "field 'run_id' is None, not a string"),
    "negative budget": (set_to("budget.max_seconds", -5), "field 'budget.max_seconds' is -5"),
    "scores not numbers": (set_to("recent_scores", ["a"]), "field 'recent_scores' is a list"),
    "unknown ppo key": (set_to("ppo_config.foo", 1), "field 'ppo_config.foo' is not a PPOConfig"),
    "config of wrong type": (
        set_to("model_config.d_model", "32"),
        "field 'model_config.d_model' is a str, not int",
    ),
    "config that does not build": (
        set_to("model_config.n_heads", 3),
        "field 'model_config' is not a valid ModelConfig (d_model=32 must be divisible",
    ),
    "unknown return_stats key": (
        set_to("return_stats.total", 1.0),
        "field 'return_stats.total' is not a RunningMeanStd setting",
    ),
    "weights that do not fit the config": (
        set_to("model_config.d_model", 64),
        "field 'model' does not fit model_config: 'row_emb' is (4, 32), the config needs (4, 64)",
    ),
    "a weight of the wrong shape": (
        set_to(("model", "ln_f.bias"), torch.zeros(5)),
        "field 'model' does not fit model_config: 'ln_f.bias' is (5,), the config needs (32,)",
    ),
    "a weight missing": (drop(("model", "ln_f.bias")), "field 'model' does not fit model_config"),
    "a foreign weight": (set_to("model.extra", torch.zeros(1)), "field 'model' does not fit"),
    "not a tensor": (
        set_to(("model", "ln_f.bias"), [0.0]),
        "field 'model' is a OrderedDict, not a",
    ),
    "optimizer of another model": (drop_last_parameter, "field 'optimizer' holds 23 parameters"),
    "optimizer moments of the wrong shape": (
        wrong_moment_shape,
        "field 'optimizer.state.0.exp_avg' is (3,)",
    ),
    "games of another size": (
        set_to("env.score", torch.zeros(5, dtype=torch.int64)),
        "field 'env.score' is a torch.int64 tensor of shape (5,), not (32,) for 32 games",
    ),
    "observation of the wrong shape": (
        set_to("obs.board", torch.zeros(32, 16, dtype=torch.uint8)),
        "field 'obs.board'",
    ),
    "torch rng state": (
        set_to("rng.torch", torch.zeros(7, dtype=torch.uint8)),
        "field 'rng.torch' is not a torch generator state",
    ),
    "numpy rng state": (
        set_to("rng.env", {"bit_generator": "MT19937"}),
        "field 'rng.env' is not a NumPy PCG64 generator state",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_checkpoint_names_the_field(tmp_path, state, case):
    edit, message = MALFORMED[case]
    edit(state)
    path = tmp_path / "f.pt"
    torch.save({"format": "g2048lab-checkpoint", "format_version": 1, **state}, path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert str(caught.value).startswith(f"{path}: {message}")
    assert str(caught.value).endswith("use another checkpoint of the run")
    assert "\n" not in str(caught.value)


def test_only_the_format_marker_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "f.pt"
    torch.save({"format": "g2048lab-checkpoint", "format_version": 1}, path)
    with pytest.raises(CheckpointError, match=r"field 'run_id' is missing; the file is damaged"):
        load_checkpoint(path)


def test_optional_and_retired_fields_load(tmp_path, trained):
    """Older files hold ``metrics``; a file saved on a GPU holds ``rng.cuda``; a file saved
    before the first rollout has no games in ``obs``."""
    cuda_state = torch.zeros(16, dtype=torch.uint8)
    older = {**trained, "metrics": [{"train/loss": 1.0}], "budget": {"max_seconds": None}}
    older["rng"] = {**trained["rng"], "cuda": cuda_state}
    fresh = Trainer(tiny()).state_dict()
    assert fresh["obs"] is None
    for name, payload in {"older.pt": older, "fresh.pt": fresh}.items():
        loaded = load_checkpoint(save_checkpoint(payload, tmp_path / name))
        assert loaded["run_id"] == payload["run_id"]
    assert torch.equal(load_checkpoint(tmp_path / "older.pt")["rng"]["cuda"], cuda_state)


def test_a_damaged_best_file_is_replaced_by_the_next_best(tmp_path, state):
    manager = CheckpointManager(tmp_path)
    torch.save({"format": "g2048lab-checkpoint", "format_version": 1}, manager.best_path)
    manager.save({**state, "iteration": 1}, score=1.0)
    assert load_checkpoint(manager.best_path)["best_score_of_file"] == 1.0


CLI_CASES = ["counters missing", "weights that do not fit the config", "a string for a dict"]


@pytest.mark.parametrize("command", ["eval", "train"])
@pytest.mark.parametrize("case", CLI_CASES)
def test_the_commands_report_a_malformed_checkpoint_in_one_line(
    tmp_path, state, capsys, command, case
):
    edit, message = MALFORMED[case]
    edit(state)
    path = save_checkpoint(state, tmp_path / "f.pt")
    argv = {
        "eval": ["eval", str(path), "--games", "1", "--device", "cpu"],
        "train": ["train", "--resume", str(path), "--runs-dir", str(tmp_path / "runs"),
                  "--device", "cpu", "--threads", "1", "--quiet"],
    }[command]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"g2048lab {command}: error: {path}: {message}")


def test_eval_of_a_malformed_checkpoint_exits_2_without_a_traceback(tmp_path):
    path = tmp_path / "f.pt"
    torch.save({"format": "g2048lab-checkpoint", "format_version": 1}, path)
    done = subprocess.run(
        [sys.executable, "-m", "g2048lab", "eval", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"g2048lab eval: error: {path}: field 'run_id' is missing; the file is damaged or not "
        "a training checkpoint: use another checkpoint of the run"
    ]
