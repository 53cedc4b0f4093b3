"""Resident memory of a long ``g2048lab train`` run: the curve, and its slope after warm-up.

    python bench/memory_soak.py [--minutes 30] [--interval 10] [--preset cpu] [--warmup 5]
        [--runs-dir DIR] [--json]

Starts ``g2048lab train --preset P --minutes M --threads 1 --quiet`` as a subprocess, as
the command runs it (the run store, the JSON-lines log, a checkpoint every 5 minutes),
in a temporary runs folder unless ``--runs-dir`` names one. Every ``--interval`` seconds
it reads the process's resident memory (VmRSS in /proc) and the run's env steps (from
the store). Prints one row per minute (the last sample of each), the least-squares slope
of RSS over the samples after ``--warmup`` minutes in MB per hour, the peak, and the
size of the first and the last checkpoint file. Target: under 50 MB per hour after
warm-up (allocator pools and caches fill once; a leak keeps climbing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from g2048lab.store import DATABASE_NAME, RunNotFound, RunStore

RUN_NAME = "soak"


def rss_mb(pid: int) -> float | None:
    """Resident set of ``pid`` in MB (2**20 bytes), None once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def env_steps(runs_dir: Path, store: RunStore | None) -> tuple[int | None, RunStore | None]:
    """The run's env steps from the store (None before the run exists), and the store."""
    if store is None and (runs_dir / DATABASE_NAME).is_file():
        store = RunStore(runs_dir)
    if store is None:
        return None, None
    try:
        return store.get_run(RUN_NAME).env_steps, store
    except RunNotFound:
        return None, store


def checkpoint_sizes(folder: Path) -> dict[str, int]:
    """{file name: bytes} of the numbered checkpoints in the run folder."""
    if not folder.is_dir():
        return {}
    sizes = {}
    for path in folder.glob("ckpt-*.pt"):
        # a file may go between the listing and the stat: a run keeps only its last three
        with contextlib.suppress(OSError):
            sizes[path.name] = path.stat().st_size
    return sizes


def slope_mb_per_hour(samples: list[dict], after_s: float) -> float | None:
    """Least-squares slope of RSS against time over the samples at or after ``after_s``."""
    points = [(s["t_s"], s["rss_mb"]) for s in samples if s["t_s"] >= after_s]
    if len(points) < 2:
        return None
    mean_t = sum(t for t, _ in points) / len(points)
    mean_r = sum(r for _, r in points) / len(points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (r - mean_r) for t, r in points)
    return cov / var * 3600 if var else None


def soak(args: argparse.Namespace, runs_dir: Path) -> dict:
    command = [
        sys.executable, "-m", "g2048lab", "train", "--preset", args.preset,
        "--minutes", str(args.minutes), "--threads", "1", "--runs-dir", str(runs_dir),
        "--run-name", RUN_NAME, "--quiet",
    ]  # fmt: skip
    folder = runs_dir / RUN_NAME
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    start = time.monotonic()
    samples: list[dict] = []
    checkpoints: dict[str, int] = {}  # every checkpoint seen, in the order saved
    store = None
    try:
        while process.poll() is None:
            rss = rss_mb(process.pid)
            steps, store = env_steps(runs_dir, store)
            if rss is not None:
                samples.append({"t_s": time.monotonic() - start, "rss_mb": rss, "env_steps": steps})
            for name, size in sorted(checkpoint_sizes(folder).items()):
                checkpoints[name] = size  # the last size seen: complete once renamed into place
            time.sleep(args.interval)
    except KeyboardInterrupt:
        process.terminate()  # the run stops cleanly, with a checkpoint
    _, errors = process.communicate()
    checkpoints.update(checkpoint_sizes(folder))
    final_steps, _ = env_steps(runs_dir, store)
    sizes = [checkpoints[name] for name in sorted(checkpoints)]
    return {
        "preset": args.preset,
        "minutes": args.minutes,
        "interval_s": args.interval,
        "warmup_min": args.warmup,
        "returncode": process.returncode,
        "stderr_tail": errors.strip().splitlines()[-3:],
        "env_steps": final_steps,
        "peak_rss_mb": max((s["rss_mb"] for s in samples), default=None),
        "slope_mb_per_hour": slope_mb_per_hour(samples, 60 * args.warmup),
        "checkpoint_bytes_first": sizes[0] if sizes else None,
        "checkpoint_bytes_last": sizes[-1] if sizes else None,
        "checkpoints": len(sizes),
        "samples": samples,
    }


def print_table(result: dict) -> None:
    per_minute: dict[int, dict] = {}
    for sample in result["samples"]:
        per_minute[int(sample["t_s"] // 60)] = sample  # the last sample of each minute
    print(f"g2048lab train --preset {result['preset']} --minutes {result['minutes']} --threads 1")
    print(f"{'min':>5} {'RSS MB':>8} {'env steps':>11}")
    for sample in per_minute.values():
        steps = f"{sample['env_steps']:,}" if sample["env_steps"] is not None else "-"
        print(f"{sample['t_s'] / 60:>5.1f} {sample['rss_mb']:>8.1f} {steps:>11}")
    slope = result["slope_mb_per_hour"]
    slope_text = f"{slope:+.1f} MB/h" if slope is not None else "- (too few samples)"
    print(f"slope after {result['warmup_min']:g} min: {slope_text} (target: under 50 MB/h)")
    print(f"peak RSS: {result['peak_rss_mb']:.1f} MB; env steps: {result['env_steps']:,}")
    first, last = result["checkpoint_bytes_first"], result["checkpoint_bytes_last"]
    if first is None:
        print("checkpoints: none saved")
    else:
        print(
            f"checkpoint file: {first / 1e6:.3f} MB first, {last / 1e6:.3f} MB last "
            f"({result['checkpoints']} files seen)"
        )
    if result["returncode"] != 0:
        print(f"train exited with {result['returncode']}: {' | '.join(result['stderr_tail'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training minutes")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--warmup", type=float, default=5.0, help="minutes left out of the slope")
    parser.add_argument("--runs-dir", type=Path, default=None, help="default: a temporary one")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args()
    if args.runs_dir is not None:
        result = soak(args, args.runs_dir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = soak(args, Path(tmp))
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
