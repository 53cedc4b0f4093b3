"""The runs view: metrics charted by namespace, overlays of runs, the runs list and its
filters, the config diff, and the RunsBrowser's per-run actions on a real store."""

from __future__ import annotations

import html
import re

import pytest

from g2048lab.dashboard import Dashboard, RunsBrowser, Snapshot
from g2048lab.dashboard.history import RunHistory, metric_groups
from g2048lab.dashboard.metric_grid import ALL, ChartView, MetricGrid, grid_keys
from g2048lab.dashboard.runs_table import (
    RunRow,
    config_diff_html,
    filter_rows,
    runs_table_html,
    sort_rows,
)
from g2048lab.store import RunStore

from .factories import training_update


def rows(n: int, **extra) -> list[dict]:
    return [
        {
            "iteration": i,
            "env_steps": 100 * i,
            "episodes": 10 * i,
            "time/elapsed_s": 2.0 * i,
            "train/loss": 1.0 / i,
            "rollout/score_mean": 1000.0 + i,
            **{key: value * i for key, value in extra.items()},
        }
        for i in range(1, n + 1)
    ]


def history(name: str, metric_rows: list[dict]) -> RunHistory:
    run = RunHistory(name)
    run.absorb(Snapshot([], metric_rows, "running"))
    return run


def test_metric_groups_order_namespaces_and_keep_key_order():
    keys = ["time/x", "train/loss", "foo", "train/lr", "rollout/score_mean", "zeta/a"]
    assert metric_groups(keys) == [
        ("rollout", ["rollout/score_mean"]),
        ("train", ["train/loss", "train/lr"]),
        ("other", ["foo"]),
        ("zeta", ["zeta/a"]),
        ("time", ["time/x"]),
    ]


def test_a_learners_new_metric_gets_a_chart_without_dashboard_code():
    run = history("a", rows(3, **{"mylearner/surprise": 0.5}))
    assert "mylearner/surprise" in run.charted()
    assert "iteration" not in run.charted() and "env_steps" not in run.charted()
    grid = MetricGrid()
    grid.draw([run], ChartView(smoothing=0.0))
    titles = [a.text for a in grid.figure.layout.annotations]
    assert "mylearner/surprise" in titles
    assert list(grid.trace("a", "mylearner/surprise").y) == [0.5, 1.0, 1.5]
    # a namespace alone
    grid.draw([run], ChartView(smoothing=0.0), namespace="mylearner")
    assert [a.text for a in grid.figure.layout.annotations] == ["mylearner/surprise"]
    assert len(grid.figure.data) == 1


def test_rebuilding_the_grid_removes_the_axes_it_no_longer_uses():
    run = history("a", rows(2, **{"a/x": 1.0, "b/y": 1.0, "c/z": 1.0}))
    grid = MetricGrid()
    grid.draw([run], ChartView(columns=1))
    axes = {k for k in grid.figure.layout.to_plotly_json() if k.startswith("yaxis")}
    assert len(axes) == len(grid_keys([run])) == 5
    grid.draw([run], ChartView(columns=1), namespace="train")
    axes = {k for k in grid.figure.layout.to_plotly_json() if k.startswith("yaxis")}
    assert axes == {"yaxis"} and len(grid.figure.data) == 1


def test_overlaid_runs_share_charts_one_colour_each_and_switch_x_axis():
    a = history("a", rows(4))
    b = history("b", rows(2, **{"ntuple/td_error": 1.0}))
    grid = MetricGrid()
    grid.draw([a, b], ChartView(smoothing=0.0))
    assert grid_keys([a, b]) == ["rollout/score_mean", "train/loss", "ntuple/td_error"]
    assert grid.trace("a", "train/loss").line.color != grid.trace("b", "train/loss").line.color
    assert grid.trace("a", "ntuple/td_error") is not None  # a chart slot, without data
    assert not grid.trace("a", "ntuple/td_error").x
    assert list(grid.trace("b", "ntuple/td_error").x) == [100, 200]
    legend = [t.name for t in grid.figure.data if t.showlegend]
    assert legend == ["a", "b"]  # each run once in the legend
    # against games and wall time, read off each run's own counters
    grid.draw([a, b], ChartView(smoothing=0.0, x_axis="episodes"))
    assert list(grid.trace("a", "train/loss").x) == [10, 20, 30, 40]
    grid.draw([a, b], ChartView(smoothing=0.0, x_axis="time/elapsed_s"))
    assert list(grid.trace("b", "train/loss").x) == [2.0, 4.0]
    # an idle draw sends nothing
    sent = grid.sent
    grid.draw([a, b], ChartView(smoothing=0.0, x_axis="time/elapsed_s"))
    assert grid.sent == sent


def make_row(name, **changes) -> RunRow:
    fields = dict(
        name=name,
        learner="ppo",
        preset="cpu",
        status="finished",
        env_steps=1000,
        wall_s=60.0,
        best_score=2000,
        recent_score=1500.0,
        best_tile=256,
        tags=(),
        note="",
        created_at=1.7e9,
        updated_at=1.7e9,
    )
    fields.update(changes)
    return RunRow(**fields)


def test_runs_filter_and_sort_with_missing_values_last():
    table = [
        make_row("a", recent_score=None, tags=("lr",)),
        make_row("b", learner="ntuple", recent_score=9000.0, status="running"),
        make_row("c", recent_score=3000.0, tags=("lr", "big"), created_at=1.8e9),
    ]
    assert [r.name for r in sort_rows(table, "score")] == ["b", "c", "a"]
    assert [r.name for r in sort_rows(table, "created")][0] == "c"
    assert [r.name for r in sort_rows(table, "name")] == ["a", "b", "c"]
    assert [r.name for r in filter_rows(table, tag="lr")] == ["a", "c"]
    assert [r.name for r in filter_rows(table, learner="ntuple")] == ["b"]
    assert [r.name for r in filter_rows(table, status="running", tag="lr")] == []


def test_the_runs_table_escapes_links_and_marks_selected_runs():
    table = [make_row("r1", note='<script>alert("x")</script>', tags=("a<b",)), make_row("r2")]
    text = runs_table_html(table, selected=["r2"], link="?run={name}", now=1.7e9 + 90)
    assert '<a class="g2048lab-run-link" href="?run=r1">r1</a>' in text
    assert "<script>alert" not in text and "a&lt;b" in text
    assert re.search(r'<tr data-run="r2" class="g2048lab-selected">', text)
    assert 'data-label="recent mean">1,500<' in text and "2 min ago" in text
    assert "<a " not in runs_table_html(table)  # no links in a notebook
    assert "No runs match" in runs_table_html([])


def test_the_config_diff_table_lists_fields_per_run():
    diff = {"ppo.learning_rate": {"a": 0.001, "b": 0.0003}, "teacher": {"a": None, "b": "t1"}}
    text = config_diff_html(diff, ["a", "b"])
    assert "ppo.learning_rate" in text and "0.0003" in text and "–" in text
    assert config_diff_html({}, ["a", "b"]).count("same config") == 1
    assert config_diff_html(diff, ["a"]) == ""


@pytest.fixture
def store(tmp_path) -> RunStore:
    store = RunStore(tmp_path)
    for name, lr, learner in (
        ("lr-high", 1e-3, "ppo"),
        ("lr-low", 3e-4, "ppo"),
        ("nt", 0, "ntuple"),
    ):
        config = {"learner": learner, "preset": "cpu", "ppo": {"learning_rate": lr}}
        store.create_run(name, config=config, device="cpu")
        for row in rows(5):
            store.add_metrics(name, row)
        store.put_update(name, training_update(run_id=name, status="finished"))
    return store


def test_the_browser_lists_overlays_and_diffs_runs(store):
    browser = RunsBrowser(store)
    assert {r.name for r in browser.rows} == {"lr-high", "lr-low", "nt"}
    assert "3 in" in browser.title.value
    browser.compare.value = ("lr-high", "lr-low")
    grid = browser.metrics_panel.grid
    assert grid.trace("lr-high", "train/loss").x and grid.trace("lr-low", "train/loss").x
    assert "ppo.learning_rate" in browser.diff.value and "0.0003" in browser.diff.value
    assert "learner" not in html.unescape(browser.diff.value)  # both ppo: not a difference
    browser.learner_filter.value = "ntuple"
    assert [r.name for r in browser.shown] == ["nt"]
    browser.close()


def test_the_browser_renames_tags_notes_and_deletes_after_asking(store):
    browser = RunsBrowser(store)
    browser.chosen.value = "lr-low"
    browser.set_tags("lr-low", "sweep, low")
    browser.set_note("lr-low", "the slow one")
    run = store.get_run("lr-low")
    assert run.tags == ("low", "sweep") and run.note == "the slow one"
    browser.tag_filter.value = "sweep"
    assert [r.name for r in browser.shown] == ["lr-low"]
    browser.compare.value = ("lr-high", "lr-low")
    browser.rename("lr-low", "lr-3e-4")
    assert "lr-3e-4" in browser.chosen.options and "lr-low" not in browser.chosen.options
    # the overlay drops the old name and keeps the other run
    assert list(browser.compared) == ["lr-high"] and browser.compare.value == ("lr-high",)
    assert browser.metrics_panel.grid.trace("lr-low", "train/loss") is None
    # delete asks first; only "yes" deletes
    browser.chosen.value = "nt"
    browser.ask_delete()
    assert (
        browser.confirm.layout.display == "flex" and "delete run nt" in browser.confirm_text.value
    )
    browser.confirm_no.click()
    assert browser.confirm.layout.display == "none" and "nt" in browser.chosen.options
    browser.ask_delete()
    browser.confirm_yes.click()
    assert "nt" not in browser.chosen.options and "deleted nt" in browser.message.value
    browser.close()


def test_the_browser_refuses_to_delete_a_run_that_trains(store):
    claim = store.claim("lr-high")  # this process is now its live writer
    store.put_update("lr-high", training_update(run_id="lr-high", status="running"), claim)
    browser = RunsBrowser(store)
    browser.chosen.value = "lr-high"
    assert browser.delete_button.disabled
    browser.delete("lr-high")  # even if asked directly
    assert "lr-high" in browser.chosen.options
    assert "stop it first" in browser.message.value or "train" in browser.message.value
    claim.release()
    browser.close()


def test_opening_a_run_shows_its_dashboard_below_the_list(store):
    browser = RunsBrowser(store)
    dashboard = browser.open("lr-high")
    assert isinstance(dashboard, Dashboard) and browser.detail.children == (dashboard.root,)
    assert "lr-high" in dashboard.header.value
    browser.close()


def test_phone_links_point_at_each_runs_page(store):
    browser = RunsBrowser(store, link="?run={name}")
    assert 'href="?run=lr-high"' in browser.table.value
    browser.chosen.value = "nt"
    assert 'href="?run=nt"' in browser.open_link.value
    browser.close()


def test_the_browser_follows_new_runs_and_namespace_choices(store):
    browser = RunsBrowser(store)
    store.create_run("late", config={"learner": "ppo"}, device="cpu")
    browser.refresh()
    assert "late" in browser.compare.options
    browser.compare.value = ("lr-high", "nt")
    panel = browser.metrics_panel
    assert ALL in panel.namespace.options and "train" in panel.namespace.options
    panel.namespace.value = "rollout"
    assert [a.text for a in panel.grid.figure.layout.annotations] == ["rollout/score_mean"]
    browser.close()


def test_the_dashboard_and_the_replay_viewer_offer_a_game_as_one_page(store):
    import base64

    from g2048lab.dashboard import ReplayViewer

    from .test_export import random_game

    dashboard = Dashboard.attach(store, "nt")
    assert dashboard.prepare_game() == "no recorded game yet"
    for seed in (1, 2):
        store.add_game("nt", random_game(seed))
    best = max(store.games("nt"), key=lambda game: game.score)
    link = dashboard.prepare_game()
    assert 'download="nt-game-' in link and "data:text/html;base64," in link
    page = base64.b64decode(re.search(r"base64,([^\"]+)", link).group(1)).decode()
    assert f"score {best.score:,}" in page and "<script" in page
    viewer = ReplayViewer(store, "nt")
    viewer.save.click()
    assert "data:text/html;base64," in viewer.save_link.value
    viewer.slider.value = 1  # another position of the same game keeps the link
    assert viewer.save_link.value
    dashboard.close()
