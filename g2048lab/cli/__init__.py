"""The ``g2048lab`` command: one module per command family.

g2048lab play | train | eval | runs | sweep | export | dashboard   (g2048lab COMMAND --help)
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..affinity import pin_from_env
from . import dashboard, evaluate, export_run, play, runs, sweep, train

__all__ = ["build_parser", "main"]

COMMANDS = (play, train, evaluate, runs, sweep, export_run, dashboard)

DESCRIPTION = (
    "Train 2048 players (a transformer trained with PPO, an n-tuple network), watch them "
    "play, evaluate them and compare their runs."
)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (argparse prints the whole usage block
    first); the subcommands' parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="g2048lab",
        description=DESCRIPTION,
        epilog="g2048lab COMMAND --help shows a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"g2048lab {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, title="commands", metavar="COMMAND"
    )
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:  # a sweep's trial keeps to its share of the cores (python -m g2048lab pins earlier)
        pin_from_env()
    except ValueError as error:
        print(f"g2048lab: error: {error}", file=sys.stderr)
        return 2
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, train_flags = sweep.split_train_flags(argv)
    args = build_parser().parse_args(argv)
    if args.command == "sweep":
        args.train = train_flags
    from ..checkpoint import CheckpointError
    from ..store import StoreError

    try:
        return args.run(args)
    except (CheckpointError, StoreError, ValueError, OSError, MemoryError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"g2048lab {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
