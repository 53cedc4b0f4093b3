"""Environment steps per second of random legal play through VecEnv, one thread.

One step is one game advanced by one move; actions are drawn uniformly among the
legal moves (``rules.sample_legal``), and that draw is counted in the time.

    python bench/env_throughput.py [--batches 1 64 1024 4096] [--seconds 1.0] [--repeats 3]
                                   [--game 2048-4x4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from g2048lab import games
from g2048lab.engine.env import VecEnv
from g2048lab.engine.rules import sample_legal


def steps_per_second(batch: int, seconds: float, seed: int, game: str = games.DEFAULT) -> float:
    """Play ``game`` for about ``seconds`` of wall time; return env steps per second."""
    env = VecEnv(batch, seed=seed, game=game)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset()
    for _ in range(20):  # warm up: compiled kernels, caches
        obs = env.step(sample_legal(obs["action_mask"], rng))[0]
    steps = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            obs = env.step(sample_legal(obs["action_mask"], rng))[0]
        steps += 10 * batch
    return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024, 4096])
    parser.add_argument("--seconds", type=float, default=1.0, help="per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--game", default=games.DEFAULT, help="one of: " + ", ".join(games.names()))
    args = parser.parse_args()
    try:
        games.get(args.game)
    except games.UnknownGame as error:
        parser.error(str(error))
    results = {}
    print(f"{args.game}\n{'batch':>6} {'median steps/s':>15}   runs")
    for batch in args.batches:
        runs = [
            steps_per_second(batch, args.seconds, seed, args.game) for seed in range(args.repeats)
        ]
        results[batch] = statistics.median(runs)
        print(f"{batch:>6} {results[batch]:>15,.0f}   " + " ".join(f"{r:,.0f}" for r in runs))
    print(json.dumps({"game": args.game, "env_steps_per_s": results}))


if __name__ == "__main__":
    main()
