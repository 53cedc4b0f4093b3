"""``g2048lab runs``: list, filter and compare the runs in a runs folder; tag, note, rename
and delete them (USAGE, its --help, says how)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .. import learners
from ..status import Status
from .args import DEFAULT_RUNS_DIR

USAGE = """\
  g2048lab runs [--tag TAG]... [--learner NAME] [--status STATUS] [--json]
  g2048lab runs --compare A B [C ...] [--json]   settings that differ, where each ended up
  g2048lab runs tag NAME TAG [TAG ...]           add tags (letters, digits, - _ . :)
  g2048lab runs untag NAME TAG [TAG ...]         remove tags
  g2048lab runs note NAME [TEXT ...]             set the run's note (no TEXT: clear it)
  g2048lab runs rename OLD NEW                   the run and its folder of checkpoints
  g2048lab runs delete NAME [--yes]              its rows and files, after asking

--runs-dir DIR goes before or after the action. Tags, notes and filters work while a
run trains; rename and delete wait until it has stopped."""

COMPARED = {  # final metric -> its label in --compare's table
    "rollout/score_mean": "recent mean score",
    "rollout/best_score": "best score",
    "rollout/max_tile": "best tile",
    "rollout/reach_1024": "recent games reaching 1024",
    "rollout/reach_2048": "recent games reaching 2048",
    "env_steps": "env steps",
    "time/elapsed_s": "wall time",
    "time/steps_per_s": "steps/s",
}
# two-line headers keep the number columns narrow: the table fits 100 columns
RUN_COLUMNS = ("run", "learner", "status", "tags", "env\nsteps", "best\nscore", "best\ntile",
               "device", "last\nupdate")  # fmt: skip
MAX_COMPARED = 8  # runs side by side: more would not fit a terminal


def cmd_runs(args: argparse.Namespace) -> int:
    from ..runs import RunStore

    store = RunStore(args.runs_dir)
    if args.compare is not None:
        return _compare(store, args)
    runs = [r for r in store.list_runs() if _selected(r, args)]
    if args.json:
        print(json.dumps([_run_json(r) for r in runs]))
        return 0
    _print_runs(runs, args.runs_dir)
    return 0


def _selected(run, args: argparse.Namespace) -> bool:
    """Whether ``run`` passes the filters: every --tag, --learner, --status."""
    return (
        set(args.tag) <= set(run.tags)
        and args.learner in (None, run.learner)
        and args.status in (None, run.status)
    )


def _run_json(r) -> dict:
    return {
        "name": r.name,
        "learner": r.learner,
        "preset": r.config.get("preset"),
        "status": r.status,
        "tags": list(r.tags),
        "note": r.note,
        "env_steps": r.env_steps,
        "iteration": r.iteration,
        "episodes": r.episodes,
        "best_score": r.best_score,
        "max_tile": r.max_tile,
        "device": r.device,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "error": r.error,
        "writer": str(r.writer) if r.writer else None,
        "config": r.config,
    }


def _print_runs(runs: list, runs_dir: str) -> None:
    from rich.console import Console
    from rich.table import Table

    now = time.time()
    rows = [
        (
            r.name,
            r.learner,
            r.status,
            " ".join(r.tags),
            f"{r.env_steps:,}",
            f"{r.best_score:,}",
            str(r.max_tile),
            r.device,
            _ago(now - r.updated_at),
        )
        for r in runs
    ]
    table = Table(title=f"runs in {runs_dir}")
    for i, column in enumerate(RUN_COLUMNS):  # names and tags fold; the rest keep their width
        folds = column in ("run", "tags")
        table.add_column(
            column,
            justify="left" if i < 4 else "right",
            overflow="fold",
            no_wrap=not folds,
            min_width=10 if folds else None,
        )
    for row in rows:
        table.add_row(*row)
    console = Console()
    console.print(table)
    for r in runs:  # why each failed or killed run ended, in full
        if r.error:
            console.print(f"{r.name} {r.status}: {r.error}", soft_wrap=True)


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


# --- comparing ----------------------------------------------------------------------------


def _compare(store, args: argparse.Namespace) -> int:
    from ..compare import config_diff

    names = args.compare
    if args.tag or args.learner or args.status:
        raise ValueError("--compare takes the runs it names: drop --tag, --learner and --status")
    if not 2 <= len(names) <= MAX_COMPARED:
        raise ValueError(f"--compare takes 2 to {MAX_COMPARED} runs, got {len(names)}")
    if len(set(names)) < len(names):
        raise ValueError("--compare names a run twice: name each run once")
    runs = {name: store.get_run(name) for name in names}
    diff = config_diff({name: run.config for name, run in runs.items()})
    metrics = {name: _where_it_ended(store, run) for name, run in runs.items()}
    if args.json:
        print(json.dumps({"config": diff, "metrics": metrics}))
    else:
        _print_comparison(names, diff, metrics)
    return 0


def _where_it_ended(store, run) -> dict[str, float | None]:
    """The COMPARED metrics of ``run``: its last metric values, and its counters from the run
    itself, which follow every message and so are newer than its last metric row."""
    from ..compare import final_metrics

    return {
        **final_metrics(store.metrics(run.name), tuple(COMPARED)),
        "env_steps": run.env_steps,
        "rollout/best_score": run.best_score,
        "rollout/max_tile": run.max_tile,
    }


def _print_comparison(names: list[str], diff: dict, metrics: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if diff:
        table = Table(title="settings that differ")
        for column in ("setting", *names):
            table.add_column(column, overflow="fold")
        for key, values in diff.items():
            table.add_row(key, *(_setting(values[name]) for name in names))
        console.print(table)
    else:
        console.print(f"{', '.join(names)}: the same settings")
    table = Table(title="where each run ended up")
    table.add_column("metric")
    for name in names:
        table.add_column(name, justify="right")
    for key, label in COMPARED.items():
        table.add_row(label, *(_metric(key, metrics[name][key]) for name in names))
    console.print(table)


def _setting(value: object) -> str:
    """A setting as the config's JSON writes it; "-" for None or missing."""
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value)


def _metric(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if key == "time/elapsed_s":
        return _duration(value)
    if key.startswith("rollout/reach_"):
        return f"{100 * value:.1f} %"
    return str(int(value)) if key == "rollout/max_tile" else f"{value:,.0f}"


def _duration(seconds: float) -> str:
    """``42 -> "42 s"``, ``150 -> "2.5 min"``, ``5400 -> "1.5 h"``"""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


# --- managing runs ------------------------------------------------------------------------


def cmd_tag(args: argparse.Namespace) -> int:
    """``runs tag`` and ``runs untag``."""
    from ..runs import RunStore

    store = RunStore(args.runs_dir)
    tags = set(store.get_run(args.name).tags)
    tags = tags | set(args.tags) if args.action == "tag" else tags - set(args.tags)
    tags = store.set_tags(args.name, tags)
    print(f"run {args.name}: tags {', '.join(tags) if tags else '(none)'}")
    return 0


def cmd_note(args: argparse.Namespace) -> int:
    from ..runs import RunStore

    note = " ".join(args.text)
    RunStore(args.runs_dir).set_note(args.name, note)
    said = f"note set ({len(note)} characters)" if note else "note cleared"
    print(f"run {args.name}: {said}")
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    from ..runs import RunStore

    store = RunStore(args.runs_dir)
    store.rename_run(args.old, args.new)
    print(f"renamed run {args.old} to {args.new}; its folder is {store.root / args.new}")
    _warn_students(store, args.old, "moved")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from ..runs import RunStore

    store, name = RunStore(args.runs_dir), args.name
    size = store.run_size(name)
    if not args.yes and not sys.stdin.isatty():
        raise ValueError(f"delete run {name}: no terminal to ask on; add --yes to delete it")
    _warn_students(store, name, "gone")
    if not args.yes:
        question = (
            f"delete run {name}: {_files(size.checkpoint_files)}, "
            f"{size.folder_bytes / 1e6:.1f} MB, {size.metric_rows:,} metric rows? [y/N] "
        )
        try:
            answer = input(question)
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print(f"kept run {name}")
            return 1
    freed = store.delete_run(name)
    print(
        f"deleted run {name}: {_files(freed.checkpoint_files)} "
        f"({freed.folder_bytes / 1e6:.1f} MB) and {freed.rows:,} rows of the store"
    )
    return 0


def _files(count: int) -> str:
    return f"{count} checkpoint file{'' if count == 1 else 's'}"


def _warn_students(store, name: str, what: str) -> None:
    """Runs kickstarted from the checkpoints of run ``name`` (--teacher) load them from its
    folder again to resume: say so when that folder moves or goes (``what``)."""
    folder = (store.root / name).resolve()
    students = [r.name for r in store.list_runs() if _taught_from(r.config, folder)]
    if students:
        print(
            f"warning: {', '.join(students)} learned from {folder} (--teacher) and read it "
            f"again to resume: once it is {what}, they cannot resume",
            file=sys.stderr,
        )


def _taught_from(config: dict, folder: Path) -> bool:
    teacher = config.get("teacher")
    source = teacher.get("source") if isinstance(teacher, dict) else None
    return bool(source) and Path(source).resolve().is_relative_to(folder)


def add_parser(commands) -> None:
    runs = commands.add_parser(
        "runs",
        help="list, filter, compare, tag, note, rename and delete runs",
        description=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    runs.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    runs.add_argument("--json", action="store_true", help="JSON instead of tables")
    runs.add_argument(
        "--tag", action="append", default=[], help="only runs with this tag (repeat: all of them)"
    )
    names, statuses = learners.names(), [s.value for s in Status]
    runs.add_argument(
        "--learner", choices=names, metavar="NAME", help=f"only runs of it: {', '.join(names)}"
    )
    runs.add_argument(
        "--status",
        choices=statuses,
        metavar="STATUS",
        help=f"only runs with it: {', '.join(statuses)}",
    )
    runs.add_argument(
        "--compare",
        nargs="+",
        metavar="RUN",
        help=f"2 to {MAX_COMPARED} runs side by side: the settings that differ, then the "
        "recent mean score, best score, best tile, share of recent games reaching 1024 and "
        "2048, env steps, wall time and steps/s",
    )
    runs.set_defaults(run=cmd_runs)
    actions = runs.add_subparsers(dest="action", metavar="ACTION", title="actions")
    for action, text in (("tag", "add tags to a run"), ("untag", "remove tags from a run")):
        parser = actions.add_parser(action, help=text, description=text)
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("tags", nargs="+", metavar="TAG")
        parser.set_defaults(run=cmd_tag)
    note = actions.add_parser("note", help="set a run's note (no TEXT: clear it)")
    note.add_argument("name", metavar="NAME")
    note.add_argument("text", nargs="*", metavar="TEXT", help="words, joined by spaces")
    note.set_defaults(run=cmd_note)
    rename = actions.add_parser("rename", help="rename a run and its folder (not while it trains)")
    rename.add_argument("old", metavar="OLD")
    rename.add_argument("new", metavar="NEW")
    rename.set_defaults(run=cmd_rename)
    delete = actions.add_parser(
        "delete", help="delete a run's rows and checkpoint files (not while it trains)"
    )
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("--yes", action="store_true", help="do not ask first")
    delete.set_defaults(run=cmd_delete)
    for parser in actions.choices.values():  # as on `runs` itself, without overriding it
        parser.add_argument("--runs-dir", default=argparse.SUPPRESS)
