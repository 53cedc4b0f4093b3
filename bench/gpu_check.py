"""The CUDA paths on a real card, as one JSON summary (bench/gpu_check.sh runs it).

    python bench/gpu_check.py [--minutes 5] [--runs-dir DIR]

On a machine with CUDA: times PPO iterations of the ``small`` and ``base`` presets in
bf16 (and the peak memory they take), forces a real out-of-memory (a tensor fills the
card but ~300 MB, then a 16,384-board minibatch) to see the minibatch halve, trains
``g2048lab train --preset auto`` for ``--minutes`` and plays 200 greedy games with it.
Every step is reported, also one that fails; without CUDA it says so and exits 2.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

import torch


def step(summary: dict, name: str, work) -> None:
    """Run ``work()`` into ``summary[name]``; an exception becomes its one-line error."""
    start = time.perf_counter()
    try:
        summary[name] = work()
    except Exception as error:  # the other steps still run
        summary[name] = {"error": f"{type(error).__name__}: {error}"[:500]}
        traceback.print_exc(file=sys.stderr)
    summary[name] = {**summary[name], "seconds": round(time.perf_counter() - start, 1)}


def iteration_times(preset: str) -> dict:
    from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
    from g2048lab.trainer import Trainer, TrainerConfig

    torch.cuda.reset_peak_memory_stats()
    probe = Trainer(TrainerConfig(learner_config=PPOLearnerConfig(preset=preset), device="cuda"))
    steps = probe.learner.ppo.num_envs * probe.learner.ppo.rollout_steps
    del probe
    settings = PPOLearnerConfig(preset=preset, precision="bf16")
    config = TrainerConfig(learner_config=settings, device="cuda")
    trainer = Trainer(replace(config, total_env_steps=3 * steps)).run()
    rows = list(trainer.metrics)[1:]  # the first holds the warm-up (cuDNN, allocator)
    return {
        "iteration_s": [round(r["time/iteration_s"], 3) for r in rows],
        "rollout_s": [round(r["train/rollout_s"], 3) for r in rows],
        "update_s": [round(r["train/update_s"], 3) for r in rows],
        "env_steps_per_s": round(steps / min(r["time/iteration_s"] for r in rows)),
        "minibatch_size": trainer.learner.minibatch_size,
        "peak_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "parameters_m": round(trainer.learner.model.num_params().total / 1e6, 2),
    }


def forced_out_of_memory() -> dict:
    from g2048lab.learners.ppo.algorithm import PPOConfig
    from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
    from g2048lab.trainer import Subscriber, Trainer, TrainerConfig

    free, total = torch.cuda.mem_get_info()
    hog = torch.empty(max(0, free - 300 * 2**20), dtype=torch.uint8, device="cuda")
    events: list[str] = []
    try:
        ppo = PPOConfig(num_envs=1024, rollout_steps=16, minibatch_size=16384, epochs=1)
        settings = PPOLearnerConfig(preset="cpu", ppo=ppo)
        trainer = Trainer(
            TrainerConfig(learner_config=settings, device="cuda", total_env_steps=16384)
        )

        class Events(Subscriber):
            def on_update(self, update, context):
                events.extend(update.events)

        trainer.subscribe(Events())
        trainer.run()
    finally:
        del hog
        torch.cuda.empty_cache()
    return {
        "free_gb_before": round(free / 2**30, 2),
        "minibatch": [16384, trainer.learner.minibatch_size],
        "halved": trainer.learner.minibatch_size < 16384,
        "events": [e for e in events if "out of memory" in e],
        "status": str(trainer.state),
    }


def train_auto(minutes: float, runs_dir: Path) -> dict:
    command = [sys.executable, "-m", "g2048lab", "train", "--preset", "auto", "--device", "cuda",
               "--minutes", str(minutes), "--runs-dir", str(runs_dir), "--run-name", "gpu",
               "--quiet"]  # fmt: skip
    trained = subprocess.run(command, capture_output=True, text=True)
    if trained.returncode != 0:
        return {"error": trained.stderr.strip().splitlines()[-1:], "rc": trained.returncode}
    evaluated = subprocess.run(
        [sys.executable, "-m", "g2048lab", "eval", str(runs_dir / "gpu"), "--games", "200",
         "--device", "cuda", "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    if evaluated.returncode != 0:
        return {"error": evaluated.stderr.strip().splitlines()[-1:], "rc": evaluated.returncode}
    result = json.loads(evaluated.stdout)
    first_line = trained.stderr.strip().splitlines()[0] if trained.stderr.strip() else ""
    return {
        "run": first_line,
        "env_steps": result["env_steps"],
        "env_steps_per_s": round(result["env_steps"] / (60 * minutes)),
        "greedy_mean_score": result["mean_score"],
        "tile_share": result["tile_share"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--runs-dir", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"cuda": False, "error": "no CUDA device: run this on a GPU machine"}))
        return 2
    properties = torch.cuda.get_device_properties(0)
    summary: dict = {
        "cuda": True,
        "device": properties.name,
        "memory_gb": round(properties.total_memory / 2**30, 1),
        "torch": torch.__version__,
        "bf16": torch.cuda.is_bf16_supported(),
    }
    for preset in ("small", "base"):
        step(summary, f"ppo_{preset}_bf16", lambda preset=preset: iteration_times(preset))
    step(summary, "out_of_memory", forced_out_of_memory)
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = args.runs_dir or Path(tmp)
        step(summary, "train_auto", lambda: train_auto(args.minutes, runs_dir))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
