"""`g2048lab sweep report` and `runs --compare --sweep`: groups of a sweep with intervals,
on stores built from fake metric rows (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from g2048lab import stats
from g2048lab.cli import main
from g2048lab.dashboard.sweep_figures import report_figures
from g2048lab.store import RunStore
from g2048lab.sweeps.report import sweep_report
from g2048lab.sweeps.spec import SweepSpec
from g2048lab.sweeps.sweep_store import SweepStore

LR = "ppo.learning-rate"


def fake_sweep(root: Path, grid: dict, seeds: int, final, *, state=None, result=None, name="s"):
    """Sweep ``name`` of ``grid`` x ``seeds`` in a store at ``root``: each trial a run whose
    rollout/score_mean ends at ``final(trial)`` (its last tenth of env steps; the rows
    before sit 1,000 lower, so reading the wrong rows shows), in state ``state(trial)``
    (default finished), with evaluation ``result(trial)``."""
    runs = RunStore(root)
    sweeps = SweepStore(runs)
    spec = SweepSpec(grid=grid, seeds=seeds)
    sweeps.create_sweep(name, spec, spec.grid_settings())
    for trial in sweeps.trials(name):
        run = runs.create_run(trial.run_name, config={"learner": "ppo"}, device="cpu")
        value = final(trial)
        early = [(100 * i, value - 1000) for i in range(1, 9)]
        points = [*early, (960, value), (1000, value)]  # the last tenth: 900 to 1000 steps
        rows = [
            {"iteration": i, "env_steps": steps, "rollout/score_mean": v, "time/elapsed_s": 1.0}
            for i, (steps, v) in enumerate(points, 1)
        ]
        runs.add_metrics_batch(trial.run_name, rows)
        sweeps.update_trial(
            trial,
            state=state(trial) if state else "finished",
            run_id=run.id,
            result=result(trial) if result else None,
        )
    return runs


def by_rate(values: dict):
    """``final`` giving each learning rate's run its next value from ``values[rate]``."""
    left = {rate: list(v) for rate, v in values.items()}
    return lambda trial: left[trial.setting[LR]].pop(0)


def report_cli(*args) -> int:
    return main(["sweep", "report", *map(str, args)])


def test_groups_in_order_with_their_runs_and_known_answers(tmp_path):
    # a group whose runs all end at 100 against one whose runs all end at 200
    runs = fake_sweep(tmp_path, {LR: ["1e-3", "1e-4"]}, 3, lambda t: 100.0 + 100 * (t.number % 2))
    report = sweep_report(runs, "s")
    assert (report["metric"], report["sweep"], report["confidence"]) == (
        "rollout/score_mean", "s", 0.95,
    )  # fmt: skip
    low, high = report["groups"]
    assert low["group"] == {LR: "1e-3"} and high["group"] == {LR: "1e-4"}  # first trial first
    assert low["runs"] == ["s-000", "s-002", "s-004"] and high["runs"] == [
        "s-001",
        "s-003",
        "s-005",
    ]
    assert (low["n"], low["mean"], low["iqm"], low["median"]) == (3, 100.0, 100.0, 100.0)
    assert high["mean"] == 200.0 and high["ci"] == [200.0, 200.0] == high["median_ci"]
    assert low["states"] == {"finished": 3}
    assert report["pairs"] == [{"a": 0, "b": 1, "p_improvement": 0.0, "ci": [0.0, 0.0]}]
    assert json.loads(json.dumps(report)) == report  # plain JSON
    shape = {"group", "key", "runs", "values", "n", "mean", "iqm", "median", "ci", "mean_ci",
             "iqm_ci", "median_ci", "states"}  # fmt: skip
    assert set(low) == shape


def test_statistics_match_numpy_and_scipy_on_the_same_numbers(tmp_path):
    rng = np.random.default_rng(7)
    a, b8 = rng.normal(1000, 200, 8).round(1), rng.normal(1100, 200, 8).round(1)
    b = b8[:6]  # seeds 6 and 7 are queued
    runs = fake_sweep(
        tmp_path, {LR: ["a", "b"]}, 8, by_rate({"a": a, "b": b8}),
        state=lambda t: "finished" if t.setting[LR] == "a" or t.seed < 6 else "queued",
    )  # fmt: skip
    first, second = sweep_report(runs, "s")["groups"]
    assert first["values"] == pytest.approx(a.tolist(), abs=1e-9)  # the last tenth, not before
    assert first["mean"] == pytest.approx(np.mean(a))
    assert first["iqm"] == pytest.approx(scipy_stats.trim_mean(a, 0.25))
    assert first["median"] == pytest.approx(np.median(a))
    assert first["mean_ci"] == first["ci"] == stats.mean_interval(a).bounds()
    assert first["iqm_ci"] == stats.iqm_interval(a).bounds()
    assert first["median_ci"] == stats.median_interval(a).bounds()
    assert first["ci"][0] < first["mean"] < first["ci"][1]
    assert second["n"] == 6 and second["states"] == {"queued": 2, "finished": 6}
    (pair,) = sweep_report(runs, "s")["pairs"]
    wins = [1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b]
    assert pair["p_improvement"] == pytest.approx(np.mean(wins))
    assert pair["ci"] == stats.improvement_interval(a, b).bounds()


def test_pruned_and_failed_trials_are_listed_not_counted(tmp_path):
    kinds = {0: "pruned", 3: "failed", 4: "running"}  # their runs end far above the rest
    runs = fake_sweep(
        tmp_path,
        {LR: ["1e-3", "1e-4"]},
        3,
        lambda t: 1e6 if t.number in kinds else 50.0 * t.number,
        state=lambda t: kinds.get(t.number, "finished"),
    )
    first, second = sweep_report(runs, "s")["groups"]
    assert first["runs"] == ["s-002"] and first["values"] == [100.0]  # not s-000 nor s-004
    assert first["states"] == {"running": 1, "finished": 1, "pruned": 1}
    assert second["runs"] == ["s-001", "s-005"] and second["mean"] == 150.0
    assert second["states"] == {"finished": 2, "failed": 1}
    # a group of one run: its value, no interval; its pair has P but no interval
    assert first["mean"] == first["iqm"] == first["median"] == 100.0
    assert first["ci"] is first["iqm_ci"] is first["median_ci"] is None
    assert sweep_report(runs, "s")["pairs"] == [
        {"a": 0, "b": 1, "p_improvement": 0.5, "ci": None}  # 100 vs (50, 250)
    ]


def test_eval_metrics_read_each_trials_evaluation(tmp_path):
    runs = fake_sweep(
        tmp_path, {LR: ["1e-3", "1e-4"]}, 2, lambda t: 1.0,
        result=lambda t: {"mean_score": 1000.0 + t.number, "tile_share": {"2048": t.number / 10}},
    )  # fmt: skip
    report = sweep_report(runs, "s", "eval/mean_score")
    assert report["metric"] == "eval/mean_score"
    assert [g["values"] for g in report["groups"]] == [[1000.0, 1002.0], [1001.0, 1003.0]]
    shares = sweep_report(runs, "s", "eval/tile_share/2048")["groups"]
    assert [g["mean"] for g in shares] == [pytest.approx(0.1), pytest.approx(0.2)]


def test_an_unknown_metric_is_one_line_naming_those_the_runs_have(tmp_path, capsys):
    fake_sweep(tmp_path, {LR: ["1e-3", "1e-4"]}, 2, lambda t: 1.0)
    assert report_cli("s", "--runs-dir", tmp_path, "--metric", "rollout/scor_mean") == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("g2048lab sweep: error: no trial of sweep s has the metric")
    assert "its runs have: env_steps, rollout/score_mean, time/elapsed_s" in captured.err
    assert report_cli("s", "--runs-dir", tmp_path, "--metric", "eval/mean_score") == 2
    assert "need a sweep started with --eval-games" in capsys.readouterr().err
    assert report_cli("zz", "--runs-dir", tmp_path) == 2
    assert "no sweep named 'zz'" in capsys.readouterr().err


def test_the_table_fits_80_columns_whole_numbers_and_says_what_it_counts(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "80")
    grid = {LR: ["0.0003", "0.001"], "teacher.weight": ["0.2"], "model.d-model": ["128"]}
    fake_sweep(
        tmp_path, grid, 3, by_rate({"0.0003": [123456.0, 123457.0, 5], "0.001": [99.0, 7.5, 1]}),
        state=lambda t: "failed" if t.number >= 3 else "finished",
    )  # fmt: skip
    assert report_cli("s", "--runs-dir", tmp_path) == 0
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= 80, out
    shown = [
        "123,456",
        "123,457",
        "123,456–123,457",
        "(one run)",
        "teacher.weight",
        "1 failed",
        "2 failed",
        "P(A > B)",
        "- (a group of one run)",
        "only the finished count",
    ]
    for text in shown:  # numbers whole; the settings fold
        assert text in out, text
    assert report_cli("s", "--runs-dir", tmp_path, "--json") == 0
    assert json.loads(capsys.readouterr().out)["groups"][1]["values"] == [99.0]


def test_many_groups_pair_the_best_against_each_in_the_table(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    rates = [str(r) for r in range(7)]
    fake_sweep(tmp_path, {LR: rates}, 2, lambda t: 10.0 * int(t.setting[LR]) + t.seed)
    assert report_cli("s", "--runs-dir", tmp_path) == 0
    out = capsys.readouterr().out
    assert "7 groups: P(A > B) of the best group (highest mean) against each other" in out
    assert out.count("│ 6 │") == 7  # group 6 in the groups table and as A in 6 pairs
    assert report_cli("s", "--runs-dir", tmp_path, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["paired"] == "all" and len(report["pairs"]) == 21  # every pair in JSON


def test_html_is_one_self_contained_page_with_both_plots(tmp_path, capsys):
    fake_sweep(tmp_path, {LR: ["1e-3", "1e-4"], "learner": ["ppo"]}, 2, lambda t: 10.0 * t.number)
    (tmp_path / "out").mkdir()
    page = tmp_path / "out" / "report.html"
    assert report_cli("s", "--runs-dir", tmp_path, "--html", page) == 0
    assert f"wrote {page}" in capsys.readouterr().out
    text = page.read_text()
    assert "plotly.js v" in text and "<script src" not in text  # plotly.js inline
    assert "Settings and final rollout" in text  # the parallel-coordinates plot's title
    assert "Performance profile: share of runs with final rollout" in text
    assert "<table>" in text and "ppo.learning-rate=1e-3, learner=ppo" in text
    assert [p.name for p in page.parent.iterdir()] == ["report.html"]  # no temporary file left
    assert report_cli("s", "--runs-dir", tmp_path, "--html", tmp_path) == 2  # a folder
    err = capsys.readouterr().err
    assert "it is a folder" in err and len(err.strip().splitlines()) == 1


def test_figures_draw_every_finished_run(tmp_path):
    grid = {LR: ["1e-3", "3e-4", "1e-4"], "learner": ["ppo", "ntuple"]}
    runs = fake_sweep(tmp_path, grid, 2, lambda t: float(t.number))
    report = sweep_report(runs, "s")
    lines, profile = report_figures(report, runs, "s")
    (parcoords,) = lines.data
    axes = [d.label for d in parcoords.dimensions]
    assert axes == [LR, "learner", "rollout/score_mean"]
    rate = parcoords.dimensions[0]
    assert list(rate.ticktext) == ["1e-4", "3e-4", "1e-3"]  # numeric order
    per_run = [(g["group"][LR], v) for g in report["groups"] for v in g["values"]]
    assert [rate.ticktext[int(i)] for i in rate.values] == [r for r, _ in per_run]
    assert list(parcoords.dimensions[-1].values) == [v for _, v in per_run]
    assert len(profile.data) == 6
    first = profile.data[0]  # group 0: runs ending at 0 and 6
    share = dict(zip(first.x, first.y))
    assert share[min(first.x)] == 1.0 and share[0.0] == 0.5 and share[6.0] == 0.0


def test_runs_compare_sweep_shows_each_group_with_intervals(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    grid = {LR: ["1e-3", "1e-4", "3e-4"], "teacher.weight": ["0.2"]}
    fake_sweep(
        tmp_path, grid, 3, by_rate({"1e-3": [1000, 1200, 1400], "1e-4": [10, 20, 30],
                                    "3e-4": [7, 8, 9]}),
        state=lambda t: "pruned" if t.number in (2, 5) else "finished",
    )  # fmt: skip
    assert main(["runs", "--runs-dir", str(tmp_path), "--compare", "--sweep", "s", "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    first, second, third = compared["groups"]
    assert first["group"] == {LR: "1e-3", "teacher.weight": "0.2"}
    assert (first["n"], first["runs"], third["n"]) == (3, ["s-000", "s-003", "s-006"], 1)
    score = first["metrics"]["rollout/score_mean"]  # the last row's, as runs --compare
    assert (
        score["mean"] == 1200.0 and score["ci"] == stats.mean_interval([1000, 1200, 1400]).bounds()
    )
    assert third["metrics"]["rollout/score_mean"] == {"mean": 9.0, "ci": None, "n": 1}
    assert first["metrics"]["time/elapsed_s"]["ci"] == [1.0, 1.0]
    assert main(["runs", "--runs-dir", str(tmp_path), "--compare", "--sweep", "s"]) == 0
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= 80, out
    for shown in ("group 0", "group 2", "3 of 3", "1 of 3", "1,200", "1,000–1,400", "1e-4"):
        assert shown in out, shown
    for args, message in [
        (["--compare", "s-000", "--sweep", "s"], "drop the run names"),
        (["--sweep", "s"], "--sweep goes with --compare"),
        (["--compare"], "--compare takes 2 to 8 runs, or --sweep NAME"),
        (["--compare", "--sweep", "zz"], "no sweep named 'zz'"),
    ]:
        assert main(["runs", "--runs-dir", str(tmp_path), *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
