"""``g2048lab train``: train a learner, in one process or as a rank under torchrun."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from pathlib import Path

from .. import games, learners
from ..options.train_flags import add_train_arguments, checked_settings
from ..status import LIVE, Status


def cmd_train(args: argparse.Namespace) -> int:
    """Train; with ``--distributed`` (under torchrun) rank 0 does what a single process does
    and the other ranks only train."""
    if not args.distributed:
        return _train_main(args, None)
    if not learners.get(args.learner).distributed:
        raise ValueError(f"the {args.learner} learner trains in one process: drop --distributed")
    from ..distributed import init_distributed

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
    checkpoint = None
    if args.resume:
        path = Path(args.resume)
        checkpoint = path if path.exists() else Path(args.runs_dir) / args.resume
    trainer = build_trainer(args, dist, checkpoint=checkpoint)
    try:
        trainer.run()
    except Exception as error:
        print(f"g2048lab train: error: {error}", file=sys.stderr)
        return 1
    return 0


def build_trainer(args: argparse.Namespace, dist, run_id: str | None = None, checkpoint=None):
    """The ``Trainer`` the command line asks for, in a single process or on any torchrun
    rank: a new run of ``--game`` from ``--learner`` and the learner's settings
    (``--preset``, ``--teacher``, its ``--PREFIX.*`` flags: ``Learner.config_from_flags``),
    or the run saved at ``checkpoint`` (on its own game: another ``--game`` is refused)."""
    from ..trainer import Trainer, TrainerConfig

    budget = _budget(args)
    given = checked_settings(args)
    teacher = _teacher_source(args) if args.teacher is not None else None
    if checkpoint is not None:
        if given:
            flag = f"--{next(iter(given))}.*"
            raise ValueError(f"{flag} flags cannot change a resumed run: start a new run instead")
        device = args.device if dist is None else "auto"
        game = {"game": args.game} if args.game is not None else {}
        return Trainer.from_checkpoint(
            checkpoint,
            dist=dist,
            teacher_source=teacher,  # --teacher on --resume: where the teacher is now
            device=device,
            threads=args.threads,
            **game,
            **budget,
        )
    learner = learners.get(args.learner)
    settings = learner.config_from_flags(
        given,
        preset=args.preset if learner.presets else None,
        teacher=teacher,
        device=dist.device if dist else args.device,
    )
    config = TrainerConfig(
        learner=args.learner,
        learner_config=settings,
        game=args.game or games.DEFAULT,
        device=args.device,
        threads=args.threads,
        seed=args.seed,
        run_id=run_id,
        **budget,
    )
    return Trainer(config, dist=dist)


def _teacher_source(args: argparse.Namespace) -> str:
    """--teacher as an absolute path: a checkpoint file or run folder, or a run's name."""
    path = Path(args.teacher)
    if not path.exists():
        path = Path(args.runs_dir) / args.teacher
    if not path.exists():
        raise ValueError(
            f"--teacher {args.teacher}: no such checkpoint file, run folder or run in "
            f"{args.runs_dir}; `g2048lab runs` lists the runs"
        )
    return str(path.resolve())


def _train_main(args: argparse.Namespace, dist) -> int:
    """Train in a background thread; the main thread shows progress and handles Ctrl-C."""
    from ..checkpoint import Checkpointer, CheckpointManager
    from ..logs import JsonLinesLog
    from ..store import RunRecorder, RunStore

    claim = None
    if args.resume:
        store = RunStore(args.runs_dir)
        checkpoint, name = _resume_target(store, args.resume)
        if name is not None:  # before reading anything: this process is the run's writer
            _say_how_it_ended(store.get_run(name))
            claim = store.claim(name)
        trainer = build_trainer(args, dist, checkpoint=checkpoint)
        if name is None:
            name = trainer.run_id if not _run_exists(store, trainer.run_id) else None
            run = store.create_run(name, config=_run_config(trainer), device=str(trainer.device))
            name = run.name
        else:  # what was recorded after the checkpoint is gone with the process that did it
            trainer.run_id = name  # the checkpoint has the name it was saved under: renamed since?
            lost = store.rewind(
                name, trainer.iteration, trainer.env_steps, checkpoint_row=trainer.checkpoint_row
            )
            store.set_config(name, _run_config(trainer))  # a new budget or teacher's place
            trainer.note(
                f"resumed from iteration {trainer.iteration} (lost {lost:,} env steps since "
                "the last checkpoint)"
            )
    else:
        name = args.run_name
        if name is not None and _name_taken(args.runs_dir, name):
            raise ValueError(
                f"run {name!r} exists in {args.runs_dir}: pick another --run-name, "
                f"or continue it with --resume {name}"
            )
        # the settings are checked as the trainer is built, before the store is touched: a
        # bad flag leaves no runs folder behind
        trainer = build_trainer(args, dist, run_id=name)
        store = RunStore(args.runs_dir)
        # without a name the store picks a free one in its transaction: runs started
        # together never clash
        run = store.create_run(name, config=_run_config(trainer), device=str(trainer.device))
        name = trainer.run_id = run.name
    folder = store.run_dir(name)
    checkpointer = Checkpointer(
        CheckpointManager(folder),
        every_episodes=args.checkpoint_games,
        every_minutes=args.checkpoint_minutes,
    )
    trainer.subscribe(checkpointer)
    trainer.subscribe(RunRecorder(store, name, checkpoint=checkpointer.request, claim=claim))
    trainer.subscribe(JsonLinesLog(folder / "log.jsonl"))
    print(
        f"run {name}: {trainer.learner.describe()} on {trainer.device}; folder {folder}",
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


def _name_taken(runs_dir: str, name: str) -> bool:
    """Whether a run of that name is in ``runs_dir``, read without creating anything."""
    from ..store import RunStore

    return Path(runs_dir).is_dir() and _run_exists(RunStore(runs_dir, create=False), name)


def _run_exists(store, name: str) -> bool:
    from ..store import RunNotFound

    try:
        store.get_run(name)
    except RunNotFound:
        return False
    return True


def _resume_target(store, target: str) -> tuple[Path, str | None]:
    """A checkpoint file or folder, or a run name in the store -> (path, run name or None).

    A file or folder of a run in this store continues that run (from an earlier checkpoint
    when the latest is damaged); one from elsewhere starts a new run from it."""
    path = Path(target)
    if not path.exists():
        run = store.get_run(target)  # raises RunNotFound with the known names
        return store.run_dir(run.name), run.name
    folder = (path if path.is_dir() else path.parent).resolve()
    if folder.parent == store.root.resolve() and _run_exists(store, folder.name):
        return path, folder.name
    return path, None


def _run_config(trainer) -> dict:
    from ..device import usable_cores

    return {
        "learner": trainer.learner.name,
        "game": trainer.game.name,
        **trainer.learner.config_dict(),
        "seed": trainer.config.seed,
        "threads": trainer.threads,  # torch CPU threads; None on CUDA
        "cores": usable_cores(),  # the CPU cores it could use (a sweep pins each trial to some)
        "total_env_steps": trainer.config.total_env_steps,
        "max_seconds": trainer.config.max_seconds,
    }


def _train_with_progress(trainer, quiet: bool, last_checkpoint) -> None:
    """Run ``trainer`` in its thread and show a live bar. SIGINT (Ctrl-C) and SIGTERM stop it
    cleanly, with a final checkpoint; repeats do not interrupt the saving; three within 5 s
    force an exit (``interrupts.py``). ``last_checkpoint``: the run's ``Checkpointer``."""
    from rich.console import Console

    from ..interrupts import Interrupts

    stop = threading.Event()  # set by the handler; acted on here, where no lock is held

    def lost() -> str:
        path = last_checkpoint.manager.latest()
        since = f"since the last checkpoint ({path})" if path else "of this process"
        return f"the run's work {since} is lost; resume with --resume {trainer.run_id}"

    restore = Interrupts().install(stop.set, lost)
    budget = trainer.config.total_env_steps or (trainer.config.max_seconds or 0)
    by_steps = trainer.config.total_env_steps is not None
    progress = training_progress(Console(stderr=True), disable=quiet)
    try:
        trainer.start()
        with progress:
            task = progress.add_task(trainer.run_id, total=budget or None, stats=["starting"])
            while trainer.state in (Status.IDLE, *LIVE):
                if stop.wait(0.5):
                    stop.clear()
                    trainer.stop()
                update = trainer.updates.latest()
                if update is None:
                    continue
                done = update.env_steps if by_steps else update.elapsed_s
                progress.update(task, completed=done, stats=progress_stats(update))
        with contextlib.suppress(BaseException):  # the caller reports state and error
            trainer.join()
    finally:
        restore()


def training_progress(console, disable: bool = False):
    """A rich Progress that fits 80 columns and cuts no number: per task a line of the run
    name, a bar, the percentage and the time, then its ``stats`` field (a list of short
    items, ``progress_stats``) on lines of their own, broken only between items. A name too
    long to share its line folds; the bar gives way first."""
    from rich.padding import Padding
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
    from rich.table import Column
    from rich.text import Text

    class TwoLineProgress(Progress):
        def get_renderables(self):
            yield self.make_tasks_table(self.tasks)
            for task in self.tasks:
                lines = _pack(task.fields.get("stats", []), " | ", self.console.width - 2)
                yield Padding(Text("\n".join(lines), no_wrap=True), (0, 0, 0, 2))

    return TwoLineProgress(
        TextColumn("[bold]{task.description}", table_column=Column(overflow="fold")),
        BarColumn(bar_width=None, table_column=Column(ratio=1)),
        TaskProgressColumn(table_column=Column(no_wrap=True)),
        TimeElapsedColumn(table_column=Column(no_wrap=True)),
        console=console,
        disable=disable,
        expand=True,
    )


def _pack(items: list[str], separator: str, width: int) -> list[str]:
    """``items`` joined by ``separator`` into lines of at most ``width`` characters where
    they fit, a line breaking only between items."""
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + len(separator) + len(item) <= width:
            lines[-1] += separator + item
        else:
            lines.append(item)
    return lines


def progress_stats(update) -> list[str]:
    """One ``TrainingUpdate`` as short items: status, env steps, speed, score, tile, loss."""
    score = f"{update.score:,.0f}" if update.score is not None else "-"
    loss = f"{update.loss:.3f}" if update.loss is not None else "-"
    return [
        update.status,
        f"{update.env_steps:,} steps",
        f"{update.steps_per_second:,.0f}/s",
        f"score {score}",
        f"best tile {update.max_tile}",
        f"loss {loss}",
    ]


def add_parser(commands) -> None:
    train = commands.add_parser("train", help="train an agent (Ctrl-C stops with a checkpoint)")
    add_train_arguments(train)
    train.set_defaults(run=cmd_train)
