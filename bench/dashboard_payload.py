"""What a dashboard sends to its page per refresh of a long run, on a desktop and a phone.

    python bench/dashboard_payload.py [--iterations 3000] [--games-per-message 20]

Writes a synthetic long run into a temporary run store (``--iterations`` metric rows and
one message per 10 s with its finished games), attaches a ``Dashboard`` as a Voila page
would, reports the page's width (1280 px, then 390 px: a phone), catches up, then adds
one training iteration and refreshes once: the refresh that repeats for every iteration
of a live run. Prints the chart values resent (the games chart and every metric's
chart), their size as JSON, and the refresh's CPU
time in the viewer kernel (median of ``--repeats``). No target: it shows what the phone's
lower fidelity (``Dashboard(phone_points=300)``) saves.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import numpy as np

from g2048lab.dashboard import Dashboard
from g2048lab.messages import TrainingUpdate
from g2048lab.store import RunStore

RUN = "long"


def row(i: int, rng: np.random.Generator) -> dict:
    return {
        "iteration": i,
        "env_steps": 16384 * i,
        "train/loss": float(1.0 / i + rng.random() * 0.1),
        "train/policy_loss": float(-0.01 * rng.random()),
        "train/value_loss": float(2.0 / i + rng.random() * 0.1),
        "train/entropy": float(1.38 - i / 1e4),
        "train/aux_loss": 0.01,
        "train/learning_rate": 1e-3 * (1 - i / 1e5),
        "time/steps_per_s": float(5000 + 100 * rng.standard_normal()),
        "memory/gpu_gb": None,
        "memory/rss_gb": 0.9,
    }


def update(i: int, games: int, rng: np.random.Generator) -> TrainingUpdate:
    scores = rng.integers(500, 12000, size=games)
    return TrainingUpdate(
        run_id=RUN,
        iteration=i,
        episode=games * i,
        env_steps=16384 * i,
        score=float(scores.mean()),
        max_tile=1024,
        loss=0.5,
        policy_loss=0.0,
        value_loss=0.4,
        entropy=1.0,
        learning_rate=1e-3,
        actions=[0.1, 0.2, 0.6, 0.1],
        board_state=[[2, 4, 8, 16], [0, 0, 2, 1024], [0, 0, 0, 2], [0, 0, 0, 0]],
        attention_weights=[[[1 / 16] * 16] * 16] * 2,
        expert_usage=[[0.125] * 8],
        gpu_memory=None,
        model_params=0.04,
        steps_per_second=5000.0,
        timestamp=1.7e9 + 10.0 * i,
        best_score=int(scores.max()),
        elapsed_s=10.0 * i,
        finished_games=[[int(s), 1024] for s in scores],
    )


def charts(dashboard: Dashboard) -> tuple:
    """The games chart, the metric charts and the model charts."""
    return (dashboard.scores_panel.chart, dashboard.metrics_panel.grid, dashboard.model_panel.chart)


def payload(dashboard: Dashboard) -> tuple[int, int]:
    """(traces resent, values resent) so far, over every chart."""
    shown = charts(dashboard)
    return sum(chart.sent for chart in shown), sum(chart.values_sent for chart in shown)


def trace_bytes(dashboard: Dashboard) -> dict[str, int]:
    """JSON size of each trace's x and y now, by chart and trace."""
    sizes = {}
    for chart in charts(dashboard)[:2]:
        for index, trace in enumerate(chart.figure.data):
            data = {"x": list(trace.x or ()), "y": list(trace.y or ())}
            sizes[f"{id(chart)}/{index}"] = len(json.dumps(data))
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--games-per-message", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(folder)
        store.create_run(RUN, config={}, device="cpu")
        for i in range(1, args.iterations + 1):
            store.add_metrics(RUN, row(i, rng))
            store.put_update(RUN, update(i, args.games_per_message, rng))
        i = args.iterations
        print(f"run: {i:,} iterations, {i * args.games_per_message:,} games")
        header = ("page", "points", "traces", "values", "JSON bytes", "ms")
        print("{:>12} {:>7} {:>7} {:>8} {:>11} {:>6}".format(*header))
        for label, width in (("desktop 1280", 1280), ("phone 390", 390)):
            dashboard = Dashboard.attach(store, RUN)
            dashboard.presence.width = width
            for _ in range(20):  # catch up with the stored run
                dashboard.refresh()
            rows = []
            for _ in range(args.repeats):
                i += 1
                store.add_metrics(RUN, row(i, rng))
                store.put_update(RUN, update(i, args.games_per_message, rng))
                before, sizes_before = payload(dashboard), trace_bytes(dashboard)
                start = time.process_time()
                dashboard.refresh()
                ms = 1000 * (time.process_time() - start)
                after, sizes_after = payload(dashboard), trace_bytes(dashboard)
                changed = sum(
                    size for key, size in sizes_after.items() if size != sizes_before.get(key)
                )
                rows.append((after[0] - before[0], after[1] - before[1], changed, ms))
            dashboard.close()
            traces, values, size, ms = (statistics.median(c) for c in zip(*rows))
            results[label] = {
                "max_points": dashboard.max_points,
                "traces": traces,
                "values": values,
                "json_bytes": size,
                "refresh_ms": round(ms, 1),
            }
            print(
                f"{label:>12} {dashboard.max_points:>7} {traces:>7.0f} {values:>8,.0f}"
                f" {size:>11,.0f} {ms:>6.1f}"
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
