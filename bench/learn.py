"""Train for M minutes, then evaluate games greedily (and with search); print one JSON line.

    python bench/learn.py --minutes 30 [--learner ppo] [--preset cpu] [--seed 0] [--threads 1]
        [--lr 1e-3] [--envs 256] [--steps 64] [--minibatch 1024] [--epochs 2] [--gamma 0.99]
        [--eval-games 200] [--search DEPTH] [--search-games 100]
    python bench/learn.py --learner ntuple --minutes 5 --eval-games 1000 --search 2 [--recipe td]
    python bench/learn.py --minutes 30 --kickstart 5 [--teacher-weight 0.2] [--anneal-steps N]
        [--start own_share=0.25 teacher_share=0.5 ...] [--value-weight W]

``--kickstart MINUTES`` first trains an n-tuple teacher for MINUTES, then the transformer
with a distillation loss toward it (kickstart.py) for the rest of ``--minutes``: the
total includes the teacher's time. ``--start`` sets the start states (``StartConfig``
fields; ``teacher_share`` needs ``--kickstart``), ``--value-weight`` the teacher's value
regression. Evaluation always plays from the normal start. The result then describes the
student, with the teacher's own greedy play under ``teacher``.

Progress lines (every ~30 s of training) go to stderr; the last stdout line is the
result: env_steps, steps_per_s, mean_score, median_score, tile_share (greedy), the same
for sampled play (``sampled``, learners with move probabilities) and for expectimax
(``search``, with ms per move), the learning curve (minutes, env steps, recent mean score)
and ``by_minute``: for each minute of training, the games that ended in it, their mean
score and their shares reaching 2048, 8192 and 16384.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from g2048lab.checkpoint import CheckpointManager
from g2048lab.device import ppo_sizes_for, select_device
from g2048lab.evaluation import evaluate
from g2048lab.learners.ntuple.network import NTupleConfig
from g2048lab.learners.ntuple.recipes import RECIPES
from g2048lab.learners.ppo.algorithm import PPOConfig
from g2048lab.learners.ppo.kickstart import TeacherConfig
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.learners.ppo.starts import StartConfig
from g2048lab.model import ModelConfig
from g2048lab.trainer import Subscriber, Trainer, TrainerConfig


class Curve(Subscriber):
    """Keeps (minutes, env steps, mean score) every ~30 s and prints it; and per minute of
    training the finished games' count, mean score and share reaching 2048."""

    def __init__(self):
        self.points: list[tuple[float, int, float | None]] = []
        self._next = 0.0
        self.minutes: dict[int, list[tuple[int, int]]] = {}

    def on_update(self, update, context):
        minute = int(update.elapsed_s // 60)
        self.minutes.setdefault(minute, []).extend(tuple(g) for g in update.finished_games)

    def by_minute(self) -> list[dict]:
        rows = []
        for minute, games in sorted(self.minutes.items()):
            if games:
                scores = [score for score, _ in games]
                rows.append(
                    {
                        "minute": minute + 1,
                        "games": len(games),
                        "mean_score": sum(scores) / len(games),
                        "share_2048": sum(tile >= 2048 for _, tile in games) / len(games),
                        "share_8192": sum(tile >= 8192 for _, tile in games) / len(games),
                        "share_16384": sum(tile >= 16384 for _, tile in games) / len(games),
                    }
                )
        return rows

    def on_iteration(self, metrics, context):
        if metrics["time/elapsed_s"] >= self._next:
            self._next += 30.0
            point = (
                round(metrics["time/elapsed_s"] / 60, 2),
                metrics["env_steps"],
                metrics["rollout/score_mean"],
            )
            self.points.append(point)
            learned = "  ".join(
                f"{key.split('/')[1]} {metrics[key]:.4g}"
                for key in (
                    "train/entropy",
                    "train/approx_kl",
                    "ntuple/td_error",
                    "teacher/agreement",
                    "teacher/weight",
                )
                if metrics.get(key) is not None
            )
            print(
                f"{point[0]:6.2f} min {point[1]:>10,} steps  score {point[2] or 0:8.0f}  "
                f"{learned}  {metrics['time/steps_per_s']:.0f} steps/s",
                file=sys.stderr,
                flush=True,
            )


def train_teacher(args, folder: Path) -> tuple[TeacherConfig, dict]:
    """An n-tuple network trained for ``--kickstart`` minutes, saved in ``folder``; its
    TeacherConfig and its greedy play."""
    trainer = Trainer(
        TrainerConfig(
            learner="ntuple",
            device="cpu",
            threads=args.threads,
            seed=args.seed,
            max_seconds=args.kickstart * 60,
        )
    )
    trainer.run()
    path = CheckpointManager(folder).save(trainer.state_dict())
    played = evaluate(trainer.learner.agent().policy(), args.eval_games, seed=10_000).summary()
    print(f"teacher: {played}", file=sys.stderr, flush=True)
    config = TeacherConfig(
        source=str(path),
        weight=args.teacher_weight,
        anneal_steps=args.anneal_steps,
        temperature=args.temperature,
        value_weight=args.value_weight,
    )
    return config, {"minutes": args.kickstart, "moves": trainer.env_steps, **played}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--learner", default="ppo", choices=["ppo", "ntuple"])
    parser.add_argument("--search", type=int, default=None, metavar="DEPTH")
    parser.add_argument("--search-games", type=int, default=100)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--recipe", choices=sorted(RECIPES), help="an n-tuple --preset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--eval-games", type=int, default=200)
    parser.add_argument("--kickstart", type=float, default=None, metavar="MINUTES")
    parser.add_argument("--teacher-weight", type=float, default=0.2)
    parser.add_argument("--anneal-steps", type=int, default=5_000_000)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--value-weight", type=float, default=0.0)
    parser.add_argument(
        "--start", nargs="*", default=[], metavar="FIELD=VALUE", help="StartConfig fields"
    )
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
    started = time.perf_counter()
    folder = tempfile.TemporaryDirectory()
    teacher = teacher_result = None
    if args.kickstart:
        if args.learner != "ppo":
            parser.error("--kickstart trains a ppo student")
        teacher, teacher_result = train_teacher(args, Path(folder.name))
    settings = None  # the n-tuple learner's defaults, or its --recipe
    if args.learner == "ntuple" and args.recipe:
        settings = NTupleConfig(**RECIPES[args.recipe])
    if args.learner == "ppo":
        counts = ("buffer_size", "teacher_anneal_steps", "teacher_games")
        fields = dict(item.split("=", 1) for item in args.start)
        start = StartConfig(**{k: int(v) if k in counts else float(v) for k, v in fields.items()})
        settings = PPOLearnerConfig(
            preset=args.preset, model=model, ppo=ppo, teacher=teacher, start=start
        )
    config = TrainerConfig(
        learner=args.learner,
        learner_config=settings,
        device=args.device,
        threads=args.threads,
        seed=args.seed,
        max_seconds=args.minutes * 60 - (time.perf_counter() - started),
    )
    trainer = Trainer(config)
    curve = trainer.subscribe(Curve())
    trainer.run()
    agent = trainer.learner.agent()
    start = time.perf_counter()
    greedy = evaluate(agent.policy(greedy=True), args.eval_games, seed=10_000)
    result = {"learner": args.learner, "minutes": args.minutes, "seed": args.seed}
    if args.learner == "ppo":
        sampled = evaluate(agent.policy(greedy=False), args.eval_games, seed=10_000)
        result.update(
            preset=args.preset,
            model=asdict(trainer.learner.model_config),
            ppo={
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
                    "overlap",
                    "update_threads",
                )
            },
            start=asdict(trainer.learner.settings.start),
            sampled=sampled.summary(),
        )
    else:
        result.update(trainer.learner.config_dict())
    result.update(
        threads=trainer.threads,
        env_steps=trainer.env_steps,
        steps_per_s=trainer.env_steps / trainer.elapsed_s,
        **greedy.summary(),
        eval_seconds=time.perf_counter() - start,
    )
    if args.search is not None:
        start = time.perf_counter()
        searched = evaluate(agent.search_policy(args.search), args.search_games, seed=20_000)
        seconds = time.perf_counter() - start
        result["search"] = {
            "depth": args.search,
            **searched.summary(),
            "ms_per_move": 1000 * seconds / int(searched.lengths.sum()),
        }
    if teacher is not None:
        result["teacher"] = {**teacher_result, **asdict(teacher)}
        del result["teacher"]["source"]
    folder.cleanup()
    result.update(curve=curve.points, by_minute=curve.by_minute())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
