"""G2048LAB_CPUS pins a g2048lab process to some cores; a local sweep gives each trial its
own share, so its learner sizes its threads to that share (affinity.py, sweeps/driver.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from g2048lab.affinity import CPUS_ENV, cpu_shares, format_cpus, parse_cpus
from g2048lab.store import RunStore
from g2048lab.sweeps.driver import Driver, LocalLauncher
from g2048lab.sweeps.spec import SweepSpec, parse_grid
from g2048lab.sweeps.sweep_store import SweepStore

pinning = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity")


def test_cores_are_shared_evenly_and_disjointly_and_wrap_when_trials_outnumber_them():
    assert cpu_shares([3, 1, 0, 2], 2) == [[0, 1], [2, 3]]
    assert cpu_shares(range(5), 2) == [[0, 1, 2], [3, 4]]
    assert cpu_shares(range(7), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert cpu_shares([0, 1], 1) == [[0, 1]]
    assert cpu_shares([0, 1], 3) == [[0], [1], [0]]
    with pytest.raises(ValueError):
        cpu_shares([], 1)


@pytest.mark.parametrize(
    "text, cpus", [("0", {0}), ("0,1", {0, 1}), ("0-3", {0, 1, 2, 3}), (" 1, 4-5", {1, 4, 5})]
)
def test_a_cpu_list_reads_back_what_it_says(text, cpus):
    assert parse_cpus(text) == cpus
    assert parse_cpus(format_cpus(cpus)) == cpus


@pytest.mark.parametrize("text", ["", "a", "1,", "3-1", "-1", "0-"])
def test_a_malformed_cpu_list_is_refused_saying_how_to_write_one(text):
    with pytest.raises(ValueError, match="write them as 0,1 or 0-3"):
        parse_cpus(text)


def _g2048lab(args, cpus: str, **kwargs):
    env = {**os.environ, CPUS_ENV: cpus}
    return subprocess.run(
        [sys.executable, "-m", "g2048lab", *args],
        env=env, capture_output=True, text=True, timeout=300, **kwargs,
    )  # fmt: skip


@pinning
def test_a_pinned_train_sizes_its_threads_to_its_cores_and_records_them(tmp_path):
    core = min(os.sched_getaffinity(0))
    done = _g2048lab(
        ["train", "--preset", "tiny", "--steps", "2000", "--runs-dir", str(tmp_path),
         "--run-name", "one", "--quiet", "--device", "cpu"],
        str(core),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = RunStore(tmp_path).get_run("one").config
    # one core: one torch thread and one update thread, whatever the machine has
    assert (config["cores"], config["threads"], config["ran"]["update_threads"]) == (1, 1, 1)


@pinning
@pytest.mark.parametrize("cpus", ["x", "100000"])
def test_a_bad_cpu_list_is_one_line_and_exit_2(tmp_path, cpus):
    done = _g2048lab(["runs", "--runs-dir", str(tmp_path)], cpus)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and CPUS_ENV in done.stderr
    assert "Traceback" not in done.stderr


@pinning
@pytest.mark.parametrize("parallel", [1, 2])
def test_a_local_sweep_pins_each_trial_to_a_share_and_lets_it_size_its_threads(tmp_path, parallel):
    """On 2 cores, one trial at once gets both: 1 torch thread and 2 update threads, as
    ``train`` alone would (a sweep used to give it --threads 2, leaving 1 update thread);
    two at once get a core each, not both cores each."""
    runs = RunStore(tmp_path)
    spec = SweepSpec(
        grid=parse_grid(["ppo.gamma=0.9,0.99"]), seeds=1, parallel=parallel,
        train=["--preset", "tiny", "--steps", "2000", "--device", "cpu"],
    )  # fmt: skip
    SweepStore(runs).create_sweep("pin", spec, spec.grid_settings())
    assert Driver(runs, "pin", say=lambda _: None, poll_s=0.2).run() == 0
    share = len(cpu_shares(os.sched_getaffinity(0), parallel)[0])
    for name in ("pin-000", "pin-001"):
        config = runs.get_run(name).config
        threads = max(1, share - 1)  # train's default on a machine of `share` cores
        assert (config["cores"], config["threads"]) == (share, threads), name
        assert config["ran"]["update_threads"] == max(1, min(2, share // threads))


@pinning
def test_a_trial_adopted_from_an_earlier_driver_keeps_its_share(tmp_path):
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("needs 2 cores")
    launcher = LocalLauncher()
    assert launcher.divide(2)
    sleepers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])]
    sleepers.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
    try:
        for sleeper, share in zip(sleepers, launcher.shares, strict=True):
            os.sched_setaffinity(sleeper.pid, share)
        launcher.hold(sleepers[1].pid)
        assert launcher._free_slot() == 0  # the adopted trial's share is not given again
        launcher.hold(sleepers[0].pid)
        assert launcher._free_slot() is None
        sleepers[1].kill()
        sleepers[1].wait()
        assert launcher._free_slot() == 1  # free once it ended
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()
