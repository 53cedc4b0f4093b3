"""The dashboard and the replay viewer: series helpers, the data path from a source to the
widgets, controls, a real trainer in this process, a run written by another process."""

import base64
import html
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from g2048lab.checkpoint import Checkpointer, CheckpointManager
from g2048lab.dashboard import Budget, Dashboard, ReplayViewer, Snapshot, StoreSource
from g2048lab.dashboard.board import action_bars_html, board_html
from g2048lab.dashboard.downloads import metrics_csv
from g2048lab.dashboard.header import format_duration
from g2048lab.dashboard.series import Series, downsample, ema, game_positions, moving_average
from g2048lab.learners.ppo.algorithm import PPOConfig
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.messages import TrainingUpdate
from g2048lab.recording import GameRecord
from g2048lab.store import RunStore, StoreError
from g2048lab.trainer import Trainer, TrainerConfig

from .factories import training_update
from .helpers import metric_trace, wait_for

REPO = Path(__file__).resolve().parents[1]
LOSS_KEYS = ("train/loss", "train/policy_loss", "train/value_loss", "train/entropy")


# --- pure helpers --------------------------------------------------------------------------


def test_ema_is_tensorboards_debiased_smoothing():
    assert ema([1, 2, 3], 0.5) == pytest.approx([1, 5 / 3, 17 / 7])
    assert ema([1, 2, 3], 0.0) == [1, 2, 3]
    assert ema([4, 4, 4], 0.9) == [4, 4, 4]  # a constant stays put
    assert ema([None, 2, float("nan"), 4], 0.5)[:2] == [None, 2]  # gaps pass and do not count
    assert ema([None, 2, float("nan"), 4], 0.5)[3] == pytest.approx((0.5 * 2 * 0.5 + 2) / 0.75)
    with pytest.raises(ValueError):
        ema([1, 2], 1.0)


def test_moving_average_downsample_and_game_positions():
    assert moving_average([1, 2, 3, 4], 2) == [1, 1.5, 2.5, 3.5]
    assert moving_average([None, 2, None, 4], 3) == [None, 2, 2, 3]
    assert downsample(range(10), range(10), 6) == ([1, 3.5, 5.5, 7, 8, 9], [1, 3.5, 5.5, 7, 8, 9])
    assert downsample([0, 1, 2, 3, 4], [5, 1, 2, 3, 4], 4, "max") == ([0.5, 2, 3, 4], [5, 2, 3, 4])
    assert downsample([1, 2], [3, 4], 6) == ([1, 2], [3, 4])
    assert game_positions(None, 10, 3) == [8, 9, 10]
    assert game_positions(10, 13, 3) == [11, 12, 13]
    assert game_positions(0, 8, 2) == [4, 8]  # an even sample of 8 games
    assert game_positions(5, 5, 0) == []


def test_a_series_stays_bounded_and_keeps_the_present_sharp():
    series = Series(capacity=100)
    for i in range(50):
        series.extend(list(range(100 * i, 100 * i + 100)), [float(j) for j in range(100)])
    assert 50 <= len(series) <= 100
    assert series.x[-30:] == list(range(4970, 5000))  # the newest points are untouched
    assert series.x == sorted(series.x) and series.version == 50


def test_small_formatters():
    assert format_duration(3723) == "1:02:03"
    assert format_duration(None) == "–"
    assert metrics_csv([{"iteration": 1, "a": 0.5}, {"iteration": 2, "b": 1}]) == (
        "iteration,a,b\r\n1,0.5,\r\n2,,1\r\n"
    )
    board = board_html([[0, 2, 4, 8]] * 3 + [[16, 2048, 4096, 131072]])
    assert tiles(board) == [0, 2, 4, 8] * 3 + [16, 2048, 4096, 131072]
    assert "background:#3c3a32" in board  # beyond 2048
    assert bars(action_bars_html([0.1, 0.2, 0.3, 0.4])) == [0.1, 0.2, 0.3, 0.4]


def test_only_the_dashboard_imports_ipywidgets_and_plotly():
    package = REPO / "g2048lab"
    pattern = re.compile(r"^\s*(import|from)\s+(ipywidgets|plotly|anywidget)\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(REPO))
        for path in package.rglob("*.py")
        if "dashboard" not in path.relative_to(package).parts and pattern.search(path.read_text())
    ]
    assert offenders == []
    dashboard = "\n".join(p.read_text() for p in (package / "dashboard").glob("*.py"))
    assert pattern.search(dashboard)
    assert ".show()" not in dashboard and "Output(" not in dashboard  # Voila-safe: see STACK


# --- a fake source -------------------------------------------------------------------------


def make_update(i: int, status: str = "running", games: int = 3, heads: int = 4) -> TrainingUpdate:
    rng = np.random.default_rng(i)
    layers = rng.random((2, heads, 16, 16)).round(4)
    return training_update(
        run_id="fake",
        iteration=i,
        episode=games * i,
        env_steps=512 * i,
        score=1000.0 + i,
        actions=[0.1, 0.2, 0.6, 0.1],
        board_state=[[2, 4, 8, 16], [0, 0, 2, 1024], [0, 0, 0, 2], [0, 0, 0, 0]],
        attention_weights=layers[-1].tolist(),
        expert_usage=[[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]],
        model_params=0.25,
        timestamp=1000.0 + i,
        status=status,
        value=12.5,
        elapsed_s=60.0 + i,
        finished_games=[[100 * i + g, 2 ** (5 + g)] for g in range(games)],
        attention_layers=layers.tolist(),
    )


def make_row(i: int) -> dict:
    return {
        "iteration": i,
        "env_steps": 512 * i,
        "train/loss": 1.0 / i,
        "train/policy_loss": 0.1,
        "train/value_loss": 2.0 / i,
        "train/entropy": 1.38 - i / 1e4,
        "train/aux_loss": 0.01,
        "train/learning_rate": 3e-4,
        "time/steps_per_s": 2000.0 + i,
        "memory/gpu_gb": None,
        "memory/rss_gb": 1.25,
    }


class FakeSource:
    """The Source API over queued snapshots; controls change the status as a trainer would."""

    name, device, params_m, game = "fake", "cpu", 0.25, "2048-4x4"
    budget = Budget(total_env_steps=512 * 100, max_seconds=None)
    allowed = {
        "start": ("idle",),
        "pause": ("running",),
        "resume": ("paused",),
        "stop": ("running", "paused"),
        "checkpoint": ("running", "paused"),
    }

    def __init__(self, status="running", error=None):
        self.status, self.error = status, error
        self.queued: list[Snapshot] = []
        self.calls: list[str] = []
        self.closed = False

    def feed(self, updates=(), rows=()):
        final = self.status in ("finished", "failed")
        self.queued.append(Snapshot(list(updates), list(rows), self.status, self.error, final))

    def poll(self) -> Snapshot:
        if self.queued:
            return self.queued.pop(0)
        return Snapshot([], [], self.status, self.error, self.status in ("finished", "failed"))

    def can(self, action):
        return self.status in self.allowed[action]

    def control(self, action):
        self.calls.append(action)
        self.status = {
            "start": "running",
            "pause": "paused",
            "resume": "running",
            "stop": "finished",
        }.get(action, self.status)
        return f"{action} requested"

    def all_metrics(self):
        return [make_row(i) for i in range(1, 4)]

    def close(self):
        self.closed = True


def bars(dashboard_or_html) -> list[float]:
    text = dashboard_or_html if isinstance(dashboard_or_html, str) else dashboard_or_html.value
    return [float(p) for p in re.findall(r'data-p="([0-9.]+)"', text)]


def tiles(text: str) -> list[int]:
    return [int(v) for v in re.findall(r'data-value="(\d+)"', text)]


def test_points_from_the_source_reach_the_figures_and_the_game():
    source = FakeSource()
    source.feed([make_update(i) for i in (1, 2, 3)], [make_row(i) for i in (1, 2, 3)])
    dashboard = Dashboard(source, smoothing=0.0)
    games = dashboard.scores_panel.chart.traces
    assert list(games["score"].x) == list(range(1, 10))
    assert list(games["score"].y) == [100, 101, 102, 200, 201, 202, 300, 301, 302]
    assert games["moving average"].y[:3] == (100, 100.5, 101)
    assert list(games["max tile"].y) == [32, 64, 128] * 3
    assert games["smoothed"].visible is False
    assert list(metric_trace(dashboard, "train/loss").x) == [512, 1024, 1536]
    assert list(metric_trace(dashboard, "train/loss").y) == [1.0, 0.5, 1 / 3]
    assert list(metric_trace(dashboard, "memory/rss_gb").y) == [1.25] * 3
    titles = [a.text for a in dashboard.metrics_panel.grid.figure.layout.annotations]
    assert {"train/loss", "memory/rss_gb"} <= set(titles)
    # the live game shows the newest message
    update = make_update(3)
    assert tiles(dashboard.game_panel.game.board.value) == [
        v for row in update.board_state for v in row
    ]
    assert bars(dashboard.game_panel.game.bars) == update.actions
    assert (
        'data-action="DOWN" data-p="0.6000" style="display:flex;align-items:center;gap:6px;'
        "font-weight:700" in dashboard.game_panel.game.bars.value
    )
    assert "value estimate 12.50" in dashboard.game_panel.game.caption.value
    # header
    header = dashboard.header.value
    for text in (
        "fake",
        'data-status="running"',
        "cpu",
        "0.25 M parameters",
        "1,536 env steps",
        "2,000 steps/s",
        "elapsed 0:01:03",
        "remaining 0:00:24",
    ):
        assert text in header
    # smoothing applies the EMA to losses and adds the smoothed score; log toggles the axes
    dashboard.smoothing.value = 0.5
    assert list(metric_trace(dashboard, "train/loss").y) == pytest.approx(
        ema([1.0, 0.5, 1 / 3], 0.5)
    )
    assert games["smoothed"].visible is True and len(games["smoothed"].y) == 9
    dashboard.log_scale.value = True
    assert dashboard.metrics_panel.grid.figure.layout.yaxis.type == "log"
    assert dashboard.scores_panel.chart.figure.layout.yaxis.type == "log"
    # the next messages append; an idle refresh sends nothing new
    source.feed([make_update(4)], [make_row(4)])
    dashboard.refresh()
    assert (
        list(games["score"].x)[-3:] == [10, 11, 12]
        and len(metric_trace(dashboard, "train/loss").y) == 4
    )
    sent = [chart.sent for chart in (dashboard.scores_panel.chart, dashboard.metrics_panel.grid)]
    dashboard.refresh()
    assert [
        chart.sent for chart in (dashboard.scores_panel.chart, dashboard.metrics_panel.grid)
    ] == sent


def test_the_model_panel_shows_the_selected_layer_and_head_and_expert_usage():
    source = FakeSource()
    source.feed([make_update(1), make_update(2)])
    dashboard = Dashboard(source)
    chart = dashboard.model_panel.chart.traces
    layers = np.asarray(make_update(2).attention_layers)
    assert [value for _, value in dashboard.model_panel.layer.options] == [0, 1]
    assert (
        dashboard.model_panel.layer.value == 1 and dashboard.model_panel.head.value == -1
    )  # last layer, mean
    assert np.allclose(chart["attention"].z, layers[1].mean(axis=0))
    dashboard.model_panel.layer.value, dashboard.model_panel.head.value = 0, 2
    assert np.allclose(chart["attention"].z, layers[0, 2])
    assert np.asarray(chart["attention"].z).shape == (16, 16)
    assert list(chart["expert usage"].y) == [0.1, 0.2, 0.3, 0.4, 0.25, 0.25, 0.25, 0.25]
    assert chart["expert usage"].x[:2] == ("L1 E1", "L1 E2")
    over_time = chart["expert usage over time"]
    assert list(over_time.x) == [512, 1024] and np.asarray(over_time.z).shape == (8, 2)
    # a message that carries only the last layer: one choice, and the selection survives
    last_only = make_update(3)
    last_only.attention_layers = None
    source.feed([last_only])
    dashboard.refresh()
    assert [label for label, _ in dashboard.model_panel.layer.options] == ["last layer"]
    assert dashboard.model_panel.head.value == 2
    assert np.allclose(chart["attention"].z, np.asarray(last_only.attention_weights)[2])


def test_downsampling_bounds_every_trace_in_a_long_run():
    source = FakeSource()
    for i in range(1, 51):  # 5,000 games and 5,000 metric rows
        rows = [make_row(100 * (i - 1) + j) for j in range(1, 101)]
        source.feed([make_update(i, games=100)], rows)
    dashboard = Dashboard(source, max_points=200)
    for _ in range(50):
        dashboard.refresh()
    for chart in (dashboard.scores_panel.chart, dashboard.metrics_panel.grid):
        for trace in chart.figure.data:
            assert trace.x is None or len(trace.x) <= 200, trace.name
    assert len(metric_trace(dashboard, "train/loss").x) == 200
    assert metric_trace(dashboard, "train/loss").x[-1] == 512 * 5000  # the newest is exact
    assert dashboard.scores_panel.chart.traces["score"].x[-1] == 5000
    history = dashboard.history
    assert len(history.scores) <= 2000 and len(history.metrics["train/loss"]) <= 2000


def test_a_phone_sized_page_gets_fewer_points():
    source = FakeSource()
    for i in range(1, 11):  # 1,000 metric rows
        source.feed([make_update(i)], [make_row(100 * (i - 1) + j) for j in range(1, 101)])
    dashboard = Dashboard(source, max_points=400, phone_points=100)
    for _ in range(10):
        dashboard.refresh()
    loss = lambda: metric_trace(dashboard, "train/loss").x  # noqa: E731
    assert len(loss()) == 400
    dashboard.presence.width = 390  # what the page's widget reports on a phone
    assert len(loss()) == 100 and loss()[-1] == 512 * 1000  # the newest point stays exact
    assert all(t.x is None or len(t.x) <= 100 for t in dashboard.scores_panel.chart.figure.data)
    dashboard.presence.width = 1280
    assert len(loss()) == 400
    wide = Dashboard(source, max_points=400, phone_points=None)
    wide.presence.width = 390
    assert wide.max_points == 400


def test_buttons_call_the_source_and_follow_its_status():
    source = FakeSource(status="idle")
    dashboard = Dashboard(source)
    enabled = lambda: {a for a, b in dashboard.buttons.items() if not b.disabled}  # noqa: E731
    assert enabled() == {"start"}
    dashboard.buttons["start"].click()
    assert enabled() == {"pause", "stop", "checkpoint"}
    dashboard.buttons["pause"].click()
    assert enabled() == {"resume", "stop", "checkpoint"}
    assert "pause requested" in dashboard.notes_html.value
    dashboard.buttons["resume"].click()
    dashboard.buttons["checkpoint"].click()
    dashboard.buttons["stop"].click()
    assert source.calls == ["start", "pause", "resume", "checkpoint", "stop"]
    dashboard.refresh()
    assert enabled() == set() and 'data-status="finished"' in dashboard.header.value
    dashboard.close()
    assert source.closed and not dashboard.refreshing


def test_a_failed_run_shows_its_error_and_no_controls():
    source = FakeSource(status="failed", error="ValueError: loss is <NaN> at iteration 7")
    source.feed([make_update(1, status="failed")])
    dashboard = Dashboard(source)
    assert 'data-status="failed"' in dashboard.header.value
    assert html.escape("ValueError: loss is <NaN> at iteration 7") in dashboard.header.value
    assert all(b.disabled for b in dashboard.buttons.values())
    assert dashboard.ended


def test_the_csv_link_holds_every_metric_row():
    dashboard = Dashboard(FakeSource())
    text = dashboard.prepare_csv()
    assert text.splitlines()[0].startswith("iteration,env_steps,train/loss")
    assert len(text.splitlines()) == 4
    data = re.search(r'href="data:text/csv;base64,([^"]+)"', dashboard.csv_link.value).group(1)
    assert base64.b64decode(data).decode() == text
    assert 'download="fake-metrics.csv"' in dashboard.csv_link.value


def test_display_starts_a_refresher_that_stops_when_the_run_ends():
    source = FakeSource()
    dashboard = Dashboard(source, interval=0.02)
    bundle = dashboard._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == dashboard.root.model_id
    assert bundle["text/plain"] == "g2048lab Dashboard"  # nothing live for nbval to compare
    assert dashboard.refreshing
    source.feed([make_update(1)], [make_row(1)])
    source.status = "finished"
    wait_for(lambda: not dashboard.refreshing, what="the refresher to stop")
    assert dashboard.ended
    assert len(metric_trace(dashboard, "train/loss").x) == 1


def test_a_store_source_backfills_history_and_reports_request_results(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(StoreError, match="no runs"):
        Dashboard.attach(store)
    store.create_run("s", config={"total_env_steps": 512 * 100, "max_seconds": None}, device="cpu")
    for i in (1, 2, 3):  # 10 s apart, so the history keeps each
        update = make_update(i)
        update.timestamp = 1000.0 + 10 * i
        store.put_update("s", update)
        store.add_metrics("s", make_row(i))
    dashboard = Dashboard(store, run="s")
    assert list(dashboard.scores_panel.chart.traces["score"].x) == list(range(1, 10))
    assert len(metric_trace(dashboard, "train/loss").x) == 3
    assert "remaining 0:00:24" in dashboard.header.value  # from the run's config and speed
    assert dashboard.control("pause").startswith("pause requested")
    assert dashboard.buttons["pause"].disabled  # pending
    (request,) = store.pending_requests("s")
    store.acknowledge(request.id, "ignored: the run is paused")
    dashboard.refresh()
    assert "pause: ignored: the run is paused" in dashboard.notes_html.value
    assert not dashboard.buttons["pause"].disabled
    final = make_update(4, status="finished")
    final.timestamp = 1040.0
    store.put_update("s", final)
    dashboard.refresh()
    assert dashboard.ended and list(dashboard.scores_panel.chart.traces["score"].x)[-1] == 12


# --- a real trainer in this process --------------------------------------------------------


def tiny(**changes) -> TrainerConfig:
    ppo = PPOConfig(num_envs=32, rollout_steps=16, minibatch_size=256, epochs=1)
    settings = PPOLearnerConfig(preset="tiny", ppo=ppo)
    return TrainerConfig(device="cpu", threads=1, learner_config=settings, **changes)


def test_a_finished_trainer_shows_its_data():
    trainer = Trainer(tiny(total_env_steps=32 * 16 * 3)).run()
    subscribers = len(trainer.subscribers)
    dashboard = Dashboard(trainer)
    assert dashboard.ended and 'data-status="finished"' in dashboard.header.value
    assert "remaining" not in dashboard.header.value
    loss = metric_trace(dashboard, "train/loss")
    assert list(loss.x) == [row["env_steps"] for row in trainer.metrics] == [512, 1024, 1536]
    last = trainer.updates.latest()
    assert tiles(dashboard.game_panel.game.board.value) == [
        v for row in last.board_state for v in row
    ]
    assert bars(dashboard.game_panel.game.bars) == [round(p, 4) for p in last.actions]
    assert np.asarray(dashboard.model_panel.chart.traces["attention"].z).shape == (16, 16)
    assert all(b.disabled for b in dashboard.buttons.values())
    dashboard.close()
    assert len(trainer.subscribers) == subscribers


def test_buttons_control_a_trainer_in_this_kernel(tmp_path):
    trainer = Trainer(tiny(max_seconds=60))
    trainer.subscribe(Checkpointer(CheckpointManager(tmp_path), every_minutes=None))
    dashboard = Dashboard(trainer, interval=0.1)
    enabled = lambda: {a for a, b in dashboard.buttons.items() if not b.disabled}  # noqa: E731
    try:
        assert enabled() == {"start"}
        dashboard.buttons["start"].click()
        assert dashboard.refreshing
        wait_for(lambda: trainer.state == "running", 10, "running")
        wait_for(lambda: enabled() == {"pause", "stop", "checkpoint"}, 10, "running buttons")
        dashboard.buttons["checkpoint"].click()
        wait_for(lambda: "checkpoint saved" in dashboard.notes_html.value, 30, "checkpoint note")
        assert list(tmp_path.glob("ckpt-*.pt"))
        dashboard.buttons["pause"].click()
        assert trainer.state in ("pausing", "paused")
        wait_for(lambda: trainer.state == "paused", 10, "paused")
        wait_for(lambda: enabled() == {"resume", "stop", "checkpoint"}, 5, "paused buttons")
        dashboard.buttons["resume"].click()
        assert trainer.state == "running"
        dashboard.buttons["stop"].click()
        trainer.join(timeout=30)
        wait_for(lambda: dashboard.ended, 10, "the refresher to see the end")
        assert 'data-status="stopped"' in dashboard.header.value and enabled() == set()
        assert len(metric_trace(dashboard, "train/loss").x) == len(trainer.metrics) >= 1
    finally:
        trainer.stop()
        dashboard.close()


# --- a run trained by another process ------------------------------------------------------

TRAINER = """
import sys
from g2048lab.learners.ppo.algorithm import PPOConfig
from g2048lab.store import RunRecorder, RunStore
from g2048lab.learners.ppo.ppo_config import PPOLearnerConfig
from g2048lab.trainer import Trainer, TrainerConfig

store = RunStore(sys.argv[1])
ppo = PPOConfig(num_envs=32, rollout_steps=32, minibatch_size=512, epochs=1)
config = TrainerConfig(device="cpu", threads=1, record_slots=32, max_seconds=90, run_id="r1",
                       learner_config=PPOLearnerConfig(preset="tiny", ppo=ppo))
trainer = Trainer(config)
store.create_run("r1", config={"max_seconds": 90, "total_env_steps": None}, device="cpu")
trainer.subscribe(RunRecorder(store, "r1"))
trainer.run()
"""


def test_attach_to_a_run_trained_by_another_process_then_replay_its_games(tmp_path):
    store = RunStore(tmp_path / "runs")
    script, log = tmp_path / "train.py", tmp_path / "train.log"
    script.write_text(TRAINER)
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, str(script), str(store.root)],
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: store.list_runs() and store.metrics("r1"), 60, "the first iteration")
        dashboard = Dashboard.attach(store)  # the latest run
        assert dashboard.source.name == "r1" and dashboard.status == "running"
        enabled = lambda: {a for a, b in dashboard.buttons.items() if not b.disabled}  # noqa: E731
        assert enabled() == {"pause", "stop", "checkpoint"}
        assert "remaining" in dashboard.header.value
        wait_for(
            lambda: store.games("r1") and dashboard.scores_panel.chart.traces["score"].x,
            60,
            "a finished game",
            dashboard.refresh,
        )
        dashboard.buttons["pause"].click()
        assert "pause" not in enabled()  # pending until the training process answers
        served = lambda: "pause: done" in dashboard.notes_html.value  # noqa: E731
        wait_for(served, 10, "pause served", dashboard.refresh)
        wait_for(lambda: dashboard.status == "paused", 10, "paused", dashboard.refresh)
        assert enabled() == {"resume", "stop", "checkpoint"}
        dashboard.buttons["stop"].click()
        assert process.wait(timeout=60) == 0, log.read_text()[-2000:]
        dashboard.refresh()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert dashboard.ended and 'data-status="stopped"' in dashboard.header.value
    assert enabled() == set()
    rows = store.metrics("r1")
    assert list(metric_trace(dashboard, "train/loss").x) == [row["env_steps"] for row in rows]
    latest = store.latest_update("r1")
    assert tiles(dashboard.game_panel.game.board.value) == [
        v for row in latest.board_state for v in row
    ]
    assert (
        len(dashboard.scores_panel.chart.traces["score"].x) >= 1
    )  # games from the history messages
    # a second viewer started after the end reads the same
    late = Dashboard(StoreSource(store, "r1"))
    assert list(metric_trace(late, "train/loss").y) == list(metric_trace(dashboard, "train/loss").y)
    # replay a stored game
    viewer = ReplayViewer(store, "r1")
    summaries = store.games("r1")
    assert len(viewer.picker.options) == len(summaries)
    assert viewer.picker.options[0][0].startswith("best")
    game = store.load_game(summaries[0].id)
    assert viewer.slider.max == game.length
    viewer.show(1)
    assert tiles(viewer.view.board.value) == [
        2 ** int(e) if e else 0 for e in game.boards[1].ravel()
    ]
    assert bars(viewer.view.bars) == pytest.approx(game.probs[1].tolist(), abs=1e-4)


# --- the replay viewer ---------------------------------------------------------------------


def hand_game() -> GameRecord:
    boards = np.zeros((4, 4, 4), np.uint8)
    boards[0, 0, :2] = [1, 1]  # 2 2 . .
    boards[1, 0, 0] = 2  # 4 . . .  after LEFT
    boards[1, 3, 3] = 1
    boards[2, 0, 0], boards[2, 3, 0] = 2, 1  # after DOWN... then the final board
    boards[3] = boards[2]
    boards[3, 1, 1] = 3
    return GameRecord(
        boards=boards,
        actions=np.array([3, 2, 0]),
        probs=np.array(
            [[0.1, 0.2, 0.3, 0.4], [0.05, 0.05, 0.8, 0.1], [0.7, 0.1, 0.1, 0.1]], np.float32
        ),
        values=np.array([5.5, 4.25, 1.0], np.float32),
        rewards=np.array([0.05, 0.0, 0.0], np.float32),
        score_gains=np.array([4, 0, 0]),
        score=4,
        max_tile=8,
    )


def test_the_replay_viewer_steps_through_a_game():
    game = hand_game()
    other = hand_game()
    other.score = 2
    viewer = ReplayViewer([game, other], interval_ms=100)
    assert [label for label, _ in viewer.picker.options] == [
        "game 1: 4 (8) · 3 moves",
        "game 2: 2 (8) · 3 moves",
    ]
    assert (viewer.slider.max, viewer.play.max, viewer.play.interval) == (3, 3, 100)
    assert tiles(viewer.view.board.value)[:4] == [2, 2, 0, 0]
    assert bars(viewer.view.bars) == pytest.approx([0.1, 0.2, 0.3, 0.4])
    caption = viewer.view.caption.value
    assert "move 1 of 3: ← LEFT" in caption and "value 5.50" in caption
    assert "reward 0.050" in caption and "score 0 → 4" in caption
    assert (
        'data-action="LEFT" data-p="0.4000" style="display:flex;align-items:center;gap:6px;'
        "font-weight:700" in viewer.view.bars.value
    )
    viewer.slider.value = 1
    assert tiles(viewer.view.board.value)[0] == 4
    assert "move 2 of 3: ↓ DOWN" in viewer.view.caption.value
    assert "score 4 → 4" in viewer.view.caption.value
    assert bars(viewer.view.bars) == pytest.approx([0.05, 0.05, 0.8, 0.1])
    viewer.show(3)
    assert "game over after 3 moves · score 4" in viewer.view.caption.value
    assert tiles(viewer.view.board.value)[5] == 8
    viewer.picker.value = 1  # another game starts at its first move
    assert viewer.slider.value == 0 and viewer.game is other


def test_the_replay_viewer_reads_a_trainers_recorder_and_an_empty_store(tmp_path):
    class Recorder:
        best, recent = [hand_game()], [hand_game(), hand_game()]

    viewer = ReplayViewer(Recorder())
    labels = [label for label, _ in viewer.picker.options]
    assert labels[0].startswith("best: 4") and labels[1].startswith("recent: 4")
    assert len(labels) == 3
    store = RunStore(tmp_path)
    store.create_run("empty", config={}, device="cpu")
    empty = ReplayViewer(store)
    assert empty.picker.options == () and "no recorded games" in empty.view.caption.value


def test_displaying_puts_the_current_data_into_the_figures_synced_state():
    """Voila renders widgets from their synced state once the notebook has run: data sent
    earlier as deltas must be in that state, or a finished run's page shows empty charts."""
    source = FakeSource()
    source.feed([make_update(i) for i in (1, 2, 3)], [make_row(i) for i in (1, 2, 3)])
    dashboard = Dashboard(source)
    figure = dashboard.metrics_panel.grid.figure
    assert not any(len(trace.get("x", ())) for trace in figure._widget_data)  # only deltas so far
    dashboard._repr_mimebundle_()
    dashboard.close()
    synced = [list(trace.get("x", ())) for trace in figure._widget_data]
    assert [512, 1024, 1536] in synced


def test_the_refresher_sends_nothing_while_no_page_shows_the_dashboard():
    source = FakeSource()
    dashboard = Dashboard(source, interval=0.02, idle_after_s=1.0)
    dashboard.start_refreshing()
    assert dashboard.watched  # just displayed: a page gets time to load
    # Passes of the refresher run one after another: once one has found nobody watching,
    # no page reports, so every later pass finds the same.
    wait_for(lambda: dashboard.idle_ticks > 0, what="an idle refresher pass")
    assert not dashboard.watched
    source.feed([make_update(1)], [make_row(1)])
    fed_at = dashboard.idle_ticks
    wait_for(lambda: dashboard.idle_ticks >= fed_at + 3, what="three idle passes with new data")
    assert metric_trace(dashboard, "train/loss") is None  # nothing was pushed
    assert len(source.queued) == 1  # nor even read
    dashboard.presence.beat = 123.0  # what the page's widget does every 5 s
    assert dashboard.watched
    wait_for(lambda: metric_trace(dashboard, "train/loss"), what="a push")
    dashboard.close()
    assert len(metric_trace(dashboard, "train/loss").x) == 1 and not source.queued
    assert Dashboard(FakeSource()).watched  # without idle_after_s it always pushes
