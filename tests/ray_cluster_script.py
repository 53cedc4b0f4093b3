"""A sweep on a two-node Ray cluster with a node killed mid-trial; run by test_sweep_ray.py.

Run it inside a network namespace that has loopback alone (``unshare -n``; Ray probes a public
address and listens on every interface otherwise):

    unshare -n bash -c 'ip link set lo up && exec python tests/ray_cluster_script.py RUNS_DIR'

It starts a cluster (``ray.cluster_utils.Cluster``: a head and a worker node, one CPU each, so
each of the sweep's two trials lands on its own node) and ``g2048lab sweep start --ray`` as a
process, watches the runs folder while the trials train, kills the worker node (its
raylet and every process of it) once the trial there has a checkpoint here, waits for the sweep
to end and prints what it saw as one line of JSON. The test reads that line and the folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from g2048lab.store import RunStore, StoreError

SWEEP = "rs"
# 30 iterations of the tiny preset: long enough on a fast quiet machine (about 12 s) for
# the worker to be killed mid-trial, once a checkpoint of its trial has reached the driver
# (with 10, a quiet machine finished the trial first); test_sweep_ray.py says 30 too
ITERATIONS = 30
STEPS = ITERATIONS * 2048
DEADLINE_S = 240.0


def main(runs_dir: str) -> int:
    # a busy machine starts a node's Python agents slowly; Ray's raylet waits 15 s, then aborts
    os.environ.setdefault("RAY_agent_register_timeout_ms", "120000")
    import ray
    from ray.cluster_utils import Cluster

    seen: dict = {"live": {}, "killed": None, "timings": {}}
    started = time.monotonic()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "include_dashboard": False,
            "include_log_monitor": False,  # the driver reads no worker logs
            # a dead node is noticed in ~4 s here (Ray's default: ~15 s)
            "_system_config": {
                "health_check_period_ms": 1000,
                "health_check_timeout_ms": 5000,
                "health_check_failure_threshold": 4,
            },
        },
    )
    seen["head_node"] = cluster.head_node.node_id
    log = open(Path(runs_dir) / "driver.log", "wb")  # noqa: SIM115 (closed below)
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "g2048lab",
            "sweep",
            "start",
            SWEEP,
            "--ray",
            cluster.address,
            "--runs-dir",
            runs_dir,
            "--seeds",
            "2",
            "--parallel",
            "2",
            "--eval-games",
            "3",
            "--",
            "--preset",
            "tiny",
            "--steps",
            str(STEPS),
            "--threads",
            "1",
            "--checkpoint-minutes",
            "0.02",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # the worker joins while the driver starts: the first trial takes the head's one CPU,
        # the second waits for the worker's
        worker = cluster.add_node(num_cpus=1, include_log_monitor=False)
        cluster.wait_for_nodes()
        seen["timings"]["cluster_s"] = time.monotonic() - started
        seen["worker_node"] = worker.node_id
        seen["driver_code"] = watch(runs_dir, driver, cluster, worker, seen, started)
    finally:
        if driver.poll() is None:  # stopped by its own handle
            driver.kill()
            driver.wait()
        log.close()
        ray.shutdown()
        cluster.shutdown()
    seen["timings"]["total_s"] = time.monotonic() - started
    print(json.dumps(seen), flush=True)
    return 0


def watch(runs_dir, driver, cluster, worker, seen, started) -> int | None:
    """Poll the runs folder every 0.25 s until the driver exits: per run, the metric row
    counts seen while it ran and how old its latest message was; kill the worker node once
    the run on it has a checkpoint here and trains on."""
    store = None
    while driver.poll() is None:
        if time.monotonic() - started > DEADLINE_S:
            return None
        time.sleep(0.25)
        if store is None:
            try:
                store = RunStore(runs_dir, create=False)
            except StoreError:
                continue
        for run in store.list_runs():
            live = seen["live"].setdefault(run.name, {"rows": [], "staleness_s": []})
            if run.status != "running":
                continue
            rows = len(store.metrics(run.name))
            if rows not in live["rows"]:
                live["rows"].append(rows)
            update = store.latest_update(run.name)
            if update is not None:
                live["staleness_s"].append(round(time.time() - update.timestamp, 2))
            if seen["killed"] is None and on_node(store, run.name, worker.node_id):
                saved = sorted((store.root / run.name).glob("ckpt-*.pt"))
                if saved and rows >= 2:
                    seen["killed"] = {
                        "run": run.name,
                        "checkpoint": saved[-1].name,
                        "iteration": run.iteration,
                        "env_steps": run.env_steps,
                    }
                    cluster.remove_node(worker, allow_graceful=False)
                    seen["timings"]["killed_at_s"] = time.monotonic() - started
    return driver.wait()


def on_node(store: RunStore, name: str, node_id: str) -> bool:
    """Whether the run's last placement (its latest "runs on Ray node" event) is that node."""
    placed = [text for _, text in store.events(name) if text.startswith("runs on Ray node")]
    return bool(placed) and f"node {node_id[:12]}" in placed[-1]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
