"""Run by the distributed tests under torchrun: train a tiny model with DDP on gloo.

    torchrun --nproc_per_node 2 tests/distributed_script.py OUT_DIR ITERATIONS [die | CHECKPOINT]

Each rank writes ``rank<r>.pt`` (its parameters and counters) into OUT_DIR; rank 0
also saves a checkpoint there. With ``die``, rank 1 exits abruptly after one iteration;
with a checkpoint path, the run starts from it and trains ITERATIONS more.
"""

import os
import sys
from pathlib import Path

import torch

from g2048lab.checkpoint import save_checkpoint
from g2048lab.distributed import init_distributed
from g2048lab.learners.ppo.algorithm import PPOConfig
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.trainer import Subscriber, Trainer, TrainerConfig

out, iterations = Path(sys.argv[1]), int(sys.argv[2])
extra = sys.argv[3] if len(sys.argv) > 3 else None
die = extra == "die"
dist = init_distributed("cpu", timeout_s=30)
ppo = PPOConfig(num_envs=32, rollout_steps=16, minibatch_size=256, epochs=2)
steps = iterations * 32 * 16 * dist.world_size
settings = PPOLearnerConfig(preset="tiny", ppo=ppo)
config = TrainerConfig(device="cpu", threads=1, learner_config=settings, total_env_steps=steps)
if extra and not die:
    start = torch.load(extra, weights_only=True)["counters"]["env_steps"]
    trainer = Trainer.from_checkpoint(extra, dist=dist, threads=1, total_env_steps=start + steps)
else:
    trainer = Trainer(config, dist=dist)


class DieAfterOne(Subscriber):
    def on_iteration(self, metrics, context):
        if dist.rank == 1:
            os._exit(3)  # abrupt: no clean-up, no message to the others


if die:
    trainer.subscribe(DieAfterOne())
try:
    trainer.run()
finally:
    state = {
        "params": {k: v.clone() for k, v in trainer.learner.model.state_dict().items()},
        "env_steps": trainer.env_steps,
        "episodes": trainer.episodes,
        "iteration": trainer.iteration,
        "state": str(trainer.state),
    }
    torch.save(state, out / f"rank{dist.rank}.pt")
    if dist.is_main and trainer.state == "finished":
        save_checkpoint(trainer.state_dict(), out / "ckpt.pt")
dist.close()
