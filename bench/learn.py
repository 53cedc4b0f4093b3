"""Train for M minutes, then evaluate 200 games greedily; print one JSON line.

    python bench/learn.py --minutes 30 [--preset cpu] [--seed 0] [--threads 1]
        [--lr 1e-3] [--envs 256] [--steps 64] [--minibatch 1024] [--epochs 2] [--gamma 0.99]

Progress lines (every ~30 s of training) go to stderr; the last stdout line is the
result: env_steps, steps_per_s, mean_score, median_score, tile_share (greedy), and
the same for sampled play (``sampled``), plus the learning curve.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace

from g2048lab.device import ppo_sizes_for, select_device
from g2048lab.evaluation import evaluate, model_policy
from g2048lab.model import ModelConfig
from g2048lab.ppo import PPOConfig
from g2048lab.trainer import Subscriber, Trainer, TrainerConfig


class Curve(Subscriber):
    """Keeps (minutes, env steps, mean score) every ~30 s and prints it."""

    def __init__(self):
        self.points: list[tuple[float, int, float | None]] = []
        self._next = 0.0

    def on_iteration(self, metrics, context):
        if metrics["time/elapsed_s"] >= self._next:
            self._next += 30.0
            point = (
                round(metrics["time/elapsed_s"] / 60, 2),
                metrics["env_steps"],
                metrics["rollout/score_mean"],
            )
            self.points.append(point)
            print(
                f"{point[0]:6.2f} min {point[1]:>10,} steps  score {point[2] or 0:8.0f}  "
                f"entropy {metrics['train/entropy']:.3f}  kl {metrics['train/approx_kl']:.4f}  "
                f"{metrics['time/steps_per_s']:.0f} steps/s",
                file=sys.stderr,
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--eval-games", type=int, default=200)
    for name, kind in [
        ("lr", float),
        ("envs", int),
        ("steps", int),
        ("minibatch", int),
        ("epochs", int),
        ("gamma", float),
        ("entropy", float),
        ("schedule", str),
    ]:
        parser.add_argument(f"--{name}", type=kind, default=None)
    parser.add_argument(
        "--model",
        nargs="*",
        default=[],
        metavar="FIELD=VALUE",
        help="ModelConfig overrides of the preset, e.g. n_experts=8",
    )
    args = parser.parse_args()

    device = select_device(args.device)
    ppo = PPOConfig(**ppo_sizes_for(args.preset, device))
    overrides = {
        "learning_rate": args.lr,
        "num_envs": args.envs,
        "rollout_steps": args.steps,
        "minibatch_size": args.minibatch,
        "epochs": args.epochs,
        "gamma": args.gamma,
        "entropy_coef": args.entropy,
        "lr_schedule": args.schedule,
    }
    ppo = replace(ppo, **{k: v for k, v in overrides.items() if v is not None})
    model = None
    if args.model:
        fields = dict(item.split("=", 1) for item in args.model)
        model = ModelConfig.from_preset(args.preset, **{k: int(v) for k, v in fields.items()})
    config = TrainerConfig(
        model=model,
        preset=args.preset,
        device=args.device,
        threads=args.threads,
        seed=args.seed,
        max_seconds=args.minutes * 60,
        ppo=ppo,
    )
    trainer = Trainer(config)
    curve = trainer.subscribe(Curve())
    trainer.run()
    trainer.model.eval()
    start = time.perf_counter()
    greedy = evaluate(model_policy(trainer.model, greedy=True), args.eval_games, seed=10_000)
    sampled = evaluate(model_policy(trainer.model, greedy=False), args.eval_games, seed=10_000)
    result = {
        "preset": args.preset,
        "model": asdict(trainer.model_config),
        "minutes": args.minutes,
        "seed": args.seed,
        "threads": trainer.threads,
        "ppo": {
            k: getattr(ppo, k)
            for k in (
                "num_envs",
                "rollout_steps",
                "minibatch_size",
                "epochs",
                "learning_rate",
                "gamma",
                "entropy_coef",
                "lr_schedule",
            )
        },
        "env_steps": trainer.env_steps,
        "steps_per_s": trainer.env_steps / trainer.elapsed_s,
        **greedy.summary(),
        "sampled": sampled.summary(),
        "eval_seconds": time.perf_counter() - start,
        "curve": curve.points,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
