"""What the checkpoint checksum costs: save and load times with and without it.

Two real payloads (``Trainer.state_dict()`` of a fresh run): the n-tuple learner's default
"4x6" network (268 MB of weights) and a PPO transformer (``--preset``, default "small",
with Adam's moments made by one step on zero gradients, as a trained run's file holds them).
For each, ``--repeats`` rounds of, in turn:

- save with: ``save_checkpoint`` as it is (digest, serialise, write, fsync, rename);
- save without: the same with ``content_digest`` replaced by a constant;
- load with: ``load_checkpoint`` of that file (read, digest, compare, field checks);
- load without: ``load_checkpoint`` of the same payload saved without a checksum, as
  files from before checksums are (read, field checks);
- digest: ``content_digest`` of the payload alone.

Prints the median of each and every run's times; files go to ``--dir`` (default: a
temporary folder, removed after). The page cache is warm for both loads alike.

    python bench/checkpoint_checksum.py [--repeats 5] [--preset small] [--dir DIR] [--json]

Prints numbers only; nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from g2048lab import checkpoint
from g2048lab.checkpoint import content_digest, save_checkpoint
from g2048lab.learners.loading import load_checkpoint
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.trainer import Trainer, TrainerConfig


def ntuple_payload() -> dict:
    return Trainer(TrainerConfig(learner="ntuple", device="cpu")).state_dict()


def ppo_payload(preset: str) -> dict:
    settings = PPOLearnerConfig(preset=preset)
    trainer = Trainer(TrainerConfig(learner_config=settings, device="cpu", threads=1))
    model, optimizer = trainer.learner.model, trainer.learner.optimizer
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()  # Adam's moments exist after the first update; a zero step keeps weights
    return trainer.state_dict()


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(payload: dict, folder: Path, repeats: int) -> dict[str, list[float]]:
    """Seconds of each operation in each of ``repeats`` rounds."""
    checked, unchecked = folder / "checked.pt", folder / "unchecked.pt"
    times: dict[str, list[float]] = {
        "save with": [],
        "save without": [],
        "load with": [],
        "load without": [],
        "digest": [],
    }
    real_digest = checkpoint.content_digest
    for _ in range(repeats):
        times["save with"].append(timed(lambda: save_checkpoint(payload, checked)))
        checkpoint.content_digest = lambda payload: "off"
        try:
            times["save without"].append(timed(lambda: save_checkpoint(payload, unchecked)))
        finally:
            checkpoint.content_digest = real_digest
        old = torch.load(unchecked, weights_only=True)  # as written before checksums
        del old["checksum"]
        torch.save(old, unchecked)
        del old
        times["load with"].append(timed(lambda: load_checkpoint(checked)))
        times["load without"].append(timed(lambda: load_checkpoint(unchecked)))
        times["digest"].append(timed(lambda: content_digest(payload)))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--preset", default="small", help="the PPO model's preset")
    parser.add_argument("--dir", type=Path, default=None, help="where the files go")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        for name, make in (
            ("ntuple 4x6", ntuple_payload),
            (f"ppo {args.preset}", lambda: ppo_payload(args.preset)),
        ):
            payload = make()
            times = measure(payload, Path(folder), args.repeats)
            size = (Path(folder) / "checked.pt").stat().st_size
            del payload
            results[name] = {"bytes": size, "seconds": times}
            if not args.json:
                print(f"{name}: {size / 1e6:.1f} MB, median of {args.repeats} (each run)")
                for operation, runs in times.items():
                    each = " ".join(f"{t:.3f}" for t in runs)
                    print(f"  {operation:<13} {statistics.median(runs):7.3f} s   ({each})")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
