"""The ``g2048lab`` command."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

from . import __version__
from .env import VecEnv
from .evaluation import TILE_THRESHOLDS, corner_policy, evaluate, random_policy
from .game import to_values
from .palette import tile_colors
from .phone.serve import cmd_dashboard
from .status import LIVE, Status

DEFAULT_RUNS_DIR = "checkpoints"

POLICIES = {"random": random_policy, "corner": lambda seed: corner_policy}  # seed -> policy


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


def cmd_train(args: argparse.Namespace) -> int:
    """Train; with ``--distributed`` (under torchrun) rank 0 does what a single process does
    and the other ranks only train."""
    if not args.distributed:
        return _train_main(args, None)
    from .distributed import init_distributed

    dist = init_distributed(args.device, args.dist_timeout)
    try:
        return _train_main(args, dist) if dist.is_main else _train_worker(args, dist)
    finally:
        dist.close()


def _budget(args: argparse.Namespace) -> dict:
    budget = {}
    if args.steps is not None:
        budget["total_env_steps"] = args.steps
    if args.minutes is not None:
        budget["max_seconds"] = args.minutes * 60
    return budget


def _train_worker(args: argparse.Namespace, dist) -> int:
    """A rank other than 0: train in step with the others; no store, logs or checkpoints."""
    from .trainer import Trainer, TrainerConfig

    if args.resume:
        path = Path(args.resume)
        path = path if path.exists() else Path(args.runs_dir) / args.resume
        trainer = Trainer.from_checkpoint(path, dist=dist, threads=args.threads, **_budget(args))
    else:
        config = TrainerConfig(preset=args.preset or "auto", threads=args.threads,
                               seed=args.seed, **_budget(args))  # fmt: skip
        trainer = Trainer(config, dist=dist)
    try:
        trainer.run()
    except Exception as error:
        print(f"g2048lab train: error: {error}", file=sys.stderr)
        return 1
    return 0


def _train_main(args: argparse.Namespace, dist) -> int:
    """Train in a background thread; the main thread shows progress and handles Ctrl-C."""
    from .checkpoint import Checkpointer, CheckpointManager
    from .logs import JsonLinesLog
    from .runs import RunRecorder, RunStore
    from .trainer import Trainer, TrainerConfig

    store = RunStore(args.runs_dir)
    budget = _budget(args)
    claim = None
    if args.resume:
        checkpoint, name = _resume_target(store, args.resume)
        if name is not None:  # before reading anything: this process is the run's writer
            _say_how_it_ended(store.get_run(name))
            claim = store.claim(name)
        trainer = Trainer.from_checkpoint(
            checkpoint, dist=dist, device=args.device, threads=args.threads, **budget
        )
        if name is None:
            name = trainer.run_id if not _run_exists(store, trainer.run_id) else None
            run = store.create_run(name, config=_run_config(trainer), device=str(trainer.device))
            name = run.name
        else:  # what was recorded after the checkpoint is gone with the process that did it
            lost = store.rewind(name, trainer.iteration, trainer.env_steps)
            trainer.note(
                f"resumed from iteration {trainer.iteration} (lost {lost:,} env steps since "
                "the last checkpoint)"
            )
    else:
        if args.preset is not None:
            from .model import PRESETS

            if args.preset not in (*PRESETS, "auto"):
                raise ValueError(
                    f"unknown preset {args.preset!r}; choose one of {', '.join([*PRESETS, 'auto'])}"
                )
        name = args.run_name or time.strftime("run-%Y%m%d-%H%M%S")
        if _run_exists(store, name):
            raise ValueError(
                f"run {name!r} exists in {args.runs_dir}: pick another --run-name, "
                f"or continue it with --resume {name}"
            )
        config = TrainerConfig(
            preset=args.preset or "auto",
            device=args.device,
            threads=args.threads,
            seed=args.seed,
            run_id=name,
            **budget,
        )
        trainer = Trainer(config, dist=dist)
        store.create_run(name, config=_run_config(trainer), device=str(trainer.device))
    folder = store.run_dir(name)
    checkpointer = Checkpointer(
        CheckpointManager(folder),
        every_episodes=args.checkpoint_games,
        every_minutes=args.checkpoint_minutes,
    )
    trainer.subscribe(checkpointer)
    trainer.subscribe(RunRecorder(store, name, checkpoint=checkpointer.request, claim=claim))
    trainer.subscribe(JsonLinesLog(folder / "log.jsonl"))
    params = trainer.model.num_params()
    print(
        f"run {name}: preset {trainer.preset or 'custom'} ({params.total / 1e6:.2f} M "
        f"parameters) on {trainer.device}, {trainer.ppo.num_envs} games; folder {folder}",
        file=sys.stderr,
    )
    _train_with_progress(trainer, quiet=args.quiet, last_checkpoint=checkpointer)
    latest = checkpointer.manager.latest()
    saved = f"; last checkpoint {latest}" if latest else ""
    if trainer.state == Status.FAILED:
        print(
            f"g2048lab train: error: run {name} failed: {_one_line(trainer.error)}{saved}",
            file=sys.stderr,
        )
        return 1
    print(
        f"run {name} {trainer.state} after {trainer.env_steps:,} env steps{saved}", file=sys.stderr
    )
    return 0


def _one_line(error: BaseException) -> str:
    """``error`` for a person: its type and the first line of its message."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _say_how_it_ended(run) -> None:
    """Before resuming: a run that failed or was killed says so, and why."""
    if run.status in (Status.FAILED, Status.KILLED):
        how = "was killed" if run.status == Status.KILLED else "failed"
        print(f"run {run.name} {how}: {run.error}", file=sys.stderr)


def _run_exists(store, name: str) -> bool:
    from .runs import RunNotFound

    try:
        store.get_run(name)
    except RunNotFound:
        return False
    return True


def _resume_target(store, target: str) -> tuple[Path, str | None]:
    """A checkpoint file or folder, or a run name in the store -> (path, run name or None)."""
    path = Path(target)
    if path.exists():
        return path, None
    run = store.get_run(target)  # raises RunNotFound with the known names
    return store.run_dir(run.name), run.name


def _run_config(trainer) -> dict:
    from dataclasses import asdict

    return {
        "preset": trainer.preset,
        "model": asdict(trainer.model_config),
        "ppo": asdict(trainer.ppo),
        "reward": asdict(trainer.config.reward),
        "seed": trainer.config.seed,
        "total_env_steps": trainer.config.total_env_steps,
        "max_seconds": trainer.config.max_seconds,
    }


def _train_with_progress(trainer, quiet: bool, last_checkpoint) -> None:
    """Run ``trainer`` in its thread and show a live bar. SIGINT (Ctrl-C) and SIGTERM stop it
    cleanly, with a final checkpoint; repeats do not interrupt the saving; three within 5 s
    force an exit (``interrupts.py``). ``last_checkpoint``: the run's ``Checkpointer``."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .interrupts import Interrupts

    stop = threading.Event()  # set by the handler; acted on here, where no lock is held

    def lost() -> str:
        path = last_checkpoint.manager.latest()
        since = f"since the last checkpoint ({path})" if path else "of this process"
        return f"the run's work {since} is lost; resume with --resume {trainer.run_id}"

    restore = Interrupts().install(stop.set, lost)
    budget = trainer.config.total_env_steps or (trainer.config.max_seconds or 0)
    by_steps = trainer.config.total_env_steps is not None
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=quiet,
    )
    try:
        trainer.start()
        with progress:
            task = progress.add_task(trainer.run_id, total=budget or None, stats="starting")
            while trainer.state in (Status.IDLE, *LIVE):
                if stop.wait(0.5):
                    stop.clear()
                    trainer.stop()
                update = trainer.updates.latest()
                if update is None:
                    continue
                done = update.env_steps if by_steps else update.elapsed_s
                score = f"{update.score:,.0f}" if update.score is not None else "-"
                loss = f"{update.loss:.3f}" if update.loss is not None else "-"
                stats = (
                    f"{update.status} | {update.env_steps:,} steps | "
                    f"{update.steps_per_second:,.0f}/s | score {score} | "
                    f"best tile {update.max_tile} | loss {loss}"
                )
                progress.update(task, completed=done, stats=stats)
        with contextlib.suppress(BaseException):  # the caller reports state and error
            trainer.join()
    finally:
        restore()


def cmd_eval(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .device import select_device
    from .evaluation import model_policy
    from .model import GameTransformer, ModelConfig

    payload = load_checkpoint(args.checkpoint)
    device = select_device(args.device)
    model = GameTransformer(ModelConfig(**payload["model_config"])).to(device)
    model.load_state_dict(payload["model"])
    model.eval()
    policy = model_policy(model, greedy=not args.sampled, seed=args.seed)
    summary = evaluate(policy, args.games, seed=args.seed).summary()
    summary["checkpoint"] = str(args.checkpoint)
    summary["env_steps"] = payload["counters"]["env_steps"]
    if args.json:
        print(json.dumps(summary))
    else:
        from rich.console import Console

        label = f"{'sampled' if args.sampled else 'greedy'} @ {summary['env_steps']:,} steps"
        Console().print(summary_table({label: summary}))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from .runs import RunStore

    runs = RunStore(args.runs_dir).list_runs()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": r.name,
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
        "status",
        "env steps",
        "best score",
        "best tile",
        "device",
        "last update",
    ):
        table.add_column(column, justify="left" if column in ("run", "status") else "right")
    now = time.time()
    for r in runs:
        table.add_row(
            r.name,
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="g2048lab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"g2048lab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    play = commands.add_parser("play", help="watch a baseline policy play, then compare policies")
    play.add_argument("--policy", choices=sorted(POLICIES), default="corner")
    play.add_argument("--games", type=positive_int, default=1000, help="games per policy")
    play.add_argument("--seed", type=seed_number, default=0)
    play.add_argument("--delay", type=float, default=0.02, help="seconds between shown moves")
    play.add_argument("--no-watch", dest="watch", action="store_false", help="skip the live game")
    play.add_argument("--json", action="store_true", help="print the summary as JSON")
    play.set_defaults(run=cmd_play)

    train = commands.add_parser("train", help="train an agent (Ctrl-C stops with a checkpoint)")
    train.add_argument("--preset", default=None, help="tiny, cpu, small, base or auto (default)")
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int, help="env steps for the whole run")
    budget.add_argument("--minutes", type=positive_float, help="training minutes for the whole run")
    train.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    train.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    train.add_argument("--run-name", type=run_name, default=None, help="default: run-<date>-<time>")
    train.add_argument("--seed", type=seed_number, default=0)
    train.add_argument("--threads", type=positive_int, default=None, help="CPU threads")
    train.add_argument("--resume", metavar="RUN_NAME_OR_CHECKPOINT", default=None)
    train.add_argument("--checkpoint-minutes", type=positive_float, default=5.0)
    train.add_argument("--checkpoint-games", type=positive_int, default=None)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel under torchrun (NCCL on GPUs, gloo on CPUs)",
    )
    train.add_argument(
        "--dist-timeout",
        type=positive_float,
        default=60.0,
        help="seconds before a collective gives up on a silent rank",
    )
    train.set_defaults(run=cmd_train)

    evaluate_ = commands.add_parser("eval", help="play whole games greedily with a checkpoint")
    evaluate_.add_argument("checkpoint", help="a checkpoint file or a run folder")
    evaluate_.add_argument("--games", type=positive_int, default=200)
    evaluate_.add_argument("--seed", type=seed_number, default=10_000)
    evaluate_.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    evaluate_.add_argument("--sampled", action="store_true", help="sample moves, not argmax")
    evaluate_.add_argument("--json", action="store_true")
    evaluate_.set_defaults(run=cmd_eval)

    runs = commands.add_parser("runs", help="list the runs in a runs folder")
    runs.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(run=cmd_runs)

    dashboard = commands.add_parser(
        "dashboard", help="serve the live dashboard (the phone app) with Voila"
    )
    dashboard.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    dashboard.add_argument(
        "--run", dest="run_name", default=None, help="run name (default: the latest run)"
    )
    dashboard.add_argument("--port", type=port_number, default=8866)
    dashboard.add_argument(
        "--lan", action="store_true", help="listen on all interfaces (needs a token or password)"
    )
    secret = dashboard.add_mutually_exclusive_group()
    secret.add_argument("--token", default=None, help="default with --lan: a random one")
    secret.add_argument("--password", action="store_true", help="ask for a login password")
    dashboard.add_argument("--no-browser", action="store_true", help="only print the URL")
    dashboard.add_argument(
        "--cull-idle-s",
        type=positive_int,
        default=300,
        help="shut down the kernel of a closed page after this many idle seconds",
    )
    dashboard.set_defaults(run=cmd_dashboard)
    return parser


def positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def seed_number(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"a seed must be a non-negative integer (0, 1, 2, ...), got {value}"
        )
    return value


def run_name(text: str) -> str:
    from .runs import check_run_name  # light: no torch

    try:
        return check_run_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def port_number(text: str) -> int:
    value = _integer(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 1 to 65535, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError
    from .runs import StoreError

    try:
        return args.run(args)
    except (CheckpointError, StoreError, ValueError, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"g2048lab {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
