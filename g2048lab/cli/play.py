"""``g2048lab play``: watch a baseline policy play, then compare policies."""

from __future__ import annotations

import argparse
import json
import time

from ..env import VecEnv
from ..evaluation import corner_policy, evaluate, random_policy
from .args import positive_int, seed_number
from .tables import board_table, summary_table

POLICIES = {"random": random_policy, "corner": lambda seed: corner_policy}  # seed -> policy


def cmd_play(args: argparse.Namespace) -> int:
    """Watch one game live, then compare policies over many games."""
    from rich.console import Console
    from rich.live import Live

    console = Console()
    policy = POLICIES[args.policy](args.seed)
    if args.watch:
        env = VecEnv(1, seed=args.seed)
        obs, info = env.reset()
        with Live(board_table(obs["board"][0]), console=console, auto_refresh=False) as live:
            while True:
                obs, _, terminated, _, info = env.step(policy(obs))
                board = info["final_board"][0] if terminated[0] else obs["board"][0]
                score = info["episode"]["score"][0] if terminated[0] else info["score"][0]
                live.update(board_table(board, f"{args.policy}: score {score:,}"), refresh=True)
                if terminated[0]:
                    break
                time.sleep(args.delay)
    rows = {
        name: evaluate(make(args.seed), args.games, seed=args.seed).summary()
        for name, make in POLICIES.items()
    }
    if args.json:
        print(json.dumps(rows))
    else:
        console.print(summary_table(rows))
    return 0


def add_parser(commands) -> None:
    play = commands.add_parser("play", help="watch a baseline policy play, then compare policies")
    play.add_argument("--policy", choices=sorted(POLICIES), default="corner")
    play.add_argument("--games", type=positive_int, default=1000, help="games per policy")
    play.add_argument("--seed", type=seed_number, default=0)
    play.add_argument("--delay", type=float, default=0.02, help="seconds between shown moves")
    play.add_argument("--no-watch", dest="watch", action="store_false", help="skip the live game")
    play.add_argument("--json", action="store_true", help="print the summary as JSON")
    play.set_defaults(run=cmd_play)
