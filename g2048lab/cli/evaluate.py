"""``g2048lab eval``: play whole games with a checkpoint, greedily, sampled or with search."""

from __future__ import annotations

import argparse
import json
import time

from ..engine.search import MAX_BUDGET_DEPTH, MAX_DEPTH, SearchBudget
from ..evaluation import evaluate
from ..options.arg_types import positive_float, positive_int, seed_number
from .tables import summary_table

INTERVALS_NOTE = (
    "{games:,} games from seed {seed}. 95% intervals: the mean's by bootstrap over the "
    "games, each share's by Wilson."
)


def cmd_eval(args: argparse.Namespace) -> int:
    from ..device import select_device
    from ..learners.loading import load_agent

    budget = search_budget(args)  # before loading: a bad search is refused at once
    if budget is not None and args.sampled:
        raise ValueError("--search plays the best move it finds: drop --sampled")
    loaded = load_agent(args.checkpoint, select_device(args.device))
    agent, name, payload = loaded.agent, loaded.learner, loaded.payload
    if budget is not None:
        policy = agent.search_policy(budget.depth, budget.seconds, budget.nodes)
        how = budget.describe()
    else:
        policy = agent.policy(greedy=not args.sampled, seed=args.seed)
        how = "sampled" if args.sampled else "greedy"
    start = time.perf_counter()
    result = evaluate(policy, args.games, seed=args.seed, game=loaded.game)
    seconds = time.perf_counter() - start
    summary = result.summary()
    summary.update(
        checkpoint=str(args.checkpoint),
        learner=name,
        play=how,
        seed=args.seed,
        env_steps=payload["counters"]["env_steps"],
        ms_per_move=1000 * seconds / max(1, int(result.lengths.sum())),
    )
    if budget is not None:
        summary["search_mean_depth"] = policy.mean_depth
    if args.json:
        print(json.dumps(summary))
    else:
        from rich.console import Console

        console = Console()
        console.print(
            f"{args.checkpoint}: {name} after {summary['env_steps']:,} env steps "
            f"of {loaded.game.title}",
            markup=False,
            highlight=False,
        )
        console.print(summary_table({f"{name}, {how}": summary}))
        console.print(
            INTERVALS_NOTE.format(games=summary["games"], seed=args.seed), highlight=False
        )
        print(f"{summary['ms_per_move']:.3f} ms per move (all games in one batch)")
        if budget is not None and budget.budgeted:
            print(f"search reached depth {policy.mean_depth:.2f} per move on average")
    return 0


def search_budget(args: argparse.Namespace) -> SearchBudget | None:
    """The search ``--search``, ``--search-seconds`` and ``--search-nodes`` ask for (None:
    none); ValueError in words for a depth out of range."""
    if args.search is None and args.search_seconds is None and args.search_nodes is None:
        return None
    return SearchBudget(args.search, args.search_seconds, args.search_nodes)


def add_search_flags(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """``--search DEPTH``, ``--search-seconds S`` and ``--search-nodes N`` (read by
    ``search_budget``); ``prefix`` starts each help text."""
    parser.add_argument(
        "--search",
        type=positive_int,
        default=None,
        metavar="DEPTH",
        help=f"{prefix}expectimax over the learner's value, DEPTH moves deep, 1 to {MAX_DEPTH} "
        f"(1 = greedy over afterstates); with a budget, the deepest it may go, 1 to "
        f"{MAX_BUDGET_DEPTH} (default {MAX_BUDGET_DEPTH})",
    )
    parser.add_argument(
        "--search-seconds",
        type=positive_float,
        default=None,
        metavar="S",
        help=f"{prefix}search each move as deep as S seconds allow (iterative deepening; "
        "depth 1 always completes)",
    )
    parser.add_argument(
        "--search-nodes",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"{prefix}search each move as deep as N spawned boards allow (iterative "
        "deepening; depth 1 always completes)",
    )


def add_parser(commands) -> None:
    evaluate_ = commands.add_parser(
        "eval", help="play whole games with a checkpoint: greedy, sampled or with search"
    )
    evaluate_.add_argument("checkpoint", help="a checkpoint file or a run folder")
    evaluate_.add_argument("--games", type=positive_int, default=200)
    evaluate_.add_argument(
        "--seed",
        type=seed_number,
        default=10_000,
        help="seeds the games (and sampled moves): the same seed plays the same games, so "
        "two checkpoints are measured alike (default 10000)",
    )
    evaluate_.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    evaluate_.add_argument("--sampled", action="store_true", help="sample moves, not argmax")
    add_search_flags(evaluate_)
    evaluate_.add_argument("--json", action="store_true")
    evaluate_.set_defaults(run=cmd_eval)
