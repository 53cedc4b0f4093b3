"""Training moves per second of the n-tuple network on 1 and more threads, and a short
learning check, on any game of the 2048 family (``--game``, 2048 on 4x4 by default).

Throughput: for each thread count of ``--threads`` (default "1,2": the scaling), ``--repeats``
timed ``train(--moves)`` calls on one network after a warm-up call (numba compilation
excluded), median and each run. The network keeps learning across the repeats, so later
runs see longer games and more of the table.

Learning: a fresh network trains for ``--minutes`` in chunks of ``--chunk`` moves
(~0.1 s each, as a run loop would call it), printing every ~10 s the moves, the games
finished since the last line, their share reaching the game's top reach tile (2048 on
4x4) and their mean score. Then it
plays ``--eval-games`` fresh games greedily through ``evaluation.evaluate``, and with
``--search D`` another ``--search-games`` games with ``D``-ply expectimax.

    python bench/ntuple_throughput.py [--moves 1000000] [--repeats 5] [--threads 1,2] [--warmup N]
        [--minutes 1] [--learn-threads 0] [--eval-games 200] [--search 2]
        [--search-games 50] [--learning-rate 0.4] [--optimistic-init 0] [--coherence]
        [--coherence-after 0] [--stages ""] [--tuples 4x6] [--game 2048-4x4] [--seed 0]
        [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

import numpy as np

from g2048lab import games
from g2048lab.evaluation import evaluate
from g2048lab.learners.ntuple.network import NTupleConfig, NTupleNetwork


def moves_per_second(
    config: NTupleConfig, game: games.Game, moves: int, repeats: int, warmup: int = 10_000
) -> list[float]:
    """Train one network ``repeats`` times for ``moves`` moves after ``warmup`` moves (the
    compilation, the first pages, and with millions of moves, games as long as a trained
    network's); moves/s of each call."""
    network = NTupleNetwork(config, game)
    network.train(warmup)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        network.train(moves)
        runs.append(moves / (time.perf_counter() - start))
    return runs


def learn(
    config: NTupleConfig, game: games.Game, minutes: float, chunk: int, report
) -> NTupleNetwork:
    """Train a fresh network for ``minutes``; call ``report(row)`` about every 10 s."""
    network = NTupleNetwork(config, game)
    start = last = time.perf_counter()
    scores, tiles = [], []
    while (now := time.perf_counter()) - start < 60 * minutes:
        stats = network.train(chunk)
        scores.append(stats.scores)
        tiles.append(stats.max_tiles)
        if stats.hit_table_range:
            print(f"  {stats.range_games} game(s) could make 65536 and were ended there")
        if now - last >= 10:
            last = now
            report(summary_row(network, now - start, np.concatenate(scores), np.concatenate(tiles)))
            scores, tiles = [], []
    return network


def summary_row(network: NTupleNetwork, seconds: float, scores, tiles) -> dict:
    top = network.game.reach_tiles[-1]
    return {
        "seconds": round(seconds, 1),
        "moves": network.moves,
        "games": network.games,
        "recent_games": len(scores),
        "reach_tile": top,
        "recent_reach_share": float((tiles >= top).mean()) if len(tiles) else float("nan"),
        "recent_mean_score": float(scores.mean()) if len(scores) else float("nan"),
    }


def play(network: NTupleNetwork, games: int, depth: int, seed: int) -> dict:
    """Evaluate ``games`` games with greedy play (depth 1) or expectimax of ``depth``."""
    if depth == 1:
        policy = lambda obs: network.greedy_actions(obs["board"])  # noqa: E731
    else:  # imported here: the learner's module imports torch, which the timings need not
        from g2048lab.learners.ntuple.ntuple_learner import NTupleAgent

        policy = NTupleAgent(network).search_policy(depth)
    start = time.perf_counter()
    result = evaluate(policy, games, seed=seed, game=network.game)
    seconds = time.perf_counter() - start
    summary = result.summary()
    return {
        "depth": depth,
        "games": games,
        "mean_score": summary["mean_score"],
        "tile_share": {t: summary["tile_share"][t] for t in network.game.reach_tiles},
        # evaluate() steps every slot until the longest game ends: time per move played
        "ms_per_move": 1000 * seconds / (games * result.lengths.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=1_000_000, help="per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; 0 skips")
    parser.add_argument("--threads", default="1,2", help="thread counts timed, e.g. 1,2")
    parser.add_argument("--warmup", type=int, default=10_000, help="moves before timing")
    parser.add_argument("--learn-threads", type=int, default=0, help="0: every core")
    parser.add_argument("--minutes", type=float, default=1.0, help="learning check; 0 skips")
    parser.add_argument("--chunk", type=int, default=200_000, help="moves per train() call")
    parser.add_argument("--eval-games", type=int, default=200)
    parser.add_argument("--search", type=int, default=0, help="also evaluate this depth")
    parser.add_argument("--search-games", type=int, default=50)
    parser.add_argument("--learning-rate", type=float, default=NTupleConfig.learning_rate)
    parser.add_argument("--optimistic-init", type=float, default=NTupleConfig.optimistic_init)
    parser.add_argument("--coherence", action="store_true", help="temporal coherence")
    parser.add_argument("--coherence-after", type=int, default=0)
    parser.add_argument("--stages", default="")
    parser.add_argument("--tuples", default=NTupleConfig.tuples)
    parser.add_argument("--game", default=games.DEFAULT, help="2048-3x3, 2048-5x5, ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print only one JSON line")
    args = parser.parse_args()
    config = NTupleConfig(
        learning_rate=args.learning_rate,
        optimistic_init=args.optimistic_init,
        coherence=args.coherence,
        coherence_after=args.coherence_after,
        stages=args.stages,
        threads=args.learn_threads,
        tuples=args.tuples,
        seed=args.seed,
    )
    game = games.get(args.game)
    say = (lambda *a: None) if args.json else print
    result: dict = {"config": vars(args)}

    if args.repeats:
        result["moves_per_s"] = {}
        for threads in map(int, args.threads.split(",")):
            runs = moves_per_second(
                replace(config, threads=threads), game, args.moves, args.repeats, args.warmup
            )
            result["moves_per_s"][threads] = {"median": statistics.median(runs), "runs": runs}
            say(f"training moves/s, {threads} thread(s): median {statistics.median(runs):,.0f}")
            say("  runs: " + " ".join(f"{r:,.0f}" for r in runs))
        medians = [v["median"] for v in result["moves_per_s"].values()]
        if len(medians) > 1:
            say(f"  scaling, last over first: {medians[-1] / medians[0]:.2f}x")

    if args.minutes:
        share = f"{game.reach_tiles[-1]} share"
        header = ("s", 6), ("moves", 12), ("games", 7), ("recent", 7), (share, 11)
        say(" ".join(name.rjust(width) for name, width in header) + "  mean score")
        rows = []

        def report(row: dict) -> None:
            rows.append(row)
            say(
                f"{row['seconds']:>6.0f} {row['moves']:>12,} {row['games']:>7,} "
                f"{row['recent_games']:>7,} {row['recent_reach_share']:>11.1%} "
                f"{row['recent_mean_score']:>11,.0f}"
            )

        network = learn(config, game, args.minutes, args.chunk, report)
        result["learning"] = rows
        evaluations = [play(network, args.eval_games, 1, seed=12345)]
        if args.search > 1:
            evaluations.append(play(network, args.search_games, args.search, seed=12345))
        result["evaluation"] = evaluations
        for e in evaluations:
            say(
                f"depth {e['depth']}: {e['games']} games, mean score {e['mean_score']:,.0f}, "
                + "".join(f"{t} {p:.1%}, " for t, p in e["tile_share"].items())
                + f"{e['ms_per_move']:.3f} ms per move"
            )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
