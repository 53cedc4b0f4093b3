"""``g2048lab export``: a run's metrics as CSV or TensorBoard event files, and a recorded game
as a self-contained HTML page or an animated GIF that plays it back."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..options.arg_types import DEFAULT_RUNS_DIR, run_name

if TYPE_CHECKING:
    from ..store import RunInfo, RunStore


def cmd_export(args: argparse.Namespace) -> int:
    from ..store import RunStore

    _check_request(args)
    store = RunStore(args.runs_dir, create=False)  # a reader: creates nothing
    run = store.get_run(args.name)  # RunNotFound names the runs there
    if args.html is not None or args.gif is not None:
        _export_game(args, store, run)
    if args.csv is not None or args.tensorboard is not None:
        _export_metrics(args, store.metrics(run.name), run)
    return 0


def _check_request(args: argparse.Namespace) -> None:
    """Refuse a request that cannot be done, before any work (a typo costs nothing)."""
    from ..export.files import check_folder_target, check_target

    files = [path for path in (args.csv, args.html, args.gif) if path is not None]
    if not files and args.tensorboard is None:
        raise ValueError(
            "say what to export: --csv FILE, --tensorboard DIR, --html FILE or --gif FILE"
        )
    if args.game is not None and args.html is None and args.gif is None:
        raise ValueError("--game picks the game for --html or --gif: add one of them")
    for path in files:
        check_target(path)  # write_atomic checks again when it writes
    if args.tensorboard is not None:
        check_folder_target(args.tensorboard, "--tensorboard")


def _export_game(args: argparse.Namespace, store: RunStore, run: RunInfo) -> None:
    from ..export.files import write_atomic
    from ..export.games import game_title, load_game

    summary, record = load_game(store, run.name, args.game or "best")
    game = (
        f"game {summary.id} ({' & '.join(sorted(summary.kinds))}: score {record.score:,}, "
        f"max tile {record.max_tile:,}, {record.length:,} moves)"
    )
    if args.html is not None:
        from ..export.game_html import game_html

        page = game_html(record, game_title(run.name, record), note=run.note)
        print(f"wrote {args.html}: {game}, {_size(write_atomic(args.html, page))}")
    if args.gif is not None:
        from ..export.game_gif import MAX_FRAMES, frame_positions, game_gif

        size = write_atomic(args.gif, game_gif(record, MAX_FRAMES))
        frames = len(frame_positions(record.length, MAX_FRAMES))
        print(f"wrote {args.gif}: {game} in {frames:,} frames, {_size(size)}")


def _export_metrics(args: argparse.Namespace, rows: list[dict], run: RunInfo) -> None:
    from ..export.files import write_atomic
    from ..export.metrics import metrics_csv, write_tensorboard

    if args.csv is not None:
        size = write_atomic(args.csv, metrics_csv(rows))
        print(f"wrote {args.csv}: {len(rows):,} metric rows, {_size(size)}")
    if args.tensorboard is not None:
        folder = write_tensorboard(args.tensorboard, run, rows)
        size = sum(path.stat().st_size for path in folder.iterdir())
        print(
            f"wrote {folder}: {len(rows):,} metric rows as TensorBoard events, {_size(size)}; "
            f"view with: tensorboard --logdir {args.tensorboard}"
        )


def game_choice(text: str) -> str | int:
    """``--game``: best, recent, latest or a game id."""
    from ..export.games import GAME_CHOICES

    if text in GAME_CHOICES:
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"choose {', '.join(GAME_CHOICES)} or a game id, got {text!r}"
        ) from None


def _size(n: int) -> str:
    """``_size(45301) -> "45.3 kB"``"""
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def add_parser(commands) -> None:
    export = commands.add_parser(
        "export",
        help="a run's metrics as CSV or TensorBoard events, a recorded game as HTML or GIF",
        description="Export a run's metrics as CSV or TensorBoard event files, and a recorded "
        "game as a self-contained HTML page or an animated GIF that plays it back. Several "
        "outputs may be asked for at once.",
    )
    export.add_argument("name", metavar="RUN", type=run_name, help="the run's name")
    export.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    export.add_argument("--csv", metavar="FILE", help="every metric row, one column per metric")
    export.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="event files in DIR/RUN (one scalar per metric, x: env steps), the config as "
        "text, hparams; needs the tensorboard package",
    )
    export.add_argument(
        "--html", metavar="FILE", help="one self-contained page that plays the game back"
    )
    export.add_argument("--gif", metavar="FILE", help="the game as an animated GIF; needs Pillow")
    export.add_argument(
        "--game",
        type=game_choice,
        metavar="best|recent|latest|ID",
        help="the game for --html and --gif: the best (default), the latest, or an id",
    )
    export.set_defaults(run=cmd_export)
