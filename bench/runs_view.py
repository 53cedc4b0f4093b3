"""The runs view on a big store: build and refresh cost, a phone's refresh payload, overlays.

    python bench/runs_view.py [--runs 200] [--iterations 3000] [--repeats 5]

Writes a synthetic store (``--runs`` runs of ``--iterations`` metric rows each, PPO and
n-tuple learners, a few tags, one live run) into a temporary folder, then measures in this
process, as the kernel behind a page would spend it (``time.process_time``):

- build: ``RunsBrowser(store)`` made and drawn once, then one refresh (target: <= 2 s);
- phone refresh: the bytes the kernel sends to a 390 px page for one refresh while 3 runs
  are overlaid and the live one has written a new row (every widget message counted as
  JSON plus binary buffers; target: <= 300 kB);
- overlay: selecting 5 runs and drawing them (target: <= 0.5 s).

Medians of ``--repeats``. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from contextlib import contextmanager
from functools import partial

import ipywidgets
import numpy as np

from g2048lab.dashboard import RunsBrowser
from g2048lab.store import RunStore

TARGETS = {"build_s": 2.0, "phone_refresh_kb": 300.0, "overlay_s": 0.5}


def metric_row(i: int, learner: str, rng: np.random.Generator) -> dict:
    row = {
        "iteration": i,
        "env_steps": 16384 * i,
        "episodes": 20 * i,
        "time/elapsed_s": 2.0 * i,
        "time/steps_per_s": float(8000 + 100 * rng.standard_normal()),
        "rollout/score_mean": float(1000 + 3 * i + 50 * rng.standard_normal()),
        "rollout/best_score": 1000 + 5 * i,
        "rollout/reach_1024": min(1.0, i / 5000),
        "rollout/reach_2048": min(1.0, i / 20000),
        "memory/rss_gb": 0.9,
    }
    if learner == "ppo":
        row |= {
            "train/loss": float(1.0 / i + 0.1 * rng.random()),
            "train/policy_loss": float(-0.01 * rng.random()),
            "train/value_loss": float(2.0 / i + 0.1 * rng.random()),
            "train/entropy": 1.38 - i / 1e4,
            "train/learning_rate": 1e-3,
        }
    else:
        row |= {"ntuple/td_error": float(1.0 / i), "ntuple/learning_rate": 0.1}
    return row


def make_store(folder: str, runs: int, iterations: int) -> tuple[RunStore, str]:
    """The synthetic store, and the name of its one live run (claimed by this process)."""
    rng = np.random.default_rng(0)
    store = RunStore(folder)
    for r in range(runs):
        learner = "ntuple" if r % 4 == 3 else "ppo"
        name = f"run-{r:03d}"
        config = {
            "learner": learner,
            "preset": "cpu",
            "seed": r % 5,
            "ppo": {"learning_rate": [1e-3, 3e-4][r % 2]},
        }
        store.create_run(name, config=config, device="cpu")
        store.add_metrics_batch(name, [metric_row(i, learner, rng) for i in range(1, iterations)])
        store.set_tags(name, [f"sweep-{r % 3}"] + (["best"] if r % 10 == 0 else []))
    return store, name


@contextmanager
def counting_bytes():
    """Count what every widget sends (message JSON plus binary buffers) while inside."""
    sent = {"bytes": 0, "messages": 0}
    original = ipywidgets.Widget._send

    def send(self, msg, buffers=None):
        sent["messages"] += 1
        sent["bytes"] += len(json.dumps(msg, default=str))
        sent["bytes"] += sum(len(memoryview(b).cast("B")) for b in buffers or ())
        return original(self, msg, buffers)

    ipywidgets.Widget._send = send
    try:
        yield sent
    finally:
        ipywidgets.Widget._send = original


def cpu_s(action) -> float:
    start = time.process_time()
    action()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        store, live = make_store(folder, args.runs, args.iterations)
        claim = store.claim(live)
        rng = np.random.default_rng(1)
        print(
            f"store: {args.runs} runs x {args.iterations:,} rows"
            f" written in {time.perf_counter() - started:.0f} s"
        )
        builds, refreshes, payloads, overlays = [], [], [], []
        for repeat in range(args.repeats):
            start = time.process_time()
            browser = RunsBrowser(store)  # reads and draws the list
            browser.refresh()
            builds.append(time.process_time() - start)
            refreshes.append(cpu_s(browser.refresh))
            five = tuple(browser.compare.options[1:6])
            overlays.append(cpu_s(partial(setattr, browser.compare, "value", five)))
            browser.refresher.presence.width = 390  # a phone
            browser.compare.value = (live, *five[:2])
            browser.refresh()
            iteration = args.iterations + repeat
            store.add_metrics(live, metric_row(iteration, "ppo", rng))
            with counting_bytes() as sent:
                browser.refresh()
            payloads.append(sent["bytes"] / 1000)
            browser.close()
        claim.release()
    result = {
        "runs": args.runs,
        "iterations": args.iterations,
        "build_s": round(statistics.median(builds), 3),
        "refresh_s": round(statistics.median(refreshes), 3),
        "phone_refresh_kb": round(statistics.median(payloads), 1),
        "overlay_s": round(statistics.median(overlays), 3),
    }
    print(f"{'measure':>18} {'median':>9} {'target':>8}")
    for key in ("build_s", "refresh_s", "phone_refresh_kb", "overlay_s"):
        target = TARGETS.get(key)
        print(f"{key:>18} {result[key]:>9} {'<= ' + str(target) if target else '':>8}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
