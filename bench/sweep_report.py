"""The time ``g2048lab sweep report`` takes on a big sweep: 100 runs x 3,000 metric rows.

    python bench/sweep_report.py [--groups 5] [--seeds 20] [--rows 3000] [--repeats 5]

Writes a synthetic finished sweep (``--groups`` settings x ``--seeds`` seeds, each trial a run
of ``--rows`` metric rows of seeded fake numbers) into a temporary folder, then times
``sweep_report`` on it in this process (wall time, ``time.perf_counter``, and this
process's CPU time, ``time.process_time``, steadier on a shared machine), split into its
two parts: reading every run's final metric (``results.final_value``) and the statistics
(intervals of 3 statistics per group, P(A > B) with its interval for every pair).
Target: the whole report in <= 2 s (issue 22). Medians of ``--repeats``. Prints a table,
then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import numpy as np

from g2048lab.store import RunStore
from g2048lab.sweeps.report import sweep_report
from g2048lab.sweeps.results import final_value
from g2048lab.sweeps.spec import SweepSpec
from g2048lab.sweeps.sweep_store import SweepStore

TARGETS = {"report_s": 2.0}
RATES = ["1e-4", "2e-4", "3e-4", "5e-4", "1e-3", "2e-3", "3e-3", "5e-3"]


def metric_row(i: int, level: float, rng: np.random.Generator) -> dict:
    """A PPO run's metric row at iteration ``i``, its score around ``level``."""
    return {
        "iteration": i,
        "env_steps": 16384 * i,
        "episodes": 20 * i,
        "time/elapsed_s": 2.0 * i,
        "time/steps_per_s": float(8000 + 100 * rng.standard_normal()),
        "rollout/score_mean": float(level + 3 * i + 50 * rng.standard_normal()),
        "rollout/best_score": 1000 + 5 * i,
        "rollout/reach_1024": min(1.0, i / 5000),
        "train/loss": float(1.0 / i + 0.1 * rng.random()),
        "train/entropy": 1.38 - i / 1e4,
    }


def make_sweep(folder: str, groups: int, seeds: int, rows: int) -> RunStore:
    """A finished sweep ``bench`` of ``groups`` learning rates x ``seeds`` seeds."""
    rng = np.random.default_rng(0)
    runs = RunStore(folder)
    sweeps = SweepStore(runs)
    spec = SweepSpec(grid={"ppo.learning-rate": RATES[:groups]}, seeds=seeds)
    sweeps.create_sweep("bench", spec, spec.grid_settings())
    for trial in sweeps.trials("bench"):
        run = runs.create_run(trial.run_name, config={"learner": "ppo"}, device="cpu")
        level = 1000 + 200 * RATES.index(trial.setting["ppo.learning-rate"])
        runs.add_metrics_batch(
            trial.run_name, [metric_row(i, level, rng) for i in range(1, rows + 1)]
        )
        runs.set_status(trial.run_name, "finished")
        sweeps.update_trial(trial, state="finished", run_id=run.id)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not 1 <= args.groups <= len(RATES):
        parser.error(f"--groups must be 1 to {len(RATES)}")
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        runs = make_sweep(folder, args.groups, args.seeds, args.rows)
        trials = SweepStore(runs).trials("bench")
        print(
            f"sweep: {args.groups} groups x {args.seeds} seeds = {len(trials)} runs x "
            f"{args.rows:,} rows, written in {time.perf_counter() - started:.0f} s"
        )
        reports, cpus, reads = [], [], []
        for _ in range(args.repeats):
            start, cpu = time.perf_counter(), time.process_time()
            report = sweep_report(runs, "bench")
            reports.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
            start = time.perf_counter()
            for trial in trials:
                final_value(runs, trial, "rollout/score_mean")
            reads.append(time.perf_counter() - start)
    assert [g["n"] for g in report["groups"]] == [args.seeds] * args.groups
    report_s, read_s = statistics.median(reports), statistics.median(reads)
    result = {
        "runs": len(trials),
        "rows": args.rows,
        "groups": args.groups,
        "pairs": len(report["pairs"]),
        "report_s": round(report_s, 3),
        "report_cpu_s": round(statistics.median(cpus), 3),
        "read_finals_s": round(read_s, 3),
        "statistics_s": round(report_s - read_s, 3),
    }
    print(f"{'measure':>14} {'median':>9} {'target':>8}")
    for key in ("report_s", "report_cpu_s", "read_finals_s", "statistics_s"):
        target = TARGETS.get(key)
        print(f"{key:>14} {result[key]:>9} {'<= ' + str(target) if target else '':>8}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
