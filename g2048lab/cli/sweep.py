"""``g2048lab sweep``: run a set of trials (settings x seeds), each an ordinary run, a few
at once; watch, stop, resume and report them (USAGE says how)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..options.arg_types import DEFAULT_RUNS_DIR, positive_int, seed_number

USAGE = """\
  g2048lab sweep start NAME [--grid FLAG=V1,V2,...]... [--random FLAG=LOW:HIGH[:log]]...
        [--trials N] [--seeds S] [--parallel K] [--prune] [--eval-games N] [--ray ADDRESS]
        -- TRAIN_FLAGS...                   plan the trials and run them (Ctrl-C stops)
  g2048lab sweep status [NAME] [--json]     its trials by group (no NAME: every sweep)
  g2048lab sweep stop NAME                  stop its trials cleanly (each checkpoints)
  g2048lab sweep resume NAME [--parallel K] go on: trials left or killed, none twice
  g2048lab sweep report NAME [--metric M] [--json] [--html FILE]   groups with intervals

FLAG is any `g2048lab train` flag without its -- (ppo.learning-rate, learner, teacher.weight,
steps...). Each setting runs with --seeds S seeds (0, 1, ...); a group is a setting's seeds.
--runs-dir DIR goes before or after the action."""


def split_train_flags(argv: list[str]) -> tuple[list[str], list[str]]:
    """``sweep start ... -- TRAIN_FLAGS``: (the arguments before ``--``, the train flags);
    argparse's own ``--`` does not reach through subcommands."""
    if argv[:2] == ["sweep", "start"] and "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


def cmd_sweep(args: argparse.Namespace) -> int:
    return {
        "start": _start,
        "status": _status,
        "stop": _stop,
        "resume": _resume,
        "report": _report,
    }[args.action](args)


def _start(args: argparse.Namespace) -> int:
    from ..sweeps.spec import SweepSpec, check_sweep_name, parse_grid, parse_random

    check_sweep_name(args.name)
    train = list(getattr(args, "train", []))
    spec = SweepSpec(
        grid=parse_grid(args.grid),
        random=parse_random(args.random),
        trials=args.trials or 0,
        seeds=args.seeds,
        first_seed=args.first_seed,
        train=train,
        parallel=args.parallel or 0,
        prune=args.prune,
        prune_every=args.prune_every or 0,
        metric=args.metric,
        eval_games=args.eval_games,
        ray=args.ray,
    )
    from ..sweeps.api import plan_sweep

    runs = plan_sweep(args.runs_dir, args.name, spec)  # checked before it is recorded
    return _drive(runs, args.name, _launcher(spec), args.quiet)


def _launcher(spec):
    if spec.ray is None:
        return None
    from ..sweeps.ray_launcher import RayLauncher

    return RayLauncher(spec.ray)


def _drive(runs, name: str, launcher, quiet: bool) -> int:
    from ..sweeps.driver import Driver, install_signals

    def say(text: str) -> None:
        if not quiet:
            print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)

    driver = Driver(runs, name, launcher=launcher, say=say)
    restore = install_signals(driver)
    try:
        return driver.run()
    finally:
        restore()


def _resume(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..store import RunStore
    from ..sweeps.sweep_store import SweepStore

    runs = RunStore(args.runs_dir, create=False)
    sweeps = SweepStore(runs)
    sweep = sweeps.get_sweep(args.name)
    if sweep.status == "finished":
        print(f"sweep {args.name} has finished: g2048lab sweep report {args.name}")
        return 0
    if args.parallel:
        sweeps.set_spec(args.name, replace(sweep.spec, parallel=args.parallel))
    return _drive(runs, args.name, _launcher(sweep.spec), args.quiet)


def _stop(args: argparse.Namespace) -> int:
    from ..store import RunStore
    from ..sweeps.control import stop_sweep

    text = stop_sweep(RunStore(args.runs_dir, create=False), args.name)
    print(text)
    return 1 if "still stopping" in text else 0


def _status(args: argparse.Namespace) -> int:
    from ..store import RunStore
    from ..sweeps.overview import overview
    from ..sweeps.sweep_store import SweepStore

    runs = RunStore(args.runs_dir, create=False)
    if args.name is None:
        sweeps = SweepStore(runs).list_sweeps()
        if args.json:
            print(json.dumps([{"name": s.name, "status": s.status} for s in sweeps]))
        elif not sweeps:
            print(f"no sweeps in {args.runs_dir}: g2048lab sweep start NAME ... starts one")
        for sweep in [] if args.json else sweeps:
            print(f"{sweep.name:<28} {sweep.status}")
        return 0
    view = overview(runs, args.name)
    if args.json:
        print(json.dumps(view))
        return 0
    print_sweep(view)
    return 0


def print_sweep(view: dict) -> None:
    """The sweep's groups, a line each, then its trials, in 80 columns."""
    counts = ", ".join(f"{n} {state}" for state, n in view["counts"].items() if n)
    driver = view["driver"]
    how = f"driver pid {driver['pid']}" if driver else "no driver"
    print(f"sweep {view['name']}: {view['status']} ({how}); trials: {counts}")
    if view["status"] == "interrupted":
        print(f"  its driver died: g2048lab sweep resume {view['name']} goes on")
    metric = view["metric"]
    for number, group in enumerate(view["groups"]):
        setting = ", ".join(f"{k}={v}" for k, v in group["group"].items()) or "(seeds only)"
        mean = group["final_mean"]
        shown = f"{mean:,.4g}" if mean is not None else "-"
        print(f"group {number} [{group['key']}] {setting}")
        print(f"  mean final {metric} of its finished trials: {shown}")
        for trial in group["trials"]:
            progress = trial["progress"]
            done = f"{progress:4.0%}" if progress is not None else "   -"
            final = f"{trial['final']:,.4g}" if trial["final"] is not None else "-"
            line = (
                f"  {trial['run']:<30.30} seed {trial['seed']:<3} {trial['state']:<8} "
                f"{done} {trial['env_steps']:>11,} steps  {final}"
            )
            print(line[:80])
            if trial["error"]:
                print(f"    {trial['error']}"[:80])


def _report(args: argparse.Namespace) -> int:
    from .sweep_report import cmd_report

    return cmd_report(args)


def add_parser(commands) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="run settings x seeds as trials, a few at once; compare groups with intervals",
        description=__doc__.split("\n\n")[0],
        usage=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    common.add_argument("--quiet", action="store_true", help="no line per trial event")
    actions = sweep.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("start", parents=[common], help="plan and run a sweep")
    start.add_argument("name", metavar="NAME")
    start.add_argument("--grid", action="append", default=[], metavar="FLAG=V1,V2,...")
    start.add_argument("--random", action="append", default=[], metavar="FLAG=LOW:HIGH[:log]")
    start.add_argument("--trials", type=positive_int, help="settings --random draws")
    start.add_argument("--seeds", type=positive_int, default=1, help="seeds per setting")
    start.add_argument("--first-seed", type=seed_number, default=0)
    start.add_argument("--parallel", type=positive_int, help="trials at once (default: cores)")
    start.add_argument("--prune", action="store_true", help="stop trials clearly behind")
    start.add_argument("--prune-every", type=positive_int, help="env steps between checks")
    start.add_argument(
        "--metric", default="rollout/score_mean", help="what --prune and --random compare"
    )
    start.add_argument(
        "--eval-games", type=int, default=0, help="greedy games per finished trial (0: none)"
    )
    start.add_argument("--ray", metavar="ADDRESS", help="run the trials on this Ray cluster")
    status = actions.add_parser("status", parents=[common], help="its trials by group")
    status.add_argument("name", nargs="?", metavar="NAME")
    status.add_argument("--json", action="store_true")
    stop = actions.add_parser("stop", parents=[common], help="stop its trials cleanly")
    stop.add_argument("name", metavar="NAME")
    resume = actions.add_parser("resume", parents=[common], help="go on with a sweep")
    resume.add_argument("name", metavar="NAME")
    resume.add_argument("--parallel", type=positive_int)
    report = actions.add_parser("report", parents=[common], help="groups with intervals")
    report.add_argument("name", metavar="NAME")
    report.add_argument("--metric", default=None, help="default: the sweep's")
    report.add_argument("--json", action="store_true")
    report.add_argument("--html", metavar="FILE", help="a self-contained page with the plots")
    sweep.set_defaults(run=cmd_sweep)
