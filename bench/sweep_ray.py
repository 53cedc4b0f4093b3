"""What Ray costs a sweep on this machine: starting a two-node cluster, connecting to it, and
each trial's overhead (the same trial's wall time through ``RayLauncher`` minus run locally).

    python bench/sweep_ray.py [--repeats 3] [--steps 4096]

Ray probes a public address and listens on every interface, so the benchmark runs itself in a
network namespace with loopback alone (``unshare -n``, as root; it says so and stops if that
is refused). The cluster is ``ray.cluster_utils.Cluster``: a head and a worker node of one CPU
each. A trial is ``g2048lab train --preset tiny --steps N --threads 1``, timed from its start
to its end as the sweep driver sees it (polled every ``driver.POLL_S``, as the driver does):
locally a ``LocalLauncher`` process, on Ray an actor whose run is relayed into the store here,
checkpoints included. The two alternate, so a machine's load weighs on both alike. Prints the
median over the repeats.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INSIDE = "G2048LAB_BENCH_NETNS"  # set in the namespace's copy of this process


def run_in_namespace() -> int:
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"]).returncode:
        print(
            "bench/sweep_ray.py needs `unshare -n` (root) to keep Ray on loopback", file=sys.stderr
        )
        return 2
    script = 'ip link set lo up && exec "$@"'
    command = ["unshare", "-n", "bash", "-c", script, "-", sys.executable, *sys.argv]
    with tempfile.TemporaryDirectory(prefix="ray-home-") as home:  # Ray writes under ~/.ray
        return subprocess.run(command, env={**os.environ, INSIDE: "1", "HOME": home}).returncode


def timed_trial(launcher, trial, train: list[str], runs_dir: Path, poll_s: float) -> float:
    """Seconds from ``launcher.start`` until its poll gives an exit code (0 expected)."""
    argv = ["train", *train, "--run-name", trial.run_name, "--runs-dir", str(runs_dir), "--quiet"]
    log = runs_dir / f"{trial.run_name}.log"
    start = time.perf_counter()
    handle = launcher.start(trial, argv, log)
    while (code := launcher.poll(handle)) is None:
        time.sleep(poll_s)
    if code != 0:
        raise SystemExit(f"trial {trial.run_name} ended with {code}: {log.read_text()[-500:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4096, help="env steps per trial")
    args = parser.parse_args()
    if os.environ.get(INSIDE) != "1":
        sys.exit(run_in_namespace())
    os.environ.setdefault("RAY_agent_register_timeout_ms", "120000")  # a busy machine

    from ray.cluster_utils import Cluster

    from g2048lab.store import RunStore
    from g2048lab.sweeps.driver import POLL_S, LocalLauncher
    from g2048lab.sweeps.ray_launcher import RayLauncher
    from g2048lab.sweeps.spec import SweepSpec
    from g2048lab.sweeps.sweep_store import SweepStore

    started = time.perf_counter()
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    cluster_s = time.perf_counter() - started
    runs_dir = Path(tempfile.mkdtemp(prefix="sweep-ray-bench-"))
    try:
        started = time.perf_counter()
        ray_launcher = RayLauncher(cluster.address)
        connect_s = time.perf_counter() - started
        runs = RunStore(runs_dir)
        spec = SweepSpec(seeds=2 * args.repeats)
        SweepStore(runs).create_sweep("bench", spec, [{}])
        trials = SweepStore(runs).trials("bench")
        train = ["--preset", "tiny", "--steps", str(args.steps), "--threads", "1"]
        local, remote = [], []
        for i in range(args.repeats):
            local.append(timed_trial(LocalLauncher(), trials[2 * i], train, runs_dir, POLL_S))
            remote.append(timed_trial(ray_launcher, trials[2 * i + 1], train, runs_dir, POLL_S))
        ray_launcher.close()
    finally:
        cluster.shutdown()
        shutil.rmtree(runs_dir, ignore_errors=True)
    local_s, remote_s = statistics.median(local), statistics.median(remote)
    print(f"Ray cluster start (head + 1 worker node): {cluster_s:6.1f} s")
    print(f"driver connects (ray.init):               {connect_s:6.1f} s")
    print(f"one trial, {args.steps:,} env steps, median of {args.repeats}:")
    print(f"  local process:                          {local_s:6.1f} s")
    print(f"  Ray actor, relayed here:                {remote_s:6.1f} s")
    print(f"  overhead per trial:                     {remote_s - local_s:6.1f} s")
    each = "; ".join(f"{a:.1f} / {b:.1f}" for a, b in zip(local, remote))
    print(f"  (each, local / ray: {each})")


if __name__ == "__main__":
    main()
