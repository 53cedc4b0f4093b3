"""Search with a time budget per move: moves per second and the depth reached.

Searches ``--boards`` fixed 4x4 boards (from games of the corner heuristic, stopped
after 50 to 600 moves) one board per call, as a watched or recorded game asks, with an
n-tuple network (``--tuples``, default the 4x6 network; untrained unless
``--train-moves``: the tree, and so the speed, barely depends on the values) and each
budget of ``--seconds`` per move. Prints, per budget, moves/s, the mean and the range of
the depth reached, and the slowest move as a share of its budget.

    .venv/bin/python bench/search_budget.py                    # 0.01 s and 0.1 s, ~10 s
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from g2048lab.engine.env import VecEnv
from g2048lab.engine.search import search_policy
from g2048lab.evaluation import corner_policy
from g2048lab.learners.ntuple.network import NTupleConfig, NTupleNetwork
from g2048lab.learners.ntuple.ntuple_learner import NTupleAgent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tuples", default="4x6")
    parser.add_argument("--train-moves", type=int, default=0)
    parser.add_argument("--boards", type=int, default=40)
    parser.add_argument("--seconds", type=float, nargs="+", default=[0.01, 0.1])
    args = parser.parse_args()
    network = NTupleNetwork(NTupleConfig(tuples=args.tuples, seed=1))
    if args.train_moves:
        network.train(args.train_moves)
    model = NTupleAgent(network).value_model()
    boards = _boards(args.boards)
    search_policy(model, 3)({"board": boards[:2]})  # compiles
    print(f"{args.tuples} network, {len(boards)} boards one per call")
    for seconds in args.seconds:
        policy = search_policy(model, seconds=seconds)
        depths, took = [], []
        for board in boards:
            start = time.perf_counter()
            policy({"board": board[None]})
            took.append(time.perf_counter() - start)
            depths.append(policy.depths - sum(depths))
        print(
            f"{seconds:g} s per move: {len(boards) / sum(took):,.1f} moves/s, depth "
            f"{np.mean(depths):.2f} (mean), {min(depths)}-{max(depths)}, slowest move "
            f"{max(took) / seconds:.2f} of its budget"
        )


def _boards(n: int) -> np.ndarray:
    """(n, 4, 4) boards of the corner heuristic's games after 30-250 moves (a game over
    by then has been followed by a new one)."""
    stops = np.random.default_rng(0).integers(30, 250, n)
    env = VecEnv(n, seed=0)
    obs, _ = env.reset()
    boards = obs["board"].copy()
    for t in range(int(stops.max()) + 1):
        boards[stops == t] = obs["board"][stops == t]
        obs, *_ = env.step(corner_policy(obs))
    return boards


if __name__ == "__main__":
    main()
