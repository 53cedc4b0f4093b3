"""``g2048lab runs``: the runs in a runs folder, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import time

from .args import DEFAULT_RUNS_DIR


def cmd_runs(args: argparse.Namespace) -> int:
    from ..runs import RunStore

    runs = RunStore(args.runs_dir).list_runs()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": r.name,
                        "learner": r.config.get("learner", "ppo"),
                        "status": r.status,
                        "env_steps": r.env_steps,
                        "iteration": r.iteration,
                        "best_score": r.best_score,
                        "max_tile": r.max_tile,
                        "device": r.device,
                        "created_at": r.created_at,
                        "updated_at": r.updated_at,
                        "error": r.error,
                        "writer": str(r.writer) if r.writer else None,
                    }
                    for r in runs
                ]
            )
        )
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"runs in {args.runs_dir}")
    for column in (
        "run",
        "learner",
        "status",
        "env steps",
        "best score",
        "best tile",
        "device",
        "last update",
    ):
        table.add_column(
            column, justify="left" if column in ("run", "learner", "status") else "right"
        )
    now = time.time()
    for r in runs:
        table.add_row(
            r.name,
            r.config.get("learner", "ppo"),
            r.status,
            f"{r.env_steps:,}",
            f"{r.best_score:,}",
            str(r.max_tile),
            r.device,
            _ago(now - r.updated_at),
        )
    console = Console()
    console.print(table)
    for r in runs:  # why each failed or killed run ended, in full
        if r.error:
            console.print(f"{r.name} {r.status}: {r.error}", soft_wrap=True)
    return 0


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def add_parser(commands) -> None:
    runs = commands.add_parser("runs", help="list the runs in a runs folder")
    runs.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(run=cmd_runs)
