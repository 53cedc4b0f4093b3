"""Sweeps: the spec, the store's trials, the driver's queue and its faults (a killed driver,
a killed trial, a failing trial, stop and resume), pruning and sampling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from g2048lab.cli import main
from g2048lab.store import RunNotFound, RunStore
from g2048lab.sweeps import Sweep
from g2048lab.sweeps.prune import MedianRule, rungs
from g2048lab.sweeps.sample import Sampler
from g2048lab.sweeps.spec import SweepSpec, group_key, parse_grid, parse_random
from g2048lab.sweeps.sweep_store import SweepStore

from .helpers import wait_for

TINY = ["--preset", "tiny"]


# --- a bad spec: one line, exit 2, nothing made -------------------------------------------


@pytest.mark.parametrize(
    "sweep_args, train_args, says",
    [
        (["--grid", "ppo.nope=1,2"], [], "unrecognized arguments: --ppo.nope"),
        (["--grid", "ppo.clip-coef=-1,0.2"], [], "--ppo.clip-coef must be > 0, got -1"),
        (["--grid", "ppo.gamma="], [], "an empty value"),
        (["--grid", "seed=1,2"], [], "use --seeds for seeds"),
        (["--grid", "ntuple.learning-rate=0.1,0.2"], [], "add --learner ntuple"),
        (["--random", "ppo.learning-rate=1e-3:1e-4"], [], "LOW must be below HIGH"),
        (["--random", "ppo.learning-rate=1e-4:1e-3"], [], "give --trials 1 or more"),
        (["--seeds", "1"], [], "a sweep needs something to vary"),
        (["--grid", "ppo.gamma=0.9,0.99"], ["--run-name", "x"], "the sweep sets it itself"),
        (["--grid", "ppo.gamma=0.9,0.99", "--ray", "127.0.0.1:1"], ["--bogus"], "--bogus"),
    ],
)
def test_a_bad_spec_is_one_line_and_exit_2_before_anything_is_made(
    tmp_path, capsys, sweep_args, train_args, says
):
    runs_dir = tmp_path / "runs"
    argv = [*sweep_args, "--", *TINY, "--steps", "10", *train_args]
    code = main(["sweep", "start", "s", "--runs-dir", str(runs_dir), *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert says in err and len(err.strip().splitlines()) == 1, err
    assert not runs_dir.exists()


def test_the_grid_is_a_product_and_trials_run_seeds_outermost(tmp_path):
    spec = SweepSpec(grid=parse_grid(["a.x=1,2", "b=p,q,r"]), seeds=2)
    settings = spec.grid_settings()
    assert len(settings) == 6 and settings[0] == {"a.x": "1", "b": "p"}
    assert group_key({"b": "p", "a.x": "1"}) == group_key(settings[0])  # order-free, stable
    sweeps = SweepStore(RunStore(tmp_path))
    sweeps.create_sweep("g", spec, settings)
    trials = sweeps.trials("g")
    assert [t.seed for t in trials] == [0] * 6 + [1] * 6
    assert [t.run_name for t in trials[:2]] == ["g-000", "g-001"]
    assert trials[0].group == trials[6].group != trials[1].group
    with pytest.raises(ValueError, match="a sweep named 'g' exists"):
        sweeps.create_sweep("g", spec, settings)


def test_random_ranges_are_drawn_inside_them_and_a_resumed_sampler_does_not_redraw(tmp_path):
    spec = SweepSpec(
        random=parse_random(["ppo.learning-rate=1e-4:1e-2:log", "ppo.epochs=1:4"]),
        trials=3,
        seeds=2,
    )
    runs = RunStore(tmp_path)
    sweeps = SweepStore(runs)
    sweeps.create_sweep("r", spec, [])
    sampler = Sampler(spec, runs, [])
    for _ in range(2):
        sweeps.add_trials("r", [sampler.draw()])
    trials = sweeps.trials("r")
    assert len(trials) == 4 and [t.seed for t in trials] == [0, 1, 0, 1]
    for trial in trials:
        assert 1e-4 <= float(trial.setting["ppo.learning-rate"]) <= 1e-2
        assert trial.setting["ppo.epochs"] in {"1", "2", "3", "4"}
    again = Sampler(spec, runs, trials)  # a new driver: two settings drawn, one to go
    assert again.more()
    again.draw()
    assert not again.more()


# --- pruning ------------------------------------------------------------------------------


def _curve_run(runs: RunStore, name: str, level: float, steps: int = 1000, every: int = 100):
    runs.create_run(name, config={}, device="cpu")
    rows = [
        {"iteration": i, "env_steps": i * every, "rollout/score_mean": level + i}
        for i in range(1, steps // every + 1)
    ]
    runs.add_metrics_batch(name, rows)
    return rows


def test_the_median_rule_prunes_a_curve_clearly_behind_and_keeps_one_ahead(tmp_path):
    runs = RunStore(tmp_path)
    sweeps = SweepStore(runs)
    spec = SweepSpec(seeds=6, prune=True, prune_every=200)
    sweeps.create_sweep("p", spec, [{}])
    trials = sweeps.trials("p")
    for trial in trials[:3]:  # three finished trials near 100
        _curve_run(runs, trial.run_name, 100)
        sweeps.update_trial(trial, state="finished")
    rule = MedianRule(spec, runs, sweeps.trials("p"))
    behind, ahead = trials[3], trials[4]
    rule.begin(behind)
    rule.begin(ahead)

    def rows(level):
        return [
            {"iteration": i, "env_steps": i * 100, "rollout/score_mean": level} for i in range(1, 8)
        ]

    low, high = rows(10.0), rows(500.0)
    assert not rule.report(behind, low[:3])  # rung 1 only: inside the warm-up
    assert rule.report(behind, low[3:])
    assert "below the median of the finished trials there" in rule.why(behind)
    assert not rule.report(ahead, high)
    assert rungs([(100, 1.0), (200, 3.0), (250, 9.0)], 200) == {1: 2.0}  # rung 2 not done


# --- the driver, for real -----------------------------------------------------------------


def test_a_sweep_from_python_stops_resumes_survives_kill_9_and_a_failing_trial(tmp_path):
    more_threads = str((os.cpu_count() or 1) * 50 + 1)  # refused by train: more than cores
    sweep = Sweep(
        "f",
        grid={"threads": ["1", more_threads]},
        seeds=2,
        parallel=3,  # f-000 and f-002 (1 thread) train together; f-001 and f-003 fail
        train=[*TINY, "--steps", "60000", "--checkpoint-games", "10"],
        runs_dir=tmp_path,
    )
    began = time.monotonic()
    sweep.start()
    assert time.monotonic() - began < 10  # the driver is a process of its own
    runs, sweeps = RunStore(tmp_path), SweepStore(RunStore(tmp_path))

    def training_with_checkpoint(name):
        try:
            run = runs.get_run(name)
        except RunNotFound:
            return False
        return run.status == "running" and any(runs.run_dir(name).glob("ckpt-*.pt"))

    def both_training():
        return training_with_checkpoint("f-000") and training_with_checkpoint("f-002")

    wait_for(both_training, 120, "f-000 and f-002 training, checkpointed", every=0.5)
    failed = sweeps.trials("f")[1]
    assert failed.state == "failed" and more_threads in failed.error  # the others go on

    # stop: every trial saves a checkpoint and waits in the queue
    assert "stopped" in sweep.stop()
    assert sweep.status()["status"] == "stopped"
    assert [t.state for t in sweeps.trials("f")][:3] == ["queued", "failed", "queued"]
    assert {runs.get_run(n).status for n in ("f-000", "f-002")} == {"stopped"}
    assert sweep.driver.wait(timeout=30) == 1  # a stopped sweep's driver says so

    # resume from another object; then kill -9 its driver and one trial
    later = Sweep.attach("f", runs_dir=tmp_path).resume()
    wait_for(lambda: later.status()["status"] == "running", 30, every=0.5)
    wait_for(both_training, 120, "f-000 and f-002 training again", every=0.5)
    kept_id = runs.get_run("f-000").id
    later.driver.kill()
    later.driver.wait()
    assert later.status()["status"] == "interrupted"
    os.kill(runs.get_run("f-002").writer.pid, signal.SIGKILL)
    wait_for(lambda: runs.get_run("f-002").status == "killed", 30, every=0.5)

    resumed = subprocess.run(
        [sys.executable, "-m", "g2048lab", "sweep", "resume", "f", "--runs-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "trial f-000 is still training: followed" in resumed.stderr
    assert "trial f-002 resumes" in resumed.stderr
    trials = {t.run_name: t for t in sweeps.trials("f")}
    assert {n: t.state for n, t in trials.items()} == {
        "f-000": "finished", "f-001": "failed", "f-002": "finished", "f-003": "failed",
    }  # fmt: skip
    # f-000: started, resumed once after the stop, then followed: never run twice at once
    assert trials["f-000"].attempts == 2 and runs.get_run("f-000").id == kept_id
    assert trials["f-002"].attempts == 3
    assert any("resumed from iteration" in text for _, text in runs.events("f-002"))
    assert all(runs.get_run(n).env_steps >= 60000 for n in ("f-000", "f-002"))
    assert set(runs.get_run("f-000").tags) == {"sweep:f", f"group:{trials['f-000'].group}"}
    status = subprocess.run(
        [sys.executable, "-m", "g2048lab", "sweep", "status", "f", "--json", "--runs-dir",
         str(tmp_path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    view = json.loads(status)
    assert view["status"] == "finished"
    assert view["counts"] == {"queued": 0, "running": 0, "finished": 2, "failed": 2, "pruned": 0}


class ScriptedLauncher:
    """Stands in for the trial processes where the driver's decisions are the point: each
    "process" writes its run's metric rows into the store, a row per poll, at a level its
    setting gives; stop() ends it as train does on SIGTERM (status stopped, exit 0)."""

    def __init__(self, runs: RunStore, level, rows: int = 12, every: int = 100):
        self.runs, self.level, self.rows, self.every = runs, level, rows, every
        self.started: list[str] = []

    def start(self, trial, argv, log):
        self.runs.create_run(trial.run_name, config={"total_env_steps": self.rows * self.every},
                             device="cpu")  # fmt: skip
        self.runs.set_status(trial.run_name, "running")
        self.started.append(trial.run_name)
        return {"trial": trial, "row": 0, "code": None}

    def poll(self, handle):
        if handle["code"] is None:
            name, i = handle["trial"].run_name, handle["row"] + 1
            value = self.level(handle["trial"].setting)
            row = {"iteration": i, "env_steps": i * self.every, "rollout/score_mean": value}
            self.runs.add_metrics(name, row)
            handle["row"] = i
            if i == self.rows:
                self.runs.set_status(name, "finished")
                handle["code"] = 0
        return handle["code"]

    def stop(self, handle):
        self.runs.set_status(handle["trial"].run_name, "stopped")
        handle["code"] = 0

    def kill(self, handle):
        handle["code"] = -9

    def close(self):
        pass


def test_the_driver_prunes_the_trials_clearly_behind_as_pruned_not_failed(tmp_path):
    from g2048lab.sweeps.driver import Driver

    runs = RunStore(tmp_path)
    spec = SweepSpec(
        grid=parse_grid(["ppo.gamma=0.9,0.99,0.999"]), seeds=3, parallel=3, prune=True,
        prune_every=200,
    )  # fmt: skip
    SweepStore(runs).create_sweep("p", spec, spec.grid_settings())
    levels = {"0.9": 100.0, "0.99": 110.0, "0.999": 10.0}  # 0.999 is clearly behind
    launcher = ScriptedLauncher(runs, lambda setting: levels[setting["ppo.gamma"]])
    said = []
    assert Driver(runs, "p", launcher=launcher, say=said.append, poll_s=0).run() == 0
    states = {(t.setting["ppo.gamma"], t.seed): t.state for t in SweepStore(runs).trials("p")}
    assert {s for (g, _), s in states.items() if g != "0.999"} == {"finished"}
    assert states[("0.999", 0)] == "finished"  # before any trial had finished: no median yet
    assert {states[("0.999", 1)], states[("0.999", 2)]} == {"pruned"}
    assert any("pruned: its rollout/score_mean by 400 env steps" in line for line in said)
    assert runs.get_run("p-005").status == "stopped"  # its run is kept, with its rows


def test_random_search_draws_its_settings_as_slots_free_and_tells_the_sampler(tmp_path):
    from g2048lab.sweeps.driver import Driver

    runs = RunStore(tmp_path)
    spec = SweepSpec(random=parse_random(["ppo.learning-rate=1e-4:1e-2:log"]), trials=4,
                     seeds=2, parallel=2)  # fmt: skip
    SweepStore(runs).create_sweep("r", spec, [])
    launcher = ScriptedLauncher(runs, lambda s: 1 / float(s["ppo.learning-rate"]), rows=3)
    assert Driver(runs, "r", launcher=launcher, say=lambda _: None, poll_s=0).run() == 0
    trials = SweepStore(runs).trials("r")
    assert len(trials) == 8 and {t.state for t in trials} == {"finished"}
    assert len({t.group for t in trials}) == 4  # 4 settings, 2 seeds each
