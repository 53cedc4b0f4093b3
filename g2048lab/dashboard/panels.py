"""The dashboard's panels: each builds its widgets, draws from ``RunHistory`` objects (no
widget of its own is read for data) and says whether it has anything to show for them.

As TensorBoard's plugins (``is_active``): a panel without data for the runs shown hides, so
an n-tuple run has no model panel and the runs view shows the live game only when one run is
selected. A panel is built on the main thread (widgets are created there) and drawn by
the refresher thread under the owner's lock:

    panel = MetricsPanel()           # main thread
    panel.draw(runs, view)           # any thread; sends only what changed
    panel.box                        # the titled widget to lay out

Adding a panel is one class here and one line where a view lists its panels. A learner's
own insight needs neither: the learner puts plain data under ``LearnerView.insights[KEY]``,
and an ``InsightPanel`` subclass with that ``key``, registered with ``register`` (in any
file), draws it in every run's dashboard; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as widgets
import numpy as np

from ..games import MOVE_ARROWS
from .board import GameView
from .charts import LiveFigure, games_figure, model_figure, token_labels
from .history import RunHistory, metric_groups
from .layout import panel, toolbar
from .metric_grid import ALL, ChartView, MetricGrid, grid_keys
from .series import downsample, ema, moving_average

__all__ = [
    "GamePanel",
    "InsightPanel",
    "MetricsPanel",
    "ModelPanel",
    "Panel",
    "ScoresPanel",
    "insight_panels",
    "register",
]

GAMES_PER_S = "ntuple/games_per_s"  # shown under the board when a learner reports it
_LAYER_COLOURS = ("#f59563", "#8f7a66", "#edc22e", "#f65e3b", "#776e65", "#edcc61")


class Panel:
    """One titled box of the dashboard; subclasses fill in ``active`` and ``render``."""

    title = ""

    def __init__(self, *children: widgets.Widget):
        self.box = panel(self.title, *children)
        self.shown = True  # as last drawn

    def active(self, runs: Sequence[RunHistory]) -> bool:
        """Whether the panel has something to show for ``runs``."""
        raise NotImplementedError

    def render(self, runs: Sequence[RunHistory], view: ChartView) -> None:
        """Bring the widgets up to date with ``runs`` (only called while active)."""
        raise NotImplementedError

    def draw(self, runs: Sequence[RunHistory], view: ChartView) -> None:
        self.shown = self.active(runs)
        self._show(self.shown)
        if self.shown:
            self.render(runs, view)

    def _show(self, shown: bool) -> None:
        """Show or hide the box. Hidden, it keeps its width (visibility, no height), not
        ``display: none``: a Plotly figure first drawn in a box without width falls back to
        700 px and keeps that width once shown."""
        layout = self.box.layout
        layout.visibility = None if shown else "hidden"
        layout.max_height = None if shown else "0px"
        layout.overflow = None if shown else "hidden"
        layout.padding = "4px" if shown else "0px"

    def figures(self) -> list:
        """The panel's FigureWidgets (the owner syncs them before display)."""
        return []

    def invalidate(self) -> None:
        """Make the next draw send everything again (after the page's size changed)."""


class GamePanel(Panel):
    """The board being played, its move probabilities and the run's facts."""

    title = "live game"

    def __init__(self):
        self.game = GameView()
        super().__init__(self.game)

    def active(self, runs: Sequence[RunHistory]) -> bool:
        return len(runs) == 1 and runs[0].latest is not None

    def render(self, runs: Sequence[RunHistory], view: ChartView) -> None:
        run = runs[0]
        u = run.latest
        facts = []
        if u.value is not None:
            facts.append(f"value estimate {u.value:,.2f}")
        if u.score is not None:
            facts.append(f"recent mean score {u.score:,.0f}")
        facts.append(f"best score {u.best_score:,}")
        facts.append(f"max tile {u.max_tile:,}")
        facts.append(f"{u.episode:,} games")
        games_per_s = run.last(GAMES_PER_S)  # learners that report it
        if games_per_s is not None:
            facts.append(f"{games_per_s:,.0f} games/s")
        if u.move_values is not None:
            moves = [  # in Action order
                f"{MOVE_ARROWS[a]} {v:,.0f}" for a, v in enumerate(u.move_values) if v is not None
            ]
            facts.append("move values " + " ".join(moves))
        chosen = int(np.argmax(u.actions)) if u.actions else None
        self.game.show(u.board_state, u.actions, chosen, " · ".join(facts))


class ScoresPanel(Panel):
    """Score and max tile of every finished game of one run."""

    title = "games"

    def __init__(self, window: int = 100):
        self.window = window
        self.chart = LiveFigure(games_figure())
        super().__init__(self.chart.figure)

    def active(self, runs: Sequence[RunHistory]) -> bool:
        return len(runs) == 1

    def figures(self) -> list:
        return [self.chart.figure]

    def invalidate(self) -> None:
        self.chart.invalidate()

    def render(self, runs: Sequence[RunHistory], view: ChartView) -> None:
        scores, tiles = runs[0].scores, runs[0].tiles
        weight, n, window = view.smoothing, view.max_points, self.window
        games = self.chart
        with games.figure.batch_update():
            games.figure.layout.yaxis.type = "log" if view.log_y else "linear"
            games.set("score", (scores.version, n), lambda: _xy(scores.x, scores.y, n))
            games.set(
                "moving average",
                (scores.version, n),
                lambda: _xy(scores.x, moving_average(scores.y, window), n),
            )
            if weight > 0:
                games.set(
                    "smoothed",
                    (scores.version, weight, n),
                    lambda: {"visible": True, **_xy(scores.x, ema(scores.y, weight), n)},
                )
            else:
                games.set("smoothed", "off", lambda: {"visible": False, "x": [], "y": []})
            games.set("max tile", (tiles.version, n), lambda: _xy(tiles.x, tiles.y, n, "max"))
            games.set(
                "best tile",
                (tiles.version, n),
                lambda: _xy(tiles.x, _running_max(tiles.y), n, "max"),
            )


class MetricsPanel(Panel):
    """Every metric of the runs, one chart per metric, grouped by namespace; a row of
    buttons picks one namespace (or all)."""

    title = "metrics"

    def __init__(self, on_option: Callable[[], None] | None = None):
        self.grid = MetricGrid()
        self.namespace = widgets.ToggleButtons(
            options=[ALL],
            value=ALL,
            tooltips=["every metric"],
            style={"button_width": "auto"},
            layout=widgets.Layout(width="auto"),
        )
        self.namespace.add_class("g2048lab-namespaces")
        if on_option is not None:
            self.namespace.observe(lambda _: on_option(), "value")
        super().__init__(toolbar(self.namespace), self.grid.figure)

    def active(self, runs: Sequence[RunHistory]) -> bool:
        return any(run.charted() for run in runs)

    def figures(self) -> list:
        return [self.grid.figure]

    def invalidate(self) -> None:
        self.grid.invalidate()

    def render(self, runs: Sequence[RunHistory], view: ChartView) -> None:
        groups = [group for group, _ in metric_groups(grid_keys(runs))]
        options = [ALL, *groups]
        if list(self.namespace.options) != options:
            chosen = self.namespace.value
            self.namespace.options = options
            self.namespace.value = chosen if chosen in options else ALL
        self.grid.draw(runs, view, self.namespace.value)


class ModelPanel(Panel):
    """Attention of one head, expert usage now and over time (a transformer's run)."""

    title = "model"

    def __init__(self, on_option: Callable[[], None] | None = None):
        self.layer = widgets.Dropdown(description="layer", layout=_selector_layout())
        self.head = widgets.Dropdown(description="head", layout=_selector_layout())
        for selector in (self.layer, self.head):
            selector.style.description_width = "initial"
            if on_option is not None:
                selector.observe(lambda _: on_option(), "value")
        self.chart = LiveFigure(model_figure())
        super().__init__(toolbar(self.layer, self.head), self.chart.figure)

    def active(self, runs: Sequence[RunHistory]) -> bool:
        # a learner without attention or experts (the n-tuple network) has no model panel
        u = runs[0].latest if len(runs) == 1 else None
        return u is not None and bool(u.attention_weights or u.attention_layers or u.expert_usage)

    def figures(self) -> list:
        return [self.chart.figure]

    def render(self, runs: Sequence[RunHistory], view: ChartView) -> None:
        run = runs[0]
        u, chart = run.latest, self.chart
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
            experts = run.experts
            if experts:
                chart.set(
                    "expert usage over time",
                    (id(experts), experts[0].version),
                    lambda: {"x": experts[0].x, "y": labels, "z": [s.y for s in experts]},
                )

    def _render_attention(self, u, layers: list) -> None:
        if u.attention_layers:
            names = [f"layer {i + 1}" for i in range(len(layers))]
        else:
            names = ["last layer"]
        _set_options(self.layer, list(zip(names, range(len(layers)))), len(layers) - 1)
        heads = [("mean of heads", -1)] + [(f"head {h + 1}", h) for h in range(len(layers[0]))]
        _set_options(self.head, heads, -1)
        layer, head = self.layer.value, self.head.value
        weights = np.asarray(layers[layer], dtype=np.float64)  # (heads, cells, cells)
        z = weights.mean(axis=0) if head == -1 else weights[head]
        labels = _cell_labels(u.board_state, len(z))
        self.chart.set(
            "attention",
            (u.timestamp, layer, head),
            lambda: {"z": z.tolist(), "x": labels, "y": labels},
        )


def _cell_labels(board: list[list[int]], tokens: int) -> list[str]:
    """Names of the attention's ``tokens`` tokens: the cells of the (R, C) ``board`` shown
    with it ("r1c1" ...) when it has that many, else "t1", "t2" ..."""
    rows, cols = len(board), len(board[0]) if board else 0
    if rows * cols == tokens:
        return token_labels(rows, cols)
    return [f"t{i + 1}" for i in range(tokens)]


def _xy(x: list, y: list, max_points: int, reduce: str = "mean") -> dict[str, list]:
    x, y = downsample(x, y, max_points, reduce)
    return {"x": x, "y": y}


def _running_max(values: list) -> list:
    return np.maximum.accumulate(values).tolist() if values else []


def _set_options(dropdown: widgets.Dropdown, options: list[tuple[str, int]], default: int) -> None:
    """Change a dropdown's options only when they differ, keeping its selection if it can."""
    if list(dropdown.options) == options:
        return
    value = dropdown.value
    dropdown.options = options
    dropdown.value = value if value in [v for _, v in options] else default


def _selector_layout() -> widgets.Layout:
    return widgets.Layout(width="auto", min_width="0", flex="1 1 160px")


class InsightPanel(Panel):
    """A learner's own insight: the data its view puts under ``insights[key]`` in the
    latest training update, drawn by ``show``. Shown for one run whose learner reports it."""

    key = ""  # the LearnerView.insights key it draws

    def active(self, runs: Sequence[RunHistory]) -> bool:
        return len(runs) == 1 and runs[0].latest is not None and self.key in runs[0].latest.insights

    def render(self, runs: Sequence[RunHistory], view: ChartView) -> None:
        self.show(runs[0].latest.insights[self.key])

    def show(self, data) -> None:
        """Bring the widgets up to date with the insight's data (as the learner sent it)."""
        raise NotImplementedError


_INSIGHT_PANELS: dict[str, type[InsightPanel]] = {}


def register(cls: type[InsightPanel]) -> type[InsightPanel]:
    """Add an ``InsightPanel`` class for its ``key`` to every dashboard built from now on
    (usable as a class decorator; a key registered again is replaced)."""
    if not (isinstance(cls, type) and issubclass(cls, InsightPanel) and cls.key):
        raise TypeError(f"register takes an InsightPanel subclass with a key, got {cls!r}")
    _INSIGHT_PANELS[cls.key] = cls
    return cls


def insight_panels() -> list[InsightPanel]:
    """One of each registered insight panel (build on the main thread: they make widgets)."""
    return [cls() for cls in _INSIGHT_PANELS.values()]
