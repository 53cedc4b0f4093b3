"""What a sweep costs on this machine: the env steps/s of trials run two at once against one
alone, and the driver's own CPU.

    python bench/sweep_overhead.py [--minutes 1] [--repeats 3] [--preset cpu]

Each repeat trains one ``g2048lab train`` process alone, then a sweep of 2 seeds with
``--parallel 2``; every trial ``--threads 1`` for ``--minutes``. A trial's speed is its
env steps over its training seconds (``time/elapsed_s`` of its last metric row). The
driver runs in this process, so its CPU share is this process's CPU seconds
(``time.process_time``, which leaves the trials' processes out) over the sweep's wall
seconds. Prints the median over the repeats.
Target (issue 22): the driver at most 2% of one core.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from g2048lab.store import RunStore
from g2048lab.sweeps.api import plan_sweep
from g2048lab.sweeps.driver import Driver
from g2048lab.sweeps.spec import SweepSpec


def steps_per_second(runs: RunStore, name: str) -> float:
    row = runs.metrics(name)[-1]
    return row["env_steps"] / row["time/elapsed_s"]


def alone(root: Path, train: list[str]) -> float:
    subprocess.run(
        [sys.executable, "-m", "g2048lab", "train", *train, "--run-name", "alone",
         "--runs-dir", str(root), "--quiet"],
        check=True, capture_output=True,
    )  # fmt: skip
    return steps_per_second(RunStore(root), "alone")


def together(root: Path, train: list[str]) -> tuple[list[float], float, float]:
    """(each trial's steps/s, the driver's CPU seconds, the sweep's wall seconds)."""
    runs = plan_sweep(root, "two", SweepSpec(seeds=2, parallel=2, train=train))
    driver = Driver(runs, "two", say=lambda text: None)
    cpu, wall = time.process_time(), time.perf_counter()
    driver.run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return [steps_per_second(runs, n) for n in ("two-000", "two-001")], cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="cpu")
    args = parser.parse_args()
    train = ["--preset", args.preset, "--minutes", str(args.minutes), "--threads", "1"]
    lone, pairs, shares = [], [], []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            lone.append(alone(root / "alone", train))
            speeds, cpu, wall = together(root / "two", train)
            pairs.append(sum(speeds))
            shares.append(cpu / wall)
            print(
                f"repeat {repeat}: alone {lone[-1]:,.0f} steps/s; two at once "
                f"{' + '.join(f'{s:,.0f}' for s in speeds)} = {pairs[-1]:,.0f} steps/s; "
                f"driver {cpu:.2f} CPU s in {wall:.0f} s ({100 * cpu / wall:.2f}% of a core)",
                flush=True,
            )
    median = statistics.median
    print(f"\n{args.preset} preset, {args.minutes:g}-minute trials, 1 thread each; medians of "
          f"{args.repeats}:")  # fmt: skip
    print(f"  one trial alone:        {median(lone):>9,.0f} env steps/s")
    print(f"  two trials at once:     {median(pairs):>9,.0f} env steps/s in all "
          f"({median(pairs) / median(lone):.2f}x one alone)")  # fmt: skip
    print(f"  the driver's CPU:       {100 * median(shares):>9.2f}% of one core (target <= 2%)")


if __name__ == "__main__":
    main()
