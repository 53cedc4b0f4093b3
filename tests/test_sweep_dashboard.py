"""Sweeps in the runs browser (and so on the phone's home screen): group curves (mean and
95% band across seeds, per bin), their overlay beside runs, the sweep panel's trials by group
with progress, stop and resume acting on the sweep chosen in the kernel, and an idle refresh
that sends nothing. Stores are built from fake metric rows; one real driver process is run.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import ipywidgets
import numpy as np
import pytest
from scipy import stats as scipy_stats

from g2048lab import stats
from g2048lab.dashboard import RunsBrowser, sweep_panel
from g2048lab.dashboard.groups import (
    band_outline,
    binned,
    group_curve,
    group_label,
    mean_band,
)
from g2048lab.dashboard.metric_grid import BAND
from g2048lab.store import RunStore
from g2048lab.sweeps.spec import SweepSpec
from g2048lab.sweeps.sweep_store import SweepStore

from .factories import training_update

KEY = "rollout/score_mean"
STEPS = 1000  # each fake trial's budget (total_env_steps)


# --- group curves: the math ---------------------------------------------------------------


def test_binned_takes_each_runs_mean_per_bin_its_line_between_points_and_nothing_beyond():
    values = binned([0, 1, 5, 7], [1, 3, 5, 9], [0, 2, 4, 6, 8, 10])
    assert values[:4].tolist() == [2.0, 4.0, 5.0, 9.0]
    assert np.isnan(values[4])


def test_the_group_curve_is_the_mean_across_runs_with_a_t_interval_and_n_per_bin():
    rng = np.random.default_rng(0)
    x = np.arange(10) * 100.0
    ys = rng.normal(1000, 50, size=(4, 10))
    curves = [(x, y) for y in ys]
    curves[3] = (x[:6], ys[3, :6])  # a seed that is behind: in the first six bins only
    curve = group_curve(curves, bins=10)
    assert curve.n.tolist() == [4] * 6 + [3] * 4
    for b in range(10):
        column = ys[: curve.n[b], b]
        assert curve.mean[b] == pytest.approx(column.mean(), rel=1e-12)
        low, high = scipy_stats.t.interval(
            0.95, len(column) - 1, loc=column.mean(), scale=scipy_stats.sem(column)
        )
        assert (curve.low[b], curve.high[b]) == pytest.approx((low, high), rel=1e-9)
        assert curve.low[b] < curve.mean[b] < curve.high[b]
    assert curve.x.tolist() == pytest.approx((45 + 90 * np.arange(10)).tolist())  # centres
    # two runs, 1 and 3: mean 2, sd sqrt(2), so the half-width is t(0.975, 1) = 12.706
    mean, low, high, n = mean_band(np.array([[1.0], [3.0]]))
    assert (mean[0], n[0]) == (2.0, 2)
    assert high[0] - mean[0] == pytest.approx(12.7062, abs=1e-4)
    # where the percentile bootstrap (stats.mean_interval) says [1, 3]: too sure for 2 seeds
    assert stats.mean_interval(np.array([1.0, 3.0])).bounds() == [1.0, 3.0]
    # one run in a bin: its value, no band
    mean, low, high, n = mean_band(np.array([[5.0], [np.nan]]))
    assert (mean[0], n[0]) == (5.0, 1) and np.isnan(low[0]) and np.isnan(high[0])


def test_the_band_holds_the_true_mean_95_percent_of_the_time_and_narrows_with_seeds():
    rng = np.random.default_rng(1)
    bins = 4000  # each bin an independent trial of 3 seeds
    low, high = mean_band(rng.normal(5.0, 2.0, size=(3, bins)))[1:3]
    coverage = np.mean((low <= 5.0) & (high >= 5.0))
    assert 0.935 < coverage < 0.965, coverage
    widths = []
    for seeds in (2, 3, 5, 10, 30):
        low, high = mean_band(rng.normal(5.0, 2.0, size=(seeds, 500)))[1:3]
        widths.append(np.mean(high - low))
    assert widths == sorted(widths, reverse=True), widths


def test_bins_follow_the_runs_points_and_the_band_outline_skips_bins_without_one():
    # runs of 20 points: 20 bins even when 100 are allowed
    x = np.linspace(0, 1900, 20)
    curve = group_curve([(x, np.ones(20)), (x, np.ones(20) * 3)], bins=100)
    assert len(curve.x) == 20 and curve.n.tolist() == [2] * 20
    # runs [0, 10] and [20, 30] and [5, 25]: bands where two overlap, apart
    a, b, c = np.arange(0, 11.0), np.arange(20, 31.0), np.arange(5, 26.0)
    curve = group_curve([(a, a), (b, b), (c, c + 1)], bins=30)
    xs, ys = band_outline(curve)
    assert xs.count(None) == 1 and ys.count(None) == 1
    first = xs[: xs.index(None)]
    assert first == first[: len(first) // 2] + first[: len(first) // 2][::-1]
    assert group_curve([([], []), ([np.nan], [1.0])], bins=10) is None
    assert group_label({"ppo.learning-rate": "3e-4", "learner": "ppo"}) == (
        "ppo.learning-rate=3e-4, learner=ppo"
    )
    assert group_label({}) == "all seeds"


# --- a store with sweeps ------------------------------------------------------------------


def metric_rows(level: float, rng: np.random.Generator, n: int = 10) -> list[dict]:
    return [
        {
            "iteration": i,
            "env_steps": 100 * i,
            "episodes": 5 * i,
            "time/elapsed_s": 1.0 * i,
            KEY: level + 10 * i + float(rng.normal(0, 20)),
            "train/loss": 1.0 / i,
        }
        for i in range(1, n + 1)
    ]


def start_trial(store: RunStore, sweeps: SweepStore, trial, level: float, rng, steps=500):
    """As the driver and a trial's process would: the run, its rows, tags, the trial running."""
    store.create_run(
        trial.run_name, config={"learner": "ppo", "total_env_steps": STEPS}, device="cpu"
    )
    store.add_metrics_batch(trial.run_name, metric_rows(level, rng))
    store.put_update(
        trial.run_name,
        training_update(run_id=trial.run_name, env_steps=steps, status="finished"),
    )
    store.set_tags(trial.run_name, [f"sweep:{trial.sweep}", f"group:{trial.group}"])
    run_id = store.get_run(trial.run_name).id
    return sweeps.update_trial(trial, state="running", run_id=run_id, attempts=1)


@pytest.fixture
def store(tmp_path) -> RunStore:
    """Sweep ``lr``: 2 settings x 3 seeds, 5 trials started (the last one queued); sweep
    ``other``: 2 seeds of one setting, none started; a run of no sweep, ``solo``."""
    store = RunStore(tmp_path)
    sweeps = SweepStore(store)
    rng = np.random.default_rng(2)
    spec = SweepSpec(grid={"ppo.learning-rate": ["1e-4", "3e-4"]}, seeds=3, train=["--steps"])
    sweeps.create_sweep("other", SweepSpec(seeds=2), [{}])
    sweeps.create_sweep("lr", spec, spec.grid_settings())
    for number, trial in enumerate(sweeps.trials("lr")[:5]):
        level = 1000.0 if trial.setting["ppo.learning-rate"] == "1e-4" else 2000.0
        start_trial(store, sweeps, trial, level, rng, steps=100 * (number + 1))
    store.create_run("solo", config={"learner": "ppo"}, device="cpu")
    store.add_metrics_batch("solo", metric_rows(500.0, rng))
    return store


def groups_of(store: RunStore) -> dict[str, list]:
    found: dict[str, list] = {}
    for trial in SweepStore(store).trials("lr"):
        found.setdefault(trial.setting["ppo.learning-rate"], []).append(trial)
    return found


def test_a_running_sweeps_groups_are_overlaid_as_mean_and_band_beside_runs(store):
    browser = RunsBrowser(store, smoothing=0.0, compare=())
    lr = {group.key: group for group in browser.sweep_state.groups if group.sweep == "lr"}
    assert browser.sweep_panel.selected[0] == "lr"  # the running sweep, newest first
    assert set(browser.compare_groups.value) == {f"lr/{key}" for key in lr}
    grid = browser.metrics_panel.grid
    bands = [t for t in grid.figure.data if t.fill == "toself"]
    assert len(bands) == 2 * len(grid.keys)  # one band per group in every chart
    legend = sorted(t.name for t in grid.figure.data if t.showlegend)
    assert legend == ["ppo.learning-rate=1e-4 (n=3)", "ppo.learning-rate=3e-4 (n=2)"]
    # the mean is the mean of the seeds' rows (one row per bin here), the band around it
    for setting, trials in groups_of(store).items():
        group = next(g for g in lr.values() if g.setting["ppo.learning-rate"] == setting)
        rows = [store.metrics(t.run_name) for t in trials if t.run_name in group.runs]
        expected = np.mean([[row[KEY] for row in run] for run in rows], axis=0)
        mean = grid.trace(group.id, KEY)
        assert list(mean.x) == pytest.approx((145 + 90 * np.arange(10)).tolist())
        assert list(mean.y) == pytest.approx(expected.tolist(), rel=1e-12)
        assert f"n={len(rows)}" in mean.text[0] and "95% CI" in mean.text[0]
        band = grid.trace(group.id, KEY, BAND)
        top = np.array(band.y[: len(mean.y)])
        assert np.all(top > np.array(mean.y))
    # the single seeds on demand, thin, in the group's colour
    group = next(iter(lr.values()))
    assert grid.trace(group.id, KEY, group.runs[0]) is None
    browser.seeds.value = True
    seed = grid.trace(group.id, KEY, group.runs[0])
    assert seed is not None and seed.line.width == 1
    assert seed.line.color == grid.trace(group.id, KEY).line.color
    assert len(seed.y) == 10 and not seed.showlegend
    browser.seeds.value = False
    assert grid.trace(group.id, KEY, group.runs[0]) is None
    # a run of no sweep stays a run beside the groups
    browser.compare.value = ("solo",)
    assert grid.trace("solo", KEY) is not None and grid.trace("solo", KEY).fill is None
    browser.close()


def test_a_trial_that_starts_joins_its_group_live(store):
    browser = RunsBrowser(store, smoothing=0.0)
    sweeps = SweepStore(store)
    queued = sweeps.trials("lr")[5]
    group_id = f"lr/{queued.group}"
    grid = browser.metrics_panel.grid
    assert grid.trace(group_id, KEY).name.endswith("(n=2)")
    start_trial(store, sweeps, queued, 2000.0, np.random.default_rng(3))
    browser.refresh()
    assert grid.trace(group_id, KEY).name.endswith("(n=3)")
    assert f'data-run="{queued.run_name}" data-state="running"' in browser.sweep_panel.view.value
    browser.close()


def test_the_sweep_panel_lists_trials_by_group_with_state_and_progress(store):
    browser = RunsBrowser(store, link="?run={name}")
    panel = browser.sweep_panel
    assert panel.box.layout.display is None  # shown: the store has sweeps
    assert list(panel.chooser.options) == ["lr", "other"]
    text = panel.view.value
    assert "1 queued · 5 running" in text
    for key in {t.group for t in SweepStore(store).trials("lr")}:
        assert f'data-group="{key}"' in text
    assert "ppo.learning-rate=1e-4" in text and "ppo.learning-rate=3e-4" in text
    # trial 2 has 300 of its 1,000 env steps: 30%, its bar 30% wide; the queued one none
    assert re.search(
        r'data-run="lr-002" data-state="running">.*?300 steps.*?30%.*?width:30\.0%', text
    )
    assert re.search(r'data-run="lr-005" data-state="queued">.*?–.*?width:0\.0%', text)
    assert 'href="?run=lr-000"' in text  # on the phone, a trial opens its run's page
    # a finished and a failed trial, with its error
    sweeps = SweepStore(store)
    trials = sweeps.trials("lr")
    sweeps.update_trial(trials[0], state="finished")
    sweeps.update_trial(trials[1], state="failed", error="Traceback...\nValueError: <bad>")
    browser.refresh()
    text = panel.view.value
    assert re.search(r'data-run="lr-000" data-state="finished">.*?100%', text)
    assert "ValueError: &lt;bad&gt;" in text and "1 finished" in text
    # another sweep chosen on the page
    panel.chooser.value = "other"
    assert panel.selected[0] == "other" and "all seeds" in panel.view.value
    browser.close()


def test_no_sweep_no_panel(tmp_path):
    store = RunStore(tmp_path)
    store.create_run("solo", config={"learner": "ppo"}, device="cpu")
    browser = RunsBrowser(store)
    assert browser.sweep_panel.box.layout.display == "none"
    assert browser.group_row.layout.display == "none"
    browser.close()


def test_stop_acts_on_the_sweep_chosen_in_the_kernel_never_a_buttons_text(store):
    browser = RunsBrowser(store)
    panel = browser.sweep_panel
    sweeps = SweepStore(store)
    stale = panel.state  # read while "lr" was shown
    from_the_page(panel.chooser, index=1)
    assert panel.selected[0] == "other" and "all seeds" in panel.view.value
    with browser._lock:  # a refresh that read before the choice never undoes it
        panel.render(stale)
    assert panel.chooser.value == "other" and panel.selected[0] == "other"
    assert panel.stop_button.disabled  # until the chosen sweep's own overview is read
    from_the_page(panel.chooser, index=0)  # what a person picks on the page
    assert panel.selected[0] == "lr"
    # a page that rewrites the button's text and tooltip to name another sweep
    panel.stop_button.tooltip = panel.stop_button.description = "other"
    assert not panel.stop_button.disabled
    panel.stop_button.click()
    assert sweeps.get_sweep("lr").status == "stopped"  # driverless: stopped at once
    assert sweeps.get_sweep("other").status == "running"
    assert {t.state for t in sweeps.trials("lr")} == {"queued"}  # to resume
    assert "sweep lr stopped" in panel.message.value
    assert panel.stop_button.disabled and not panel.resume_button.disabled
    assert 'data-status="stopped"' in panel.view.value
    browser.close()


def test_resume_starts_a_driver_for_the_chosen_sweep_once(store, monkeypatch):
    started = []

    def resume_in_background(runs_dir, name):
        started.append((runs_dir, name))
        return SimpleNamespace(pid=4242, poll=lambda: None)  # a driver still starting

    monkeypatch.setattr(sweep_panel, "resume_in_background", resume_in_background)
    browser = RunsBrowser(store)
    panel = browser.sweep_panel
    panel.resume()  # lr runs: nothing to resume
    assert started == [] and "nothing to resume" in panel.message.value
    panel.stop()
    panel.resume_button.description = "other"
    panel.resume_button.click()
    assert started == [(store.root, "lr")]
    assert "pid 4242" in panel.message.value
    assert panel.resume_button.disabled  # its driver lives: not twice
    browser.close()


def test_resume_runs_a_real_driver_that_finishes_a_sweep_of_finished_trials(store):
    sweeps = SweepStore(store)
    for trial in sweeps.trials("lr"):
        sweeps.update_trial(trial, state="finished")
    sweeps.set_status("lr", "stopped")
    browser = RunsBrowser(store)
    panel = browser.sweep_panel
    panel.chooser.value = "lr"
    panel.resume_button.click()
    driver = panel.drivers["lr"]
    assert driver.wait(timeout=120) == 0
    assert sweeps.get_sweep("lr").status == "finished"
    browser.refresh()
    assert "lr" not in panel.drivers  # reaped
    assert panel.resume_button.disabled and panel.stop_button.disabled
    browser.close()


# --- an idle page is sent nothing ---------------------------------------------------------


def from_the_page(widget: ipywidgets.Widget, **state) -> None:
    data = {"method": "update", "state": state, "buffer_paths": []}
    widget._handle_msg({"content": {"data": data}, "buffers": []})


def test_an_idle_sweep_and_its_groups_send_the_page_nothing(store, monkeypatch):
    browser = RunsBrowser(store, link="?run={name}")
    browser.seeds.value = True
    browser.compare.value = ("solo",)
    from_the_page(browser.refresher.presence, beat=1.0, width=390)  # a phone
    browser.refresh()
    sent = []
    original = ipywidgets.Widget._send

    def send(self, msg, buffers=None):
        sent.append((type(self).__name__, msg.get("method"), tuple(msg.get("state", ()))))
        return original(self, msg, buffers)

    monkeypatch.setattr(ipywidgets.Widget, "_send", send)
    for _ in range(10):
        browser.refresh()
    assert sent == []
    # the counter counts: a trial that finishes is sent
    sweeps = SweepStore(store)
    sweeps.update_trial(sweeps.trials("lr")[0], state="finished")
    browser.refresh()
    assert any(name == "HTML" for name, _, _ in sent), sent
    sent.clear()
    browser.refresh()
    assert sent == []
    browser.close()
