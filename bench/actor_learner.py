"""PPO env steps/s with the rollout before the update (serial) and beside it (overlapped).

    python bench/actor_learner.py [--setups serial:1 overlap:1 overlap:2] [--iterations 6]
        [--repeats 3] [--preset cpu]

Each setup is ``MODE:THREADS``: MODE ``serial`` or ``overlap`` (the actor thread), then
any of ``+update2`` (each minibatch on two threads, ``--ppo.update-threads 2``),
``+coupled`` (``--ppo.decoupled false``: no proximal forward pass) and ``+own25``
(``--start.own-share 0.25``), e.g. ``overlap+update2+coupled:1``; THREADS the torch
threads. Every setup trains ``--iterations`` PPO
iterations of the preset's default sizes from scratch after one warm-up iteration (an
overlapped run's first iteration only plays); the setups take turns ``--repeats`` times
so that the machine's noise hits them alike. Prints each run's env steps/s and one JSON
line of medians. Compare commits by running it under each commit's ``PYTHONPATH``
(``serial`` runs on any commit).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

from g2048lab.device import ppo_sizes_for, select_device
from g2048lab.learners.ppo.algorithm import PPOConfig
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.trainer import Subscriber, Trainer, TrainerConfig


class Clock(Subscriber):
    """Env steps and wall time at the end of each iteration."""

    def __init__(self):
        self.marks: list[tuple[int, float]] = []

    def on_iteration(self, metrics, context):
        self.marks.append((metrics["env_steps"], time.perf_counter()))


OPTIONS = {"update2", "coupled", "own25"}


def parse_setup(setup: str) -> tuple[str, set[str], int] | None:
    """``MODE:THREADS`` as (serial|overlap, its +options, threads); None if malformed."""
    mode, _, threads = setup.partition(":")
    base, *options = mode.split("+")
    if base not in ("serial", "overlap") or not set(options) <= OPTIONS:
        return None
    return (base, set(options), int(threads)) if threads.isdigit() else None


def steps_per_s(base: str, options: set[str], threads: int, preset: str, iterations: int) -> float:
    ppo = PPOConfig(**ppo_sizes_for(preset, select_device("cpu")))
    if hasattr(ppo, "overlap"):  # a commit from before it ran serially
        ppo = replace(ppo, overlap=base == "overlap", update_threads=1)
    if "update2" in options:
        ppo = replace(ppo, update_threads=2)
    if "coupled" in options:
        ppo = replace(ppo, decoupled=False)
    settings = PPOLearnerConfig(preset=preset, ppo=ppo)
    if "own25" in options:
        settings = replace(settings, start=replace(settings.start, own_share=0.25))
    trainer = Trainer(
        TrainerConfig(
            learner="ppo",
            learner_config=settings,
            device="cpu",
            threads=threads,
            seed=0,
            total_env_steps=(iterations + 1) * ppo.num_envs * ppo.rollout_steps,
        )
    )
    clock = trainer.subscribe(Clock())
    trainer.run()
    (steps0, t0), (steps1, t1) = clock.marks[0], clock.marks[-1]
    return (steps1 - steps0) / (t1 - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", nargs="+", default=["serial:1", "overlap:1", "overlap:2"])
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="cpu")
    args = parser.parse_args()
    setups = {setup: parse_setup(setup) for setup in args.setups}
    for setup, parsed in setups.items():
        if parsed is None:
            parser.error(f"setup {setup!r}: serial|overlap[+update2][+coupled][+own25]:THREADS")
    runs: dict[str, list[float]] = {setup: [] for setup in args.setups}
    for repeat in range(args.repeats):
        for setup, parsed in setups.items():
            rate = steps_per_s(*parsed, args.preset, args.iterations)
            runs[setup].append(rate)
            print(f"repeat {repeat}  {setup:>10}  {rate:8.0f} env steps/s", flush=True)
    medians = {setup: statistics.median(rates) for setup, rates in runs.items()}
    base = medians[args.setups[0]]
    for setup, rate in medians.items():
        print(f"{setup:>10}  median {rate:8.0f} env steps/s  {rate / base:.2f}x", flush=True)
    print(json.dumps({"preset": args.preset, "runs": runs, "medians": medians}))


if __name__ == "__main__":
    main()
