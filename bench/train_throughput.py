"""PPO training throughput per preset, and what messages, the run store and checkpoints cost.

    python bench/train_throughput.py [--presets tiny cpu] [--iterations 4] [--repeats 3]
        [--threads 1] [--device cpu] [--precision fp32 bf16]

For each (preset, precision), three set-ups train ``--iterations`` PPO iterations
from scratch after one warm-up iteration, interleaved ``--repeats`` times so that
machine noise hits them alike; medians are printed:

- ``quiet``: no subscriber but the trainer's own queue, a message every 2 s;
- ``msgs``: the same with a message every 0.5 s (the fastest cadence allowed);
- ``store``: what ``g2048lab train`` runs: a message every 1 s, the run store
  (``RunRecorder``), the JSON-lines log and the checkpointer (every 5 minutes).

Throughput is env steps over wall time between the first and the last measured
iteration, so subscriber work at iteration ends is included. Also printed: the
rollout/update split, the share of wall time spent building and sending messages,
the share spent in the store, log and checkpointer subscribers (timed directly: the
side-by-side throughput is noisier than these shares on a shared machine), and the
time of one checkpoint save.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from g2048lab.checkpoint import Checkpointer, CheckpointManager
from g2048lab.device import ppo_sizes_for, select_device
from g2048lab.learners.ppo.algorithm import PPOConfig
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.logs import JsonLinesLog
from g2048lab.store import RunRecorder, RunStore
from g2048lab.trainer import Subscriber, Trainer, TrainerConfig

SETUPS = {"quiet": 2.0, "msgs": 0.5, "store": 1.0}  # name: seconds between messages


class Timed(Subscriber):
    """Forwards to ``inner`` and adds up the wall time it takes."""

    def __init__(self, inner: Subscriber):
        self.inner = inner
        self.seconds = 0.0

    def _timed(self, method: str, *args):
        start = time.perf_counter()
        try:
            return getattr(self.inner, method)(*args)
        finally:
            self.seconds += time.perf_counter() - start

    def on_update(self, update, context):
        return self._timed("on_update", update, context)

    def on_iteration(self, metrics, context):
        return self._timed("on_iteration", metrics, context)

    def on_game(self, game, context):
        return self._timed("on_game", game, context)

    def on_end(self, context):
        return self._timed("on_end", context)


class Rows(Subscriber):
    def __init__(self, iterations: int):
        self.iterations = iterations
        self.rows: list[dict] = []

    def on_iteration(self, metrics, context):
        self.rows.append(metrics)
        return context.iteration < self.iterations + 1  # +1: the first is a warm-up


def measure(setup: str, preset: str, args, precision: str, folder: Path) -> dict:
    ppo = PPOConfig(**ppo_sizes_for(preset, select_device(args.device)))
    config = TrainerConfig(
        learner_config=PPOLearnerConfig(preset=preset, ppo=ppo, precision=precision),
        device=args.device,
        threads=args.threads,
        update_interval_s=SETUPS[setup],
    )
    trainer = Trainer(config)
    checkpoint_s = None
    if setup == "store":
        store = RunStore(folder)
        name = store.create_run(config={}, device=args.device).name
        checkpointer = Checkpointer(CheckpointManager(store.run_dir(name)), every_minutes=5)
        recorder = RunRecorder(store, name, checkpoint=checkpointer.request)
        log = JsonLinesLog(store.run_dir(name) / "log.jsonl")
        timed = [trainer.subscribe(Timed(s)) for s in (checkpointer, recorder, log)]
    rows = trainer.subscribe(Rows(args.iterations))
    trainer.run()
    store_share = None
    if setup == "store":
        store_share = sum(t.seconds for t in timed) / trainer.elapsed_s
        start = time.perf_counter()
        checkpointer.manager.save(trainer.state_dict())
        checkpoint_s = time.perf_counter() - start
    first, last = rows.rows[0], rows.rows[-1]
    measured = rows.rows[1:]
    return {
        "steps_per_s": (last["env_steps"] - first["env_steps"])
        / (last["time/elapsed_s"] - first["time/elapsed_s"]),
        "rollout_s": statistics.mean(r["train/rollout_s"] for r in measured),
        "update_s": statistics.mean(r["train/update_s"] for r in measured),
        "emit_share": trainer.emit_seconds / trainer.elapsed_s,
        "checkpoint_s": checkpoint_s,
        "store_share": store_share,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "cpu"])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", nargs="+", default=["fp32"])
    args = parser.parse_args()
    print(
        f"{'preset':>6} {'prec':>5} {'setup':>6} {'steps/s':>8} {'vs quiet':>9} "
        f"{'rollout s':>10} {'update s':>9} {'msg time %':>11} {'store time %':>13} {'ckpt s':>7}"
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            for precision in args.precision:
                runs = {setup: [] for setup in SETUPS}
                for _ in range(args.repeats):
                    for setup in SETUPS:
                        runs[setup].append(measure(setup, preset, args, precision, Path(tmp)))
                quiet = statistics.median(r["steps_per_s"] for r in runs["quiet"])
                for setup, found in runs.items():
                    med = {
                        k: statistics.median(r[k] for r in found if r[k] is not None)
                        for k in found[0]
                        if any(r[k] is not None for r in found)
                    }
                    ckpt = f"{med['checkpoint_s']:.3f}" if "checkpoint_s" in med else "-"
                    share = f"{100 * med['store_share']:.2f}" if "store_share" in med else "-"
                    print(
                        f"{preset:>6} {precision:>5} {setup:>6} {med['steps_per_s']:>8.0f} "
                        f"{100 * (med['steps_per_s'] / quiet - 1):>+8.1f}% "
                        f"{med['rollout_s']:>10.2f} {med['update_s']:>9.2f} "
                        f"{100 * med['emit_share']:>11.2f} {share:>13} {ckpt:>7}"
                    )
                    results.append(
                        {"preset": preset, "precision": precision, "setup": setup, **med}
                    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
