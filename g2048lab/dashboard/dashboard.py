"""The live dashboard of one training run.

Threads (as measured in JupyterLab and Voila, see the project's STACK notes): every widget
is created here, in ``__init__``, on the main thread, and displayed from it. The trainer
only fills a queue (or writes the run store). One refresher thread calls ``refresh()``
about once a second: it polls the source and sets widget values, figures inside
``batch_update()``; nothing is printed and no output area is used from it. Button and
slider callbacks may run on another thread while a cell blocks (ipykernel 7), so
``refresh()`` and every callback hold one lock.
"""

from __future__ import annotations

import html
import threading
import time
from collections import deque
from pathlib import Path

import anywidget
import ipywidgets as widgets
import numpy as np
import traitlets

from ..messages import TrainingUpdate
from ..runs import RunStore
from .board import GameView
from .charts import (
    LEARNING_RATES,
    LOSSES,
    LiveFigure,
    games_figure,
    model_figure,
    training_figure,
)
from .export import download_link, metrics_csv
from .header import header_html
from .layout import PHONE_WIDTH, ROOT_CLASS, button, panel, panels, style_widget, toolbar
from .series import Series, downsample, ema, game_positions, moving_average
from .sources import ACTIONS, LIVE, SILENT_AFTER_S, Snapshot, Source, StoreSource, TrainerSource

__all__ = ["Dashboard"]

_LABELS = {
    "start": "▶ start",
    "pause": "❙❙ pause",
    "resume": "▶ resume",
    "stop": "■ stop",
    "checkpoint": "save checkpoint",
}
_TOOLTIPS = {
    "start": "start training (a Trainer in this kernel that has not run yet)",
    "pause": "pause after the current step",
    "resume": "continue a paused run",
    "stop": "end the run cleanly",
    "checkpoint": "save a checkpoint at the end of the current iteration",
}
_LAYER_COLOURS = ("#f59563", "#8f7a66", "#edc22e", "#f65e3b", "#776e65", "#edcc61")


class Presence(anywidget.AnyWidget):
    """An invisible widget whose view bumps ``beat`` every 5 s while a page shows it, and
    reports the page's width in CSS px (sent only when it changes)."""

    _esm = """
    function render({ model, el }) {
      const beat = () => {
        model.set("beat", Date.now());
        model.set("width", window.innerWidth);
        model.save_changes();
      };
      beat();
      const timer = setInterval(beat, 5000);
      return () => clearInterval(timer);
    }
    export default { render };
    """
    beat = traitlets.Float(0.0).tag(sync=True)  # ms since the epoch, the page's clock
    width = traitlets.Int(0).tag(sync=True)  # CSS px of the page's window; 0: not known yet


GAMES_PER_S = "ntuple/games_per_s"  # shown under the board when a learner reports it


class Dashboard:
    """Live view and controls of a training run; see the module docstring.

    Args:
        source: a ``Trainer`` in this kernel, a ``RunStore`` (or its folder) to attach to,
            or any ``Source``.
        run: the run's name in the store; None attaches to the run written most recently.
        interval: seconds between refreshes of the refresher thread.
        max_points: the most points a trace gets; older points are merged.
        phone_points: the most points on a page narrower than ``PHONE_WIDTH`` px (reported
            by the page): a phone draws and receives fewer points, the newest half still
            exact. None: ``max_points`` everywhere.
        smoothing: the initial smoothing weight (debiased EMA, as TensorBoard's).
        window: games in the score's moving average.
        refresh_for_s: stop refreshing after this long (None: until the run ends). A Voila
            kernel whose widgets keep changing is never culled, even with its page closed.
        idle_after_s: stop pushing updates while no page has shown the dashboard for this
            long (a small widget in the page reports every 5 s that it is still shown); they
            resume when a page reports again. None: always push (notebooks, benchmarks).
            With it, the kernel of a closed Voila page goes idle and can be culled.
    """

    def __init__(
        self,
        source: object,
        run: str | None = None,
        *,
        interval: float = 1.0,
        max_points: int = 1000,
        phone_points: int | None = 300,
        smoothing: float = 0.6,
        window: int = 100,
        refresh_for_s: float | None = None,
        idle_after_s: float | None = None,
    ):
        self.source: Source = _as_source(source, run)
        self.interval = interval
        self.max_points = self.full_points = max_points
        self.phone_points = phone_points
        self.window = window
        self.refresh_for_s = refresh_for_s
        self.idle_after_s = idle_after_s
        self.presence = Presence()
        self._last_seen = time.monotonic()
        self.idle_ticks = 0  # refresher passes that sent nothing because no page was shown
        self.presence.observe(self._seen, names="beat")
        self.presence.observe(self._resized, names="width")
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # what has been read so far
        self.latest: TrainingUpdate | None = None
        self.status = "idle"
        self.error: str | None = None
        self.silent_s: float | None = None
        self.ended = False  # the run's last data has been applied
        capacity = 10 * max_points
        self.scores = Series(capacity)
        self.tiles = Series(capacity, reduce="max")
        self.metrics: dict[str, Series] = {
            key: Series(capacity)
            for key in (*LOSSES.values(), *LEARNING_RATES, "time/steps_per_s", GAMES_PER_S)
        }
        self.memory: Series = Series(capacity)
        self.memory_key: str | None = None  # memory/gpu_gb on CUDA, else memory/rss_gb
        self.experts: list[Series] = []  # one per (layer, expert): usage over env steps
        self._episode: int | None = None  # games finished at the last message read
        self.notes: deque[str] = deque(maxlen=4)
        self._rendering = False
        self._build(smoothing)
        self.refresh()

    @classmethod
    def attach(cls, store: RunStore | str | Path, run: str | None = None, **options) -> Dashboard:
        """A dashboard on a run in a store (by default the one written most recently)."""
        return cls(StoreSource(store, run), **options)

    # --- widgets (main thread) ----------------------------------------------------------

    def _build(self, smoothing: float) -> None:
        self.header = widgets.HTML()
        self.buttons = {action: button(_LABELS[action], _TOOLTIPS[action]) for action in ACTIONS}
        for action, widget in self.buttons.items():
            widget.on_click(lambda _, action=action: self.control(action))
        self.notes_html = widgets.HTML()
        self.notes_html.add_class("g2048lab-notes")
        controls = toolbar(*self.buttons.values())
        self.smoothing = widgets.FloatSlider(
            value=smoothing,
            min=0.0,
            max=0.99,
            step=0.01,
            description="smoothing",
            style={"description_width": "initial"},
            layout=widgets.Layout(flex="1 1 240px", min_width="0"),
        )
        self.log_scale = widgets.ToggleButton(
            description="log y",
            tooltip="log scale for score, losses and learning rate",
            layout=widgets.Layout(width="auto", min_width="88px", min_height="44px"),
        )
        self.csv_button = button("metrics CSV", "make a link to download every metric row")
        self.csv_link = widgets.HTML()
        self.smoothing.observe(lambda _: self._on_option(), "value")
        self.log_scale.observe(lambda _: self._on_option(), "value")
        self.csv_button.on_click(lambda _: self.prepare_csv())
        options = toolbar(self.smoothing, self.log_scale, self.csv_button, self.csv_link)

        self.game = GameView()
        self.layer = widgets.Dropdown(description="layer", layout=_selector_layout())
        self.head = widgets.Dropdown(description="head", layout=_selector_layout())
        for selector in (self.layer, self.head):
            selector.style.description_width = "initial"
            selector.observe(lambda _: self._on_option(), "value")
        self.games_chart = LiveFigure(games_figure())
        self.training_chart = LiveFigure(training_figure())
        self.model_chart = LiveFigure(model_figure())
        selectors = toolbar(self.layer, self.head)
        self.model_panel = panel("model", selectors, self.model_chart.figure)
        self.root = widgets.VBox(
            [
                style_widget(),
                self.presence,
                self.header,
                controls,
                self.notes_html,
                options,
                panels(
                    panel("live game", self.game),
                    panel("games", self.games_chart.figure),
                    panel("training", self.training_chart.figure),
                    self.model_panel,
                ),
            ],
            layout=widgets.Layout(width="100%"),
        )
        self.root.add_class(ROOT_CLASS)

    def _repr_mimebundle_(self, **kwargs):
        """Display the widgets (``display(dashboard)``, or a cell's last expression) and start
        refreshing them. The text form is constant, so nbval has nothing live to compare."""
        for chart in (self.games_chart, self.training_chart, self.model_chart):
            # A FigureWidget sends later changes as deltas, which a page that connects after
            # they were sent (Voila renders once the notebook has run) never sees; displaying
            # a figure copies its data into its synced state, but nested in our layout it is
            # not displayed itself, so ask it to do the same here.
            chart.figure._repr_mimebundle_()
        self.start_refreshing()
        return {**self.root._repr_mimebundle_(**kwargs), "text/plain": "g2048lab Dashboard"}

    # --- refreshing -----------------------------------------------------------------------

    def start_refreshing(self) -> Dashboard:
        """Start the refresher thread (not the training); displaying the dashboard does it.
        It stops by itself once the run has ended and its last data is shown."""
        with self._lock:
            if self.ended or (self._thread is not None and self._thread.is_alive()):
                return self
            self._stop.clear()
            self._last_seen = time.monotonic()  # displayed: its page gets time to load
            self._thread = threading.Thread(
                target=self._refresh_loop, name="g2048lab-dashboard", daemon=True
            )
            self._thread.start()
        return self

    @property
    def refreshing(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the refresher, unsubscribe from the trainer and close every widget."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._lock:
            self.source.close()
            _close_tree(self.root)

    def _seen(self, change) -> None:
        self._last_seen = time.monotonic()

    def _resized(self, change) -> None:
        """Fewer points per trace on a phone-sized page, all of them again on a wider one."""
        width = change["new"]
        phone = self.phone_points is not None and 0 < width < PHONE_WIDTH
        points = min(self.phone_points, self.full_points) if phone else self.full_points
        with self._lock:
            if points == self.max_points:
                return
            self.max_points = points
            for chart in (self.games_chart, self.training_chart):
                chart.invalidate()
            self._render_charts()

    @property
    def watched(self) -> bool:
        """Whether a page has shown the dashboard lately (always True without idle_after_s)."""
        return self.idle_after_s is None or time.monotonic() - self._last_seen < self.idle_after_s

    def _refresh_loop(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self.interval):
            if not self.watched:
                # nobody looks: send nothing, so the kernel can go idle and be culled
                self.idle_ticks += 1
                continue
            try:
                self.refresh()
            except Exception as error:  # show it, keep trying: a store may be busy a moment
                with self._lock:
                    self._note(f"refresh failed: {type(error).__name__}: {error}")
                    self._render_notes()
            if self.ended:
                return
            if self.refresh_for_s is not None and time.monotonic() - started > self.refresh_for_s:
                with self._lock:
                    self._note("live updates stopped: reload the page (or run the cell) for more")
                    self._render_notes()
                return

    def refresh(self) -> None:
        """Poll the source once and show what changed (cheap when nothing did)."""
        with self._lock:
            snapshot = self.source.poll()
            self._absorb(snapshot)
            self._render()
            self.ended = snapshot.final

    def _absorb(self, snapshot: Snapshot) -> None:
        if snapshot.reset:  # the run was resumed from a checkpoint: its history is re-read
            for series in (self.scores, self.tiles, self.memory, *self.metrics.values()):
                series.clear()
            self.experts, self._episode = [], None
        self.status, self.error, self.silent_s = snapshot.status, snapshot.error, snapshot.silent_s
        for note in snapshot.notes:
            self._note(note)
        for update in snapshot.updates:
            self._absorb_games(update)
            self._absorb_experts(update)
        if snapshot.updates:
            self.latest = snapshot.updates[-1]
        rows = snapshot.metrics
        if not rows:
            return
        for key, series in self.metrics.items():  # a learner's rows hold its own keys
            known = [row for row in rows if row.get(key) is not None]
            series.extend([row.get("env_steps") for row in known], [row[key] for row in known])
        if self.memory_key is None:
            on_gpu = any(row.get("memory/gpu_gb") is not None for row in rows)
            self.memory_key = "memory/gpu_gb" if on_gpu else "memory/rss_gb"
            title = "GPU memory (GB allocated)" if on_gpu else "process memory (GB resident)"
            self.training_chart.figure.layout.annotations[3].text = title
        self.memory.extend(
            [row.get("env_steps") for row in rows], [row.get(self.memory_key) for row in rows]
        )

    def _absorb_games(self, update: TrainingUpdate) -> None:
        games = update.finished_games
        if games:
            x = game_positions(self._episode, update.episode, len(games))
            self.scores.extend(x, [score for score, _ in games])
            self.tiles.extend(x, [tile for _, tile in games])
        self._episode = update.episode

    def _absorb_experts(self, update: TrainingUpdate) -> None:
        usage = [u for layer in update.expert_usage for u in layer]
        if not usage:
            return
        if len(self.experts) != len(usage):  # first message, or another model: start over
            self.experts = [Series(capacity=400) for _ in usage]
        elif self.experts[0].x and self.experts[0].x[-1] == update.env_steps:
            return  # a heartbeat while paused: nothing new
        for series, value in zip(self.experts, usage):
            series.extend([update.env_steps], [value])

    # --- drawing --------------------------------------------------------------------------

    def _render(self) -> None:
        self._rendering = True
        try:
            self._render_header()
            for action, widget in self.buttons.items():
                widget.disabled = not self.source.can(action)
            self._render_notes()
            self._render_game()
            self._render_charts()
            self._render_model()
        finally:
            self._rendering = False

    def _render_header(self) -> None:
        u, source = self.latest, self.source
        rates = self.metrics["time/steps_per_s"]
        last_row_steps = rates.x[-1] if rates.x else None
        env_steps = u.env_steps if u is not None else last_row_steps
        remaining = None
        if u is not None and self.status in (*LIVE, "idle"):
            remaining = source.budget.remaining_s(u.env_steps, u.elapsed_s, u.steps_per_second)
        silent = self.silent_s if self.silent_s and self.silent_s > SILENT_AFTER_S else None
        self.header.value = header_html(
            source.name,
            self.status,
            error=self.error,
            device=source.device,
            params_m=source.params_m if source.params_m is not None else u and u.model_params,
            env_steps=env_steps,
            steps_per_s=u.steps_per_second if u is not None else None,
            elapsed_s=u.elapsed_s if u is not None else None,
            remaining_s=remaining,
            silent_s=silent,
        )

    def _note(self, text: str) -> None:
        self.notes.append(f"{time.strftime('%H:%M:%S')} {text}")

    def _render_notes(self) -> None:
        lines = "".join(f"<div>{html.escape(note)}</div>" for note in reversed(self.notes))
        self.notes_html.value = f'<div class="g2048lab-notes">{lines}</div>'

    def _render_game(self) -> None:
        u = self.latest
        if u is None:
            return
        facts = []
        if u.value is not None:
            facts.append(f"value estimate {u.value:,.2f}")
        if u.score is not None:
            facts.append(f"recent mean score {u.score:,.0f}")
        facts.append(f"best score {u.best_score:,}")
        facts.append(f"max tile {u.max_tile:,}")
        facts.append(f"{u.episode:,} games")
        games_per_s = self.metrics[GAMES_PER_S]  # learners that report it
        if games_per_s.y:
            facts.append(f"{games_per_s.y[-1]:,.0f} games/s")
        if u.move_values is not None:
            arrows = "↑→↓←"  # Action order
            moves = [f"{arrows[a]} {v:,.0f}" for a, v in enumerate(u.move_values) if v is not None]
            facts.append("move values " + " ".join(moves))
        chosen = int(np.argmax(u.actions)) if u.actions else None
        self.game.show(u.board_state, u.actions, chosen, " · ".join(facts))

    def _render_charts(self) -> None:
        weight, n = self.smoothing.value, self.max_points
        axis_type = "log" if self.log_scale.value else "linear"
        games, training = self.games_chart, self.training_chart
        scores, tiles = self.scores, self.tiles
        with games.figure.batch_update():
            games.figure.layout.yaxis.type = axis_type
            games.set("score", scores.version, lambda: _xy(scores.x, scores.y, n))
            games.set(
                "moving average",
                scores.version,
                lambda: _xy(scores.x, moving_average(scores.y, self.window), n),
            )
            if weight > 0:
                games.set(
                    "smoothed",
                    (scores.version, weight),
                    lambda: {"visible": True, **_xy(scores.x, ema(scores.y, weight), n)},
                )
            else:
                games.set("smoothed", "off", lambda: {"visible": False, "x": [], "y": []})
            games.set("max tile", tiles.version, lambda: _xy(tiles.x, tiles.y, n, "max"))
            games.set(
                "best tile",
                tiles.version,
                lambda: _xy(tiles.x, _running_max(tiles.y), n, "max"),
            )
        with training.figure.batch_update():
            training.figure.layout.yaxis.type = axis_type
            training.figure.layout.yaxis2.type = axis_type
            for name, key in (*LOSSES.items(), ("steps/s", "time/steps_per_s")):
                series = self.metrics[key]
                training.set(
                    name,
                    (series.version, weight),
                    lambda s=series: {"visible": bool(s.x), **_xy(s.x, ema(s.y, weight), n)},
                )
            rate = next(
                (self.metrics[k] for k in LEARNING_RATES if self.metrics[k].x),
                self.metrics[LEARNING_RATES[0]],
            )
            memory = self.memory
            training.set("learning rate", rate.version, lambda: _xy(rate.x, rate.y, n))
            training.set("memory", memory.version, lambda: _xy(memory.x, memory.y, n))

    def _render_model(self) -> None:
        u = self.latest
        if u is None:
            return
        # a learner without attention or experts (the n-tuple network) has no model panel,
        # as TensorBoard hides a plugin with no data for the run
        shown = bool(u.attention_weights or u.attention_layers or u.expert_usage)
        self.model_panel.layout.display = None if shown else "none"
        chart = self.model_chart
        with chart.figure.batch_update():
            layers = u.attention_layers or ([u.attention_weights] if u.attention_weights else [])
            if layers:
                self._render_attention(u, layers)
            if not u.expert_usage:
                return
            usage = u.expert_usage
            labels = [f"L{i + 1} E{e + 1}" for i, row in enumerate(usage) for e in range(len(row))]
            colours = [
                _LAYER_COLOURS[i % len(_LAYER_COLOURS)] for i, row in enumerate(usage) for _ in row
            ]
            chart.set(
                "expert usage",
                u.timestamp,
                lambda: {
                    "x": labels,
                    "y": [v for row in usage for v in row],
                    "marker_color": colours,
                },
            )
            if self.experts:
                experts = self.experts
                chart.set(
                    "expert usage over time",
                    (id(experts), experts[0].version),
                    lambda: {"x": experts[0].x, "y": labels, "z": [s.y for s in experts]},
                )

    def _render_attention(self, u: TrainingUpdate, layers: list) -> None:
        if u.attention_layers:
            names = [f"layer {i + 1}" for i in range(len(layers))]
        else:
            names = ["last layer"]
        _set_options(self.layer, list(zip(names, range(len(layers)))), len(layers) - 1)
        heads = [("mean of heads", -1)] + [(f"head {h + 1}", h) for h in range(len(layers[0]))]
        _set_options(self.head, heads, -1)
        layer, head = self.layer.value, self.head.value
        weights = np.asarray(layers[layer], dtype=np.float64)  # (heads, 16, 16)
        z = weights.mean(axis=0) if head == -1 else weights[head]
        self.model_chart.set("attention", (u.timestamp, layer, head), lambda: {"z": z.tolist()})

    # --- callbacks (any thread) -----------------------------------------------------------

    def control(self, action: str) -> str:
        """What a button does: carry out or request ``action`` (one of ACTIONS)."""
        with self._lock:
            result = self.source.control(action)
            self._note(result)
            self._render_notes()
            for name, widget in self.buttons.items():
                widget.disabled = not self.source.can(name)
        if action == "start":
            self.start_refreshing()
        return result

    def prepare_csv(self) -> str:
        """Fill the download link with every metric row; returns the CSV text."""
        rows = self.source.all_metrics()
        text = metrics_csv(rows)
        label = f"⬇ {self.source.name}-metrics.csv ({len(rows):,} rows)"
        with self._lock:
            self.csv_link.value = download_link(text, f"{self.source.name}-metrics.csv", label)
        return text

    def _on_option(self) -> None:
        with self._lock:
            if self._rendering:  # a dropdown whose options the refresh itself just set
                return
            self._render_charts()
            self._render_model()


def _as_source(source: object, run: str | None) -> Source:
    if isinstance(source, (RunStore, str, Path)):
        return StoreSource(source, run)
    if run is not None:
        raise TypeError("run= names a run in a RunStore; pass the store as the source")
    if hasattr(source, "poll") and hasattr(source, "control"):
        return source
    if hasattr(source, "updates") and hasattr(source, "subscribe"):
        return TrainerSource(source)
    raise TypeError(
        f"a Dashboard shows a Trainer, a RunStore or a Source, not {type(source).__name__}"
    )


def _xy(x: list, y: list, max_points: int, reduce: str = "mean") -> dict[str, list]:
    x, y = downsample(x, y, max_points, reduce)
    return {"x": x, "y": y}


def _set_options(dropdown: widgets.Dropdown, options: list[tuple[str, int]], default: int) -> None:
    """Change a dropdown's options only when they differ, keeping its selection if it can."""
    if list(dropdown.options) == options:
        return
    value = dropdown.value
    dropdown.options = options
    dropdown.value = value if value in [v for _, v in options] else default


def _running_max(values: list) -> list:
    return np.maximum.accumulate(values).tolist() if values else []


def _selector_layout() -> widgets.Layout:
    return widgets.Layout(width="auto", min_width="0", flex="1 1 160px")


def _close_tree(widget: widgets.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()
