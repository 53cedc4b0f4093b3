"""Data-parallel training with two gloo processes under torchrun, on the CPU."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from g2048lab.checkpoint import save_checkpoint
from g2048lab.learners.loading import load_checkpoint
from g2048lab.learners.ppo.algorithm import PPOConfig
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.store import RunStore
from g2048lab.trainer import Trainer, TrainerConfig

from .helpers import free_port

SCRIPT = Path(__file__).with_name("distributed_script.py")
ITERATION = 32 * 16  # one rank's env steps per iteration in the script


def torchrun(*args, timeout=240) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(SCRIPT),
               *map(str, args)]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    done = torchrun(out, 3)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def test_ranks_end_with_identical_parameters_and_count_every_rank(two_rank_run):
    a = torch.load(two_rank_run / "rank0.pt", weights_only=True)
    b = torch.load(two_rank_run / "rank1.pt", weights_only=True)
    assert a["state"] == b["state"] == "finished" and a["iteration"] == b["iteration"] == 3
    for name, value in a["params"].items():
        assert torch.equal(value, b["params"][name]), name
    assert a["env_steps"] == b["env_steps"] == 3 * ITERATION * 2  # both ranks' games
    assert a["episodes"] == b["episodes"]


def test_a_distributed_checkpoint_resumes_in_one_process(two_rank_run):
    payload = load_checkpoint(two_rank_run / "ckpt.pt")
    assert payload["world_size"] == 2 and payload["counters"]["env_steps"] == 6 * ITERATION
    trainer = Trainer.from_checkpoint(two_rank_run / "ckpt.pt", threads=1,
                                      total_env_steps=7 * ITERATION)  # fmt: skip
    trainer.run()
    assert trainer.iteration == 4 and trainer.env_steps == 7 * ITERATION


def test_a_single_process_checkpoint_starts_a_distributed_run(tmp_path):
    ppo = PPOConfig(num_envs=32, rollout_steps=16, minibatch_size=256, epochs=2)
    settings = PPOLearnerConfig(preset="tiny", ppo=ppo)
    single = Trainer(TrainerConfig(device="cpu", threads=1, learner_config=settings,
                                   total_env_steps=2 * ITERATION)).run()  # fmt: skip
    path = save_checkpoint(single.state_dict(), tmp_path / "single.pt")
    done = torchrun(tmp_path, 2, path)
    assert done.returncode == 0, done.stderr[-2000:]
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert a["iteration"] == 4 and a["env_steps"] == 2 * ITERATION + 2 * ITERATION * 2
    assert all(torch.equal(v, b["params"][k]) for k, v in a["params"].items())


def test_a_rank_that_dies_stops_the_run_in_bounded_time(tmp_path):
    # bounded: the survivor gives up at its collectives' 30 s timeout, so the whole run ends
    # long before this subprocess timeout (a hang fails the test); no wall-clock assertion
    done = torchrun(tmp_path, 50, "die", timeout=300)
    assert done.returncode != 0
    assert "exitcode" in done.stderr


def test_the_command_line_trains_one_run_across_ranks_and_resumes_it_alone(tmp_path):
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "g2048lab",
               "train", "--distributed", "--preset", "tiny", "--steps", "8192", "--device", "cpu",
               "--runs-dir", str(runs), "--run-name", "d", "--threads", "1", "--quiet"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    run = RunStore(runs).get_run("d")  # one run in the store, written by rank 0 alone
    assert run.status == "finished" and run.env_steps == 8192 and run.iteration == 2
    assert [r.name for r in RunStore(runs).list_runs()] == ["d"]
    resumed = subprocess.run([sys.executable, "-m", "g2048lab", "train", "--resume", "d",
                              "--runs-dir", str(runs), "--steps", "10240", "--device", "cpu",
                              "--threads", "1", "--quiet"], capture_output=True, text=True,
                             timeout=240)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert RunStore(runs).get_run("d").env_steps == 10240
