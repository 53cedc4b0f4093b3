"""Env steps per second with 1 and 2 data-parallel processes (torchrun, gloo or NCCL),
with each rank's split of rollout and update time.

    python bench/distributed_scaling.py [--preset cpu] [--iterations 4] [--procs 1 2]

Each configuration trains ``--iterations`` PPO iterations after one warm-up; every
rank reports its own rollout and update time per iteration; throughput counts all
ranks' env steps over rank 0's wall time between the first and last iteration.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

RANK_SCRIPT = r"""
import json, sys, time
from g2048lab.device import ppo_sizes_for
from g2048lab.distributed import init_distributed
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.trainer import Subscriber, Trainer, TrainerConfig

out, preset, iterations, device = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
dist = init_distributed(device, timeout_s=120)

class Rows(Subscriber):
    def __init__(self):
        self.rows = []
    def on_iteration(self, metrics, context):
        self.rows.append(metrics)

sizes = ppo_sizes_for(preset, dist.device)
steps = (iterations + 1) * sizes["num_envs"] * sizes["rollout_steps"] * dist.world_size
settings = PPOLearnerConfig(preset=preset)
config = TrainerConfig(learner_config=settings, device=device, threads=1, total_env_steps=steps)
trainer = Trainer(config, dist=dist)
rows = trainer.subscribe(Rows())
trainer.run()
measured = rows.rows[1:]
first, last = rows.rows[0], rows.rows[-1]
result = {"rank": dist.rank, "world_size": dist.world_size,
          "rollout_s": sum(r["time/rollout_s"] for r in measured) / len(measured),
          "update_s": sum(r["time/update_s"] for r in measured) / len(measured),
          "steps_per_s": (last["env_steps"] - first["env_steps"])
                         / (last["time/elapsed_s"] - first["time/elapsed_s"])}
open(f"{out}/rank{dist.rank}.json", "w").write(json.dumps(result))
dist.close()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"{'procs':>5} {'steps/s':>9} {'rank':>5} {'rollout s':>10} {'update s':>9}")
    results = []
    for procs in args.procs:
        with tempfile.TemporaryDirectory() as out:
            script = Path(out) / "rank.py"
            script.write_text(RANK_SCRIPT)
            subprocess.run(
                [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
                 "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(script),
                 out, args.preset, str(args.iterations), args.device],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            ranks = [json.loads((Path(out) / f"rank{r}.json").read_text()) for r in range(procs)]
        for rank in ranks:
            print(
                f"{procs:>5} {ranks[0]['steps_per_s']:>9.0f} {rank['rank']:>5} "
                f"{rank['rollout_s']:>10.2f} {rank['update_s']:>9.2f}"
            )
        results.append({"procs": procs, "ranks": ranks})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
