"""PPO training throughput per preset: env steps/s, split into rollout and update time,
and the cost of emitting TrainingUpdate messages.

    python bench/train_throughput.py [--presets tiny cpu] [--iterations 4] [--repeats 3]
        [--threads 1] [--device cpu] [--precision fp32 bf16]

Each (preset, precision) row trains ``--iterations`` PPO iterations from scratch
``--repeats`` times (after one warm-up iteration) and reports medians. The message
cost is measured two ways in the same run: the share of wall time spent building
and sending messages (at the fastest cadence, 0.5 s), and the throughput at a 0.5 s
cadence against a 2 s cadence side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics

from g2048lab.device import ppo_sizes_for, select_device
from g2048lab.ppo import PPOConfig
from g2048lab.trainer import Subscriber, Trainer, TrainerConfig


class Timer(Subscriber):
    def __init__(self):
        self.rows = []

    def on_iteration(self, metrics, context):
        self.rows.append(metrics)


def measure(
    preset: str, iterations: int, threads: int | None, device: str, precision: str, interval: float
) -> dict:
    ppo = PPOConfig(**ppo_sizes_for(preset, select_device(device)))
    config = TrainerConfig(
        preset=preset,
        device=device,
        threads=threads,
        ppo=ppo,
        precision=precision,
        update_interval_s=interval,
    )
    trainer = Trainer(config)
    timer = trainer.subscribe(Timer())

    class StopAfter(Subscriber):
        def on_iteration(self, metrics, context):
            return context.iteration < iterations + 1  # +1: the first is a warm-up

    trainer.subscribe(StopAfter())
    trainer.run()
    rows = timer.rows[1:]
    rollout = sum(r["time/rollout_s"] for r in rows)
    update = sum(r["time/update_s"] for r in rows)
    steps = ppo.num_envs * ppo.rollout_steps * len(rows)
    return {
        "steps_per_s": steps / (rollout + update),
        "rollout_s": rollout / len(rows),
        "update_s": update / len(rows),
        "emit_share": trainer.emit_seconds / trainer.elapsed_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "cpu"])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", nargs="+", default=["fp32"])
    args = parser.parse_args()
    print(
        f"{'preset':>7} {'prec':>5} {'steps/s':>9} {'rollout s':>10} {'update s':>9} "
        f"{'emit %':>7} {'steps/s @2s':>12} {'cadence cost %':>15}"
    )
    results = []
    for preset in args.presets:
        for precision in args.precision:
            fast, slow = [], []
            for _ in range(args.repeats):  # interleaved: both cadences see the same noise
                fast.append(
                    measure(preset, args.iterations, args.threads, args.device, precision, 0.5)
                )
                slow.append(
                    measure(preset, args.iterations, args.threads, args.device, precision, 2.0)
                )
            med = {k: statistics.median(r[k] for r in fast) for k in fast[0]}
            slow_sps = statistics.median(r["steps_per_s"] for r in slow)
            cost = 100 * (1 - med["steps_per_s"] / slow_sps)
            print(
                f"{preset:>7} {precision:>5} {med['steps_per_s']:>9.0f} {med['rollout_s']:>10.2f} "
                f"{med['update_s']:>9.2f} {100 * med['emit_share']:>7.2f} {slow_sps:>12.0f} "
                f"{cost:>15.1f}"
            )
            results.append(
                {"preset": preset, "precision": precision, **med, "steps_per_s_at_2s": slow_sps}
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
