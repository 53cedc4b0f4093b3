"""The ``g2048lab`` command."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from . import __version__
from .env import VecEnv
from .evaluation import TILE_THRESHOLDS, corner_policy, evaluate, random_policy
from .game import to_values
from .palette import tile_colors

POLICIES = {"random": lambda seed: random_policy(seed), "corner": lambda seed: corner_policy}


def board_table(board: np.ndarray, title: str = ""):
    """A rich Table of one (4, 4) exponent board, tiles coloured like the original game."""
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, show_lines=True, title=title, padding=(0, 1))
    for _ in range(4):
        table.add_column(justify="center", width=6)
    for row in to_values(board):
        cells = []
        for value in row:
            background, text = tile_colors(int(value))
            cells.append(Text(str(value) if value else "", style=f"bold {text} on {background}"))
        table.add_row(*cells)
    return table


def summary_table(rows: dict[str, dict]):
    """A rich Table of evaluation summaries, one row per policy or checkpoint."""
    from rich.table import Table

    table = Table(title="whole games")
    for column in ["policy", "games", "mean score", "median score", *map(str, TILE_THRESHOLDS)]:
        table.add_column(column, justify="right")
    for name, s in rows.items():
        shares = [f"{100 * s['tile_share'][t]:.1f}%" for t in TILE_THRESHOLDS]
        table.add_row(
            name, str(s["games"]), f"{s['mean_score']:,.0f}", f"{s['median_score']:,.0f}", *shares
        )
    return table


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="g2048lab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"g2048lab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    play = commands.add_parser("play", help="watch a baseline policy play, then compare policies")
    play.add_argument("--policy", choices=sorted(POLICIES), default="corner")
    play.add_argument("--games", type=positive_int, default=1000, help="games per policy")
    play.add_argument("--seed", type=int, default=0)
    play.add_argument("--delay", type=float, default=0.02, help="seconds between shown moves")
    play.add_argument("--no-watch", dest="watch", action="store_false", help="skip the live game")
    play.add_argument("--json", action="store_true", help="print the summary as JSON")
    play.set_defaults(run=cmd_play)
    return parser


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
