"""How long a checkpoint holds up training: the default n-tuple run (1 GB of weights and TC
statistics on 4x4) saved through ``Checkpointer`` in the background (the default: the
training thread copies the state, a thread writes it) and in place (``background=False``:
the training thread hashes, serialises, writes and syncs it), alternating, ``--repeats``
times each; the stall is the time ``Checkpointer.save`` keeps the training thread, the
write the time until the file is safe on disk. Median and each run, in seconds.

    python bench/checkpoint_stall.py [--repeats 3] [--tuples auto] [--moves 2000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from g2048lab.checkpoint import Checkpointer, CheckpointManager
from g2048lab.learners.ntuple.network import NTupleConfig
from g2048lab.trainer import Trainer, TrainerConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tuples", default="auto")
    parser.add_argument("--moves", type=int, default=2_000_000, help="trained before saving")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    config = TrainerConfig(
        learner="ntuple",
        learner_config=NTupleConfig(tuples=args.tuples, threads=1),
        total_env_steps=args.moves,
    )
    trainer = Trainer(config)
    trainer.run()  # the tables touched, as a run's are
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for background in (True, False):
                where = Path(folder) / f"{background}-{repeat}"
                checkpointer = Checkpointer(CheckpointManager(where, keep_last=1), None, None,
                                            background=background)  # fmt: skip
                context = trainer._context()
                start = time.perf_counter()
                checkpointer.save(context)
                stall = time.perf_counter() - start
                checkpointer._finish(wait=True)
                written = time.perf_counter() - start
                if checkpointer._writer is not None:
                    checkpointer._writer.shutdown()
                size = checkpointer.manager.latest().stat().st_size
                key = "background" if background else "in place"
                row = results.setdefault(key, {"stall_s": [], "write_s": []})
                row["stall_s"].append(stall)
                row["write_s"].append(written)
    summary = {
        key: {name: statistics.median(v) for name, v in row.items()} | {"runs": row}
        for key, row in results.items()
    }
    summary["file_mb"] = size / 1e6
    if args.json:
        print(json.dumps(summary))
        return
    print(f"checkpoint of {size / 1e6:,.0f} MB ({trainer.learner.describe()})")
    for key, row in results.items():
        stall = ", ".join(f"{s:.2f}" for s in row["stall_s"])
        write = ", ".join(f"{s:.2f}" for s in row["write_s"])
        print(
            f"{key:>10}: training held {statistics.median(row['stall_s']):.2f} s ({stall}); "
            f"file safe after {statistics.median(row['write_s']):.2f} s ({write})"
        )


if __name__ == "__main__":
    main()
