"""``g2048lab play``: watch a policy play (a baseline, or a checkpoint's learner, with or
without search), then compare it with the baselines."""

from __future__ import annotations

import argparse
import json
import time

from .. import games
from ..engine.env import VecEnv
from ..engine.search import SearchBudget
from ..evaluation import corner_policy, evaluate, random_policy
from ..options.arg_types import game_name, positive_int, seed_number
from .evaluate import INTERVALS_NOTE, add_search_flags, search_budget
from .tables import board_table, summary_table

POLICIES = {"random": random_policy, "corner": lambda seed: corner_policy}  # seed -> policy


def cmd_play(args: argparse.Namespace) -> int:
    """Watch one game live, then compare policies over many games."""
    from rich.console import Console
    from rich.live import Live

    budget = search_budget(args)  # before loading: a bad search is refused at once
    if budget is not None and args.checkpoint is None:
        raise ValueError("--search needs --checkpoint: a baseline has no value to search with")
    console = Console()
    players = {name: make(args.seed) for name, make in POLICIES.items()}
    shown, game = args.policy, games.get(args.game)  # --game, else the checkpoint's, else 4x4
    if args.checkpoint is not None:
        shown, game = _checkpoint_player(args, players, budget)
    policy = players[shown]
    if args.watch:
        env = VecEnv(1, seed=args.seed, game=game)
        obs, info = env.reset()
        start = board_table(obs["board"][0], caption=game.title)
        with Live(start, console=console, auto_refresh=False) as live:
            while True:
                obs, _, terminated, _, info = env.step(policy(obs))
                board = info["final_board"][0] if terminated[0] else obs["board"][0]
                score = info["episode"]["score"][0] if terminated[0] else info["score"][0]
                title = f"{shown}: score {score:,}"
                live.update(board_table(board, title, game.title), refresh=True)
                if terminated[0]:
                    break
                time.sleep(args.delay)
    rows = {
        name: evaluate(player, args.games, seed=args.seed, game=game).summary()
        for name, player in players.items()
    }
    if args.json:
        print(json.dumps(rows))
    else:
        console.print(summary_table(rows))
        note = INTERVALS_NOTE.format(games=args.games, seed=args.seed)
        console.print(f"Each policy, on {game.title}: {note}", highlight=False)
    return 0


def _checkpoint_player(
    args: argparse.Namespace, players: dict, budget: SearchBudget | None
) -> tuple[str, games.Game]:
    """Add the checkpoint's player to ``players``; returns its name and its game (a
    ``--game`` other than the checkpoint's is refused: a player plays the game it learned)."""
    from ..device import select_device
    from ..learners.loading import load_agent

    loaded = load_agent(args.checkpoint, select_device("auto"))
    if args.game is not None and args.game != loaded.game.name:
        raise ValueError(
            f"{args.checkpoint} plays {loaded.game.name}, not {args.game}: drop --game "
            "(a checkpoint's player plays the game it learned)"
        )
    agent = loaded.agent
    if budget is None:
        players[loaded.learner] = agent.policy()
        return loaded.learner, loaded.game
    how = budget.describe() if budget.budgeted else f"search {budget.cap}"
    name = f"{loaded.learner} {how}"
    players[name] = agent.search_policy(budget.depth, budget.seconds, budget.nodes)
    return name, loaded.game


def add_parser(commands) -> None:
    play = commands.add_parser("play", help="watch a baseline policy play, then compare policies")
    play.add_argument("--policy", choices=sorted(POLICIES), default="corner")
    play.add_argument(
        "--game",
        type=game_name,
        default=None,
        help=f"the game to play ({', '.join(games.names())}, or 2048-RxC); default "
        f"{games.DEFAULT}, or the checkpoint's",
    )
    play.add_argument(
        "--checkpoint", default=None, help="watch this checkpoint's learner (a file or run folder)"
    )
    add_search_flags(play, "with --checkpoint: ")
    play.add_argument("--games", type=positive_int, default=1000, help="games per policy")
    play.add_argument("--seed", type=seed_number, default=0)
    play.add_argument("--delay", type=float, default=0.02, help="seconds between shown moves")
    play.add_argument("--no-watch", dest="watch", action="store_false", help="skip the live game")
    play.add_argument("--json", action="store_true", help="print the summary as JSON")
    play.set_defaults(run=cmd_play)
