"""Learning curves of stored runs by minute of training: at the end of each minute, the
env steps so far and the mean score of the last 100 training games (from the normal
start) and their share reaching 2048. A sweep's finished runs are grouped by setting,
each group's mean over its runs. One table per group, then one JSON line.

    python bench/curve_by_minute.py --runs-dir DIR --sweep NAME   # every trial of a sweep
    python bench/curve_by_minute.py --runs-dir DIR RUN [RUN ...]
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict

from g2048lab.store import RunStore
from g2048lab.store.errors import RunNotFound
from g2048lab.sweeps.report import sweep_groups
from g2048lab.sweeps.sweep_store import SweepStore


def by_minute(rows: list[dict]) -> list[dict]:
    """At the end of each minute of ``time/elapsed_s``, its last metric row: minute (1, 2,
    ...), env_steps, mean_score and share_2048 (of the last 100 training games; None
    before any ended). A minute without a row in its last 30 s (a pause, or the run's
    few seconds past its last whole minute) is left out."""
    last: dict[int, dict] = {}
    for row in rows:  # in iteration order: the last row of each minute wins
        last[max(1, math.ceil(row["time/elapsed_s"] / 60))] = row
    return [
        {
            "minute": minute,
            "env_steps": row["env_steps"],
            "mean_score": row.get("rollout/score_mean"),
            "share_2048": row.get("rollout/reach_2048"),
        }
        for minute, row in sorted(last.items())
        if row["time/elapsed_s"] > 60 * minute - 30
    ]


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*")
    parser.add_argument("--runs-dir", required=True)
    parser.add_argument("--sweep", help="every run tagged sweep:NAME")
    args = parser.parse_args()
    store = RunStore(args.runs_dir)
    names: dict[str, list[str]] = defaultdict(list)  # group label -> run names
    if args.sweep:  # a group per setting, labelled by it
        for _, setting, trials in sweep_groups(SweepStore(store).trials(args.sweep)):
            label = " ".join(f"{k}={v}" for k, v in setting.items()) or args.sweep
            names[label] += [t.run_name for t in trials if t.state == "finished"]
    for name in args.runs:
        try:
            names[name].append(store.get_run(name).name)
        except RunNotFound as error:  # names the runs there
            parser.error(str(error))
    if not any(names.values()):
        parser.error("no finished runs: name runs, or a sweep with --sweep")
    groups = {
        label: [(name, by_minute(store.metrics(name))) for name in runs]
        for label, runs in names.items()
        if runs
    }
    result = {}
    for group, members in groups.items():
        minutes = max(len(points) for _, points in members)
        table = []
        for m in range(minutes):
            at = [points[m] for _, points in members if m < len(points)]
            table.append(
                {
                    "minute": m + 1,
                    "runs": len(at),
                    "env_steps": _mean([p["env_steps"] for p in at]),
                    "mean_score": _mean([p["mean_score"] for p in at]),
                    "share_2048": _mean([p["share_2048"] for p in at]),
                    "scores": [p["mean_score"] for p in at],
                }
            )
        result[group] = table
        print(f"{group}: {', '.join(name for name, _ in members)}")
        print(" min  runs   M steps   mean score   2048   (each run)")
        for p in table:
            share = p["share_2048"]
            each = ", ".join(f"{s:,.0f}" if s is not None else "-" for s in p["scores"])
            print(
                f"{p['minute']:4d} {p['runs']:5d} {p['env_steps'] / 1e6:9.2f} "
                f"{p['mean_score'] or math.nan:12,.0f} {'-' if share is None else f'{share:6.1%}'}"
                f"   ({each})"
            )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
