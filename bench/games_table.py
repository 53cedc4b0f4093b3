"""2048 on each board size: random play, the n-tuple learner after 2 minutes and PPO after 5.

    python bench/games_table.py [--games 2048-3x3 2048-4x4 2048-5x5 2048-6x6]
        [--ntuple-minutes 2] [--ppo-minutes 5] [--eval-games 200] [--random-games 1000]
        [--runs-dir DIR]

Everything goes through the ``g2048lab`` command, as a user would run it (the commands are
printed to stderr): ``play --game G --policy random --no-watch --json`` for random play,
``train --game G --learner ntuple --minutes M --threads 1`` and ``train --game G --preset
cpu --minutes M --threads 1`` beside it (the two learners of one board train at the same
time, one core each), then ``eval RUN --games N --json`` (greedy). Prints one JSON line per
(game, player) and a Markdown table at the end: mean score, best tile, and the share of
games reaching the board's two report tiles (``games.Game.reach_tiles``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from g2048lab import games

COMMAND = [sys.executable, "-m", "g2048lab"]


def run(args: list[str], wait: bool = True):
    """Run ``g2048lab ARGS``; its stdout's last line as JSON when waiting, else the process."""
    print("$ g2048lab " + " ".join(args), file=sys.stderr, flush=True)
    if not wait:
        return subprocess.Popen([*COMMAND, *args], stdout=subprocess.DEVNULL)
    out = subprocess.run([*COMMAND, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"g2048lab {' '.join(args)} failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def row(game: games.Game, player: str, summary: dict) -> dict:
    """The table's row of one player's evaluation summary."""
    shares = {int(tile): share for tile, share in summary["tile_share"].items()}
    return {
        "game": game.name,
        "player": player,
        "games": summary["games"],
        "mean_score": round(summary["mean_score"]),
        "best_tile": summary["max_tile"],
        **{f"reach_{tile}": shares.get(tile) for tile in game.reach_tiles},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", nargs="+", default=[f"2048-{n}x{n}" for n in range(3, 7)])
    parser.add_argument("--ntuple-minutes", type=float, default=2.0)
    parser.add_argument("--ppo-minutes", type=float, default=5.0)
    parser.add_argument("--eval-games", type=int, default=200)
    parser.add_argument("--random-games", type=int, default=1000)
    parser.add_argument("--runs-dir", default=None)
    args = parser.parse_args()
    runs = Path(args.runs_dir or tempfile.mkdtemp(prefix="games-table-"))
    rows = []
    for name in args.games:
        game = games.get(name)
        random_play = run(
            ["play", "--game", name, "--policy", "random", "--no-watch"]
            + ["--games", str(args.random_games), "--json"]
        )
        rows.append(row(game, "random", random_play["random"]))
        print(json.dumps(rows[-1]), flush=True)
        common = ["train", "--game", name, "--threads", "1", "--runs-dir", str(runs)]
        ntuple = run(
            [*common, "--learner", "ntuple", "--minutes", str(args.ntuple_minutes)]
            + ["--run-name", f"ntuple-{name}"],
            wait=False,
        )
        ppo = run(
            [*common, "--preset", "cpu", "--minutes", str(args.ppo_minutes)]
            + ["--run-name", f"ppo-{name}"],
            wait=False,
        )
        for process, learner, minutes in (
            (ntuple, "ntuple", args.ntuple_minutes),
            (ppo, "ppo", args.ppo_minutes),
        ):
            if process.wait() != 0:
                raise SystemExit(f"training {learner} on {name} failed")
            summary = run(
                ["eval", str(runs / f"{learner}-{name}"), "--games", str(args.eval_games)]
                + ["--json"]
            )
            rows.append(row(game, f"{learner} {minutes:g} min", summary))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| board | player | games | mean score | best tile | reached (share of games) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        reach = ", ".join(
            f"{tile}: {r[key]:.1%}" if r[key] is not None else f"{tile}: -"
            for key in r
            if key.startswith("reach_")
            for tile in [key.removeprefix("reach_")]
        )
        print(
            f"| {r['game']} | {r['player']} | {r['games']} | {r['mean_score']:,} | "
            f"{r['best_tile']:,} | {reach} |"
        )


if __name__ == "__main__":
    main()
