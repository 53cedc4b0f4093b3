"""``g2048lab runs``: list, filter and compare the runs in a runs folder; tag, note, rename
and delete them; check and recover the store (USAGE, its --help, says how). None of these
makes a runs folder or a store: they open it with ``RunStore(dir, create=False)``."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from .. import games, learners
from ..options.arg_types import DEFAULT_RUNS_DIR
from ..status import Status

USAGE = """\
  g2048lab runs [--tag TAG]... [--learner NAME] [--status STATUS] [--json]
  g2048lab runs --compare A B [C ...] [--json]   settings that differ, where each ended up
  g2048lab runs --compare --sweep NAME [--json]  its groups: means, intervals
  g2048lab runs tag NAME TAG [TAG ...]           add tags (letters, digits, - _ . :)
  g2048lab runs untag NAME TAG [TAG ...]         remove tags
  g2048lab runs note NAME [TEXT ...]             set the run's note (no TEXT: clear it)
  g2048lab runs rename OLD NEW                   the run and its folder of checkpoints
  g2048lab runs delete NAME [--yes]              its rows and files, after asking
  g2048lab runs check                            is the store whole? (exit 1 if damaged)
  g2048lab runs recover                          copy what can be read into a new store

--runs-dir DIR goes before or after the action. Tags, notes and filters work while a
run trains; rename and delete wait until it has stopped."""

COMPARED = {  # final metric -> its label in --compare's table; after the best tile come
    # the reach tiles of the runs' games (compared_metrics)
    "rollout/score_mean": "recent mean score",
    "rollout/best_score": "best score",
    "rollout/max_tile": "best tile",
    "env_steps": "env steps",
    "time/elapsed_s": "wall time",
    "time/steps_per_s": "steps/s",
}
# two-line headers keep the number columns narrow
RUN_COLUMNS = ("run", "game", "learner", "status", "tags", "env\nsteps", "best\nscore",
               "best\ntile", "device", "last\nupdate")  # fmt: skip
LEFT_COLUMNS = 5  # text, left-aligned; the rest are numbers and times, right-aligned
# on a narrow terminal, hidden first to last (the table says which); numbers are never cut
DROPPED_FIRST = ("device", "last\nupdate", "learner", "tags", "game")
FOLDED = {"run": 10, "tags": 8}  # columns that may fold their text, to this many cells
REACH_PREFIX = "rollout/reach_"
MAX_COMPARED = 8  # runs compared; as many side by side as the terminal fits
CHECK_SHOWN = 10  # problems `runs check` lists; it counts the rest
RECOVERED_SHOWN = {"runs": "runs", "metrics": "metric rows", "games": "games"}  # counted


def cmd_runs(args: argparse.Namespace) -> int:
    from ..store import RunStore

    store = RunStore(args.runs_dir, create=False)
    if args.compare is not None:
        return _compare(store, args)
    if args.sweep is not None:
        raise ValueError(
            f"--sweep goes with --compare: g2048lab runs --compare --sweep {args.sweep} "
            f"(--tag sweep:{args.sweep} lists its runs)"
        )
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


def run_game(run) -> str:
    """The name of the game ``run`` played; a run from before games played 4x4."""
    return run.config.get("game", games.DEFAULT)


def compared_metrics(store, runs: list) -> dict[str, str]:
    """COMPARED with, after the best tile, the share of recent games reaching each reach
    tile (``rollout/reach_<tile>``) of the runs' games (1024 and 2048 on 4x4) or in their
    metric rows (a game this process does not know)."""
    tiles = set()
    for run in runs:
        with contextlib.suppress(games.UnknownGame):
            tiles.update(games.get(run_game(run)).reach_tiles)
        rows = store.metrics(run.name, since_iteration=max(-1, run.iteration - 1))
        row = rows[-1] if rows else {}  # its last row (only the compared runs' are read)
        tiles.update(
            int(key.removeprefix(REACH_PREFIX)) for key in row if key.startswith(REACH_PREFIX)
        )
    reach = {f"{REACH_PREFIX}{t}": f"recent games reaching {t}" for t in sorted(tiles)}
    items = list(COMPARED.items())
    return {**dict(items[:3]), **reach, **dict(items[3:])}


def _run_json(r) -> dict:
    return {
        "name": r.name,
        "game": run_game(r),
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
    """The runs as a table as wide as the terminal: columns of DROPPED_FIRST go, in that
    order, until the rest fit (a line says which went); run names and tags fold. The game
    column is there when a run plays another game than the default (4x4) one."""
    from rich.console import Console

    now = time.time()
    rows = [
        (
            r.name,
            run_game(r),
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
    columns = {}
    for i, header in enumerate(RUN_COLUMNS):
        if header == "game" and all(row[i] == games.DEFAULT for row in rows):
            continue
        cells = [row[i] for row in rows]
        natural = _natural(header, cells)
        least = min(natural, FOLDED[header]) if header in FOLDED else natural
        columns[header] = _Column(header, cells, least, "left" if i < LEFT_COLUMNS else "right")
    console, hidden = Console(), []
    for header in (h for h in DROPPED_FIRST if h in columns):
        if _fit(list(columns.values()), console.width) is not None:
            break
        hidden.append(header.replace("\n", " "))
        del columns[header]
    console.print(_table(f"runs in {runs_dir}", list(columns.values()), console.width))
    if hidden:
        console.print(
            f"hidden to fit {console.width} columns: {', '.join(hidden)} "
            "(a wider terminal or --json shows them)"
        )
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
    if args.sweep is not None:
        if names:
            raise ValueError("--compare --sweep NAME compares its groups: drop the run names")
        return _compare_groups(store, args.sweep, args.json)
    if not names:
        raise ValueError(f"--compare takes 2 to {MAX_COMPARED} runs, or --sweep NAME: its groups")
    if not 2 <= len(names) <= MAX_COMPARED:
        raise ValueError(f"--compare takes 2 to {MAX_COMPARED} runs, got {len(names)}")
    if len(set(names)) < len(names):
        raise ValueError("--compare names a run twice: name each run once")
    runs = {name: store.get_run(name) for name in names}
    diff = config_diff({name: run.config for name, run in runs.items()})
    compared = compared_metrics(store, list(runs.values()))
    metrics = {name: _where_it_ended(store, run, compared) for name, run in runs.items()}
    if args.json:
        print(json.dumps({"config": diff, "metrics": metrics}))
    else:
        _print_comparison(names, diff, metrics, compared)
    return 0


def _where_it_ended(store, run, compared: dict[str, str]) -> dict[str, float | None]:
    """The ``compared`` metrics of ``run``: its last metric values, and its counters from the
    run itself, which follow every message and so are newer than its last metric row."""
    from ..compare import final_metrics

    return {
        **final_metrics(store.metrics(run.name), tuple(compared)),
        "env_steps": run.env_steps,
        "rollout/best_score": run.best_score,
        "rollout/max_tile": run.max_tile,
    }


def _print_comparison(names: list[str], diff: dict, metrics: dict, compared: dict) -> None:
    """Two tables, each split into as many as it takes to fit the terminal: the settings
    that differ (numbers whole, text folds), where each run ended up (numbers whole)."""
    from rich.console import Console

    console = Console()
    if diff:
        keys = list(diff)
        runs = []
        for name in names:
            values = [diff[key][name] for key in keys]
            cells = [_setting(value) for value in values]
            whole = [len(c) for c, v in zip(cells, values) if isinstance(v, int | float)]
            runs.append(_Column(name, cells, max([*whole, min(_natural(name, cells), 8)])))
        setting = _Column("setting", keys, min(_natural("setting", keys), 14))
        _print_side_by_side(console, "settings that differ", setting, runs)
    else:
        console.print(f"{', '.join(names)}: the same settings")
    labels = list(compared.values())
    runs = []
    for name in names:
        cells = [_metric(key, metrics[name][key]) for key in compared]
        least = max(max(map(len, cells)), min(len(name), 8))
        runs.append(_Column(name, cells, least, "right"))
    metric = _Column("metric", labels, min(_natural("metric", labels), 14))
    _print_side_by_side(console, "where each run ended up", metric, runs)


def _compare_groups(store, name: str, as_json: bool) -> int:
    """``runs --compare --sweep NAME``: per group of the sweep its setting, its finished runs
    and each compared metric as the mean over them with its 95% bootstrap interval (None
    for a group of one run). Finished runs only, as in ``sweep report``."""
    from ..stats import mean_interval
    from ..sweeps.report import sweep_groups
    from ..sweeps.sweep_store import SweepStore

    sweeps = SweepStore(store)
    flags = sweeps.get_sweep(name).spec.flags
    grouped = [
        (key, setting, trials, [store.get_run(t.run_name) for t in trials if t.state == "finished"])
        for key, setting, trials in sweep_groups(sweeps.trials(name))
    ]
    compared = compared_metrics(store, [run for *_, done in grouped for run in done])
    groups = []
    for key, setting, trials, done in grouped:
        ended = [_where_it_ended(store, run, compared) for run in done]
        metrics = {}
        for metric in compared:
            values = [e[metric] for e in ended if e[metric] is not None]
            mean = sum(values) / len(values) if values else None
            ci = mean_interval(values).bounds() if len(values) >= 2 else None
            metrics[metric] = {"mean": mean, "ci": ci, "n": len(values)}
        runs = [run.name for run in done]
        groups.append({"group": setting, "key": key, "runs": runs, "n": len(runs),
                       "trials": len(trials), "metrics": metrics})  # fmt: skip
    if as_json:
        print(json.dumps({"sweep": name, "groups": groups}))
    else:
        _print_group_comparison(name, flags, groups, compared)
    return 0


def _print_group_comparison(
    name: str, flags: list[str], groups: list[dict], compared: dict[str, str]
) -> None:
    """The settings of each group, then where each group ended up (mean over its interval),
    a column per group, split into as many tables as it takes to fit the terminal."""
    from rich.console import Console

    console = Console()
    headers = [f"group {i}" for i in range(len(groups))]
    labels = [*flags, "key", "finished runs"]
    columns = []
    for header, group in zip(headers, groups):
        cells = [*(group["group"].get(f, "-") for f in flags), group["key"],
                 f"{group['n']} of {group['trials']}"]  # fmt: skip
        columns.append(_Column(header, cells, min(_natural(header, cells), 10)))
    setting = _Column("setting", labels, min(_natural("setting", labels), 14))
    _print_side_by_side(console, f"the groups of sweep {name}", setting, columns)
    columns = []
    for header, group in zip(headers, groups):
        cells = [_mean_and_interval(key, group["metrics"][key]) for key in compared]
        columns.append(_Column(header, cells, _natural("", cells), "right"))
    labels = list(compared.values())
    metric = _Column("metric", labels, min(_natural("metric", labels), 14))
    _print_side_by_side(console, "where each group ended up (mean, 95% interval)", metric, columns)
    console.print(
        "over each group's finished runs; a group of one run has no interval", highlight=False
    )


def _mean_and_interval(key: str, found: dict) -> str:
    """``1,000`` over ``950–1,050``: a mean and its interval, as _metric writes each
    (``12.5 %`` over ``10.0–15.0 %`` for a share)."""
    text = _metric(key, found["mean"])
    if found["ci"] is not None:
        low, high = (_metric(key, bound) for bound in found["ci"])
        text += f"\n{low.removesuffix(' %')}–{high}"
    return text


# --- tables that fit the terminal ---------------------------------------------------------


class _Column(NamedTuple):
    header: str  # lines split at "\n"
    cells: list[str]
    least: int  # cells it can do with: its text folds down to it
    justify: str = "left"


def _natural(header: str, cells: Sequence[str]) -> int:
    """The cells a column takes unfolded: its widest line."""
    from rich.cells import cell_len

    return max(cell_len(line) for text in (header, *cells) for line in text.split("\n"))


def _fit(columns: list[_Column], width: int) -> list[int] | None:
    """Cell widths that fit ``columns`` in a rich Table ``width`` cells wide (each column
    takes 3 more, for padding and a border, and the table 1), or None if they cannot: each
    column as wide as its text, the widest giving up cells first, none below its least.

    natural widths [20, 5], least [10, 5], width 30 -> [18, 5]
    """
    widths = [_natural(c.header, c.cells) for c in columns]
    room = width - 3 * len(columns) - 1
    if sum(c.least for c in columns) > room:
        return None
    while sum(widths) > room:
        widest = max(
            (i for i, c in enumerate(columns) if widths[i] > c.least), key=widths.__getitem__
        )
        widths[widest] -= 1
    return widths


def _table(title: str, columns: list[_Column], width: int):
    """A rich Table of ``columns`` that fits ``width`` cells if they can (``_fit``; else
    as narrow as their least), its text folded to the widths."""
    from rich.table import Table

    widths = _fit(columns, width) or [c.least for c in columns]
    table = Table(title=title)
    for column, cells in zip(columns, widths):
        table.add_column(column.header, justify=column.justify, width=cells, overflow="fold")
    for row in zip(*(c.cells for c in columns)):
        table.add_row(*row)
    return table


def _print_side_by_side(console, title: str, label: _Column, runs: list[_Column]) -> None:
    """``label``, then as many of ``runs`` as fit the console beside it, in as many tables
    as it takes (titled 1/2, 2/2...)."""
    groups: list[list[_Column]] = []
    for run in runs:
        if groups and _fit([label, *groups[-1], run], console.width) is not None:
            groups[-1].append(run)
        else:
            groups.append([run])
    for i, group in enumerate(groups, 1):
        part = f" ({i}/{len(groups)})" if len(groups) > 1 else ""
        console.print(_table(f"{title}{part}", [label, *group], console.width))


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
    if key.startswith(REACH_PREFIX):
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
    from ..store import RunStore

    store = RunStore(args.runs_dir, create=False)
    tags = set(store.get_run(args.name).tags)
    tags = tags | set(args.tags) if args.action == "tag" else tags - set(args.tags)
    tags = store.set_tags(args.name, tags)
    print(f"run {args.name}: tags {', '.join(tags) if tags else '(none)'}")
    return 0


def cmd_note(args: argparse.Namespace) -> int:
    from ..store import RunStore

    note = " ".join(args.text)
    RunStore(args.runs_dir, create=False).set_note(args.name, note)
    said = f"note set ({len(note)} characters)" if note else "note cleared"
    print(f"run {args.name}: {said}")
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    from ..store import RunStore

    store = RunStore(args.runs_dir, create=False)
    store.rename_run(args.old, args.new)
    print(f"renamed run {args.old} to {args.new}; its folder is {store.root / args.new}")
    _warn_students(store, args.old, "moved")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from ..store import RunStore

    store, name = RunStore(args.runs_dir, create=False), args.name
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


def cmd_check(args: argparse.Namespace) -> int:
    """``runs check``: 0 if the store is whole (or there is none yet), 1 if damaged, saying
    what is and how to save the rest."""
    from ..store import check_store

    found = check_store(args.runs_dir)
    if not found.exists:
        print(f"{found.path.parent} holds no run store yet: nothing to check")
        return 0
    if not found.problems:
        print(
            f"{found.path}: whole (SQLite quick_check ok); {found.runs:,} runs, "
            f"{found.games:,} recorded games read back"
        )
        return 0
    count = len(found.problems)
    print(f"{found.path} is damaged: {count:,} problem{'' if count == 1 else 's'}")
    for problem in found.problems[:CHECK_SHOWN]:
        print(f"  {problem}")
    if count > CHECK_SHOWN:
        print(f"  ... and {count - CHECK_SHOWN:,} more")
    print(f"To save what can be read: g2048lab runs recover --runs-dir {found.path.parent}")
    return 1


def cmd_recover(args: argparse.Namespace) -> int:
    """``runs recover``: what can be read of a damaged store, into a new store beside it."""
    from ..store import DATABASE_NAME, recover_store

    saved = recover_store(args.runs_dir)
    folder = saved.path.parent
    counts = ", ".join(f"{saved.saved[t]:,} {what}" for t, what in RECOVERED_SHOWN.items())
    print(f"wrote {saved.path}: {counts} (and their other records)")
    lost = [
        f"{table} ({n} stretch{'es' if n > 1 else ''})" for table, n in saved.skipped.items() if n
    ]
    print(f"skipped as unreadable: {', '.join(lost) if lost else 'nothing'}")
    if saved.renamed:
        print(
            f"runs whose own record was lost, kept under new names: {', '.join(saved.renamed)}"
            " (failed; their names and settings are gone, their metrics and games kept)"
        )
    store, aside = folder / DATABASE_NAME, folder / ".damaged"  # no run can be named so
    steps = (
        f"To use it, stop every process that uses {folder}, then:",
        f"  mkdir {aside} && mv {store}* {aside}/",
        f"  mv {saved.path} {store}",
        f"  g2048lab runs check --runs-dir {folder}",
    )
    print("\n".join(steps))
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
    from ..store import RECOVERED_NAME

    runs = commands.add_parser(
        "runs",
        help="list, filter, compare, tag, note, rename and delete runs; check the store",
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
        nargs="*",
        metavar="RUN",
        help=f"2 to {MAX_COMPARED} runs side by side: the settings that differ, then the "
        "recent mean score, best score, best tile, share of recent games reaching 1024 and "
        "2048, env steps, wall time and steps/s",
    )
    runs.add_argument(
        "--sweep",
        metavar="NAME",
        help="with --compare and no runs: the sweep's groups side by side, each metric as "
        "the mean over the group's finished runs with its 95%% bootstrap interval",
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
    check = actions.add_parser(
        "check",
        help="check the store (SQLite quick_check, every game read back); exit 1 if damaged",
        description="Check the run store: SQLite's quick_check reads every page, then every "
        "recorded game is read back. Exit 0 if whole, 1 if damaged, with what is damaged "
        "and how to save the rest (g2048lab runs recover).",
    )
    check.set_defaults(run=cmd_check)
    recover = actions.add_parser(
        "recover",
        help=f"copy what can be read of a damaged store into {RECOVERED_NAME} beside it",
        description=f"Copy every row that can be read of a damaged run store into a new "
        f"store, {RECOVERED_NAME} in the runs folder, skipping the rows on damaged pages and "
        "games whose moves are damaged; the damaged store is only read. Then it says how to "
        "put the new store in its place.",
    )
    recover.set_defaults(run=cmd_recover)
    for parser in actions.choices.values():  # as on `runs` itself, without overriding it
        parser.add_argument("--runs-dir", default=argparse.SUPPRESS)
