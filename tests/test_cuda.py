"""The CUDA paths on a real card; skipped without one (bench/gpu_check.sh runs them there).

Elsewhere the CUDA paths are covered by tests that fake them (test_device.py)."""

from __future__ import annotations

import pytest
import torch

from g2048lab.checkpoint import save_checkpoint
from g2048lab.learners.loading import load_checkpoint
from g2048lab.learners.ppo.algorithm import PPOConfig
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.trainer import Trainer, TrainerConfig

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

PPO = PPOConfig(num_envs=64, rollout_steps=16, minibatch_size=256, epochs=1)
ITERATION = PPO.num_envs * PPO.rollout_steps


def tiny_on_cuda(total_env_steps: int) -> TrainerConfig:
    settings = PPOLearnerConfig(preset="tiny", ppo=PPO)
    return TrainerConfig(device="cuda", learner_config=settings, total_env_steps=total_env_steps)


def test_ppo_trains_on_cuda_in_bf16_and_reports_gpu_memory():
    config = tiny_on_cuda(2 * ITERATION)
    trainer = Trainer(config).run()
    assert trainer.device.type == "cuda" and trainer.learner.autocast_dtype == torch.bfloat16
    assert trainer.state == "finished" and trainer.iteration == 2
    row = trainer.metrics[-1]
    assert row["memory/gpu_gb"] > 0 and torch.isfinite(torch.tensor(row["train/loss"]))
    update = trainer.updates.latest()
    assert update.gpu_memory > 0 and update.attention_weights


def test_a_gpu_checkpoint_resumes_on_the_gpu_and_loads_on_the_cpu(tmp_path):
    config = tiny_on_cuda(3 * ITERATION)
    trainer = Trainer(config).run()
    path = save_checkpoint(trainer.state_dict(), tmp_path / "gpu.pt")
    payload = load_checkpoint(path)  # onto the CPU
    assert "cuda" in payload["rng"] and payload["device"].startswith("cuda")
    resumed = Trainer.from_checkpoint(path, total_env_steps=4 * ITERATION)
    resumed.run()
    assert resumed.device.type == "cuda" and resumed.iteration == 4
    on_cpu = Trainer.from_checkpoint(path, device="cpu", threads=1, total_env_steps=4 * ITERATION)
    on_cpu.run()
    assert on_cpu.iteration == 4


def test_a_real_out_of_memory_halves_the_minibatch():
    free, _ = torch.cuda.mem_get_info()
    hog = torch.empty(max(0, free - 300 * 2**20), dtype=torch.uint8, device="cuda")
    try:
        ppo = PPOConfig(num_envs=1024, rollout_steps=16, minibatch_size=16384, epochs=1)
        # a rollout of 1,024 boards fits in the room left; a 16,384-board minibatch does not
        settings = PPOLearnerConfig(preset="cpu", ppo=ppo)
        config = TrainerConfig(device="cuda", learner_config=settings, total_env_steps=16384)
        trainer = Trainer(config)
        trainer.run()
    finally:
        del hog
        torch.cuda.empty_cache()
    assert trainer.state == "finished", trainer.error
    assert trainer.learner.minibatch_size < 16384, "no out-of-memory: the card had room"
