"""Every metric of one or more runs, one small chart per metric, grouped by namespace.

As TensorBoard's scalars: the charts come from the metric names (``train/loss`` is a chart
in the ``train`` group), so a learner that reports a new metric gets a chart with no
dashboard code. One run's metric is one trace; comparing runs overlays them, one colour per
run, in every chart the runs share.

All the charts live in ONE ``FigureWidget``: each FigureWidget ships plotly.js (about 5 MB)
in its widget state. When the set of charts changes (a new metric, another namespace chosen,
runs added, a narrower page), the figure's grid is rebuilt in place: traces removed, axes no
longer used deleted (``plotly_relayout`` with None), the new layout sent, traces added. No
widget is created, so this may run on the refresher thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .charts import figure_widget, style_figure
from .history import AXES, RunHistory, metric_groups
from .layout import PHONE_WIDTH
from .series import downsample, ema

__all__ = ["ALL", "ChartView", "MetricGrid", "grid_keys", "run_colour", "view_for_width"]

ALL = "all"  # the namespace choice that shows every group
ROW_HEIGHT_PX = 190
RUN_COLOURS = qualitative.Plotly


def run_colour(index: int) -> str:
    return RUN_COLOURS[index % len(RUN_COLOURS)]


@dataclass(frozen=True)
class ChartView:
    """How charts are drawn: the options a person sets, and the page's size."""

    smoothing: float = 0.6  # debiased EMA weight, 0: raw
    log_y: bool = False
    max_points: int = 1000  # per trace; older points merged
    x_axis: str = "env_steps"  # a key of AXES
    columns: int = 2  # charts side by side (1 on a phone)


def view_for_width(
    view: ChartView, width: int, full_points: int, phone_points: int | None
) -> ChartView:
    """``view`` for a page ``width`` CSS px wide (0: not known yet): narrower than
    PHONE_WIDTH, one chart per row and at most ``phone_points`` per trace (None: no limit);
    else two per row and ``full_points``."""
    phone = 0 < width < PHONE_WIDTH
    points = full_points
    if phone and phone_points is not None:
        points = min(phone_points, full_points)
    return replace(view, max_points=points, columns=1 if phone else 2)


def grid_keys(runs: Sequence[RunHistory], namespace: str = ALL) -> list[str]:
    """The metric keys to chart for ``runs``: any run's charted keys, grouped by namespace;
    only ``namespace``'s unless it is ALL."""
    seen: dict[str, None] = {}
    for run in runs:
        seen.update(dict.fromkeys(run.charted()))
    return [key for group, keys in metric_groups(seen) if namespace in (ALL, group) for key in keys]


class MetricGrid:
    """One figure of metric charts; ``draw(runs, view, namespace)`` brings it up to date and
    sends only the traces whose data changed."""

    def __init__(self):
        self.figure = figure_widget()
        style_figure(self.figure, ROW_HEIGHT_PX)
        self.shape: tuple | None = None  # (keys, run names, columns): the grid drawn now
        self.keys: list[str] = []
        self._traces: dict[tuple[str, str], int] = {}  # (run, key) -> trace index
        self._sent: dict[tuple[str, str], object] = {}  # (run, key) -> data key last sent
        self.sent = 0  # trace updates made, for tests and benchmarks
        self.values_sent = 0

    def namespaces(self, runs: Sequence[RunHistory]) -> list[str]:
        return [group for group, _ in metric_groups(grid_keys(runs))]

    def draw(self, runs: Sequence[RunHistory], view: ChartView, namespace: str = ALL) -> None:
        keys = grid_keys(runs, namespace)
        names = tuple(run.name for run in runs)
        shape = (tuple(keys), names, view.columns, view.x_axis)
        if shape != self.shape:
            self._rebuild(keys, runs, view)
            self.shape = shape
        figure = self.figure
        with figure.batch_update():
            for axis in range(1, len(keys) + 1):
                name = "yaxis" if axis == 1 else f"yaxis{axis}"
                figure.layout[name].type = "log" if view.log_y else "linear"
            for run in runs:
                for key in keys:
                    series = run.metrics.get(key)
                    if series is None or not series.x:
                        continue
                    version = (series.version, view.smoothing, view.max_points, view.x_axis)
                    self._set(run, key, version, lambda s=series, r=run: _points(s, r, view))

    def trace(self, run: str, key: str) -> go.Scatter | None:
        """The trace of ``run``'s metric ``key``, if charted now."""
        index = self._traces.get((run, key))
        return None if index is None else self.figure.data[index]

    def invalidate(self) -> None:
        """Make the next ``draw`` send every trace."""
        self._sent.clear()

    def _set(self, run: RunHistory, key: str, version: object, points: Callable) -> None:
        if self._sent.get((run.name, key)) == version:
            return
        x, y = points()
        self.figure.data[self._traces[(run.name, key)]].update(x=x, y=y)
        self._sent[(run.name, key)] = version
        self.sent += 1
        self.values_sent += len(x) + len(y)

    def _rebuild(self, keys: list[str], runs: Sequence[RunHistory], view: ChartView) -> None:
        figure = self.figure
        columns = max(1, min(view.columns, len(keys)))
        rows = max(1, -(-len(keys) // columns))
        height = rows * ROW_HEIGHT_PX + 60
        spec = make_subplots(
            rows=rows,
            cols=columns,
            subplot_titles=keys or None,
            vertical_spacing=min(0.12, 70 / height) if rows > 1 else 0.0,
            horizontal_spacing=0.1,
        )
        style_figure(spec, height)
        if len(runs) > 1:  # the runs' colours, above the first row of charts' titles
            spec.update_layout(
                showlegend=True,
                legend={"yref": "container", "y": 1.0, "yanchor": "top"},
                margin={"t": 72},
                height=height + 36,
            )
        else:
            spec.update_layout(showlegend=False)
        for index in range(len(keys)):
            spec.update_xaxes(
                title_text=AXES[view.x_axis] if index >= len(keys) - columns else None,
                row=index // columns + 1,
                col=index % columns + 1,
            )
        traces, registry, shown = [], {}, set()
        for number, run in enumerate(runs):
            for index, key in enumerate(keys):
                axis = "" if index == 0 else str(index + 1)
                registry[(run.name, key)] = len(traces)
                traces.append(
                    go.Scatter(
                        name=run.name,
                        legendgroup=run.name,
                        showlegend=run.name not in shown,
                        mode="lines",
                        line={"color": run_colour(number), "width": 1.5},
                        xaxis=f"x{axis}",
                        yaxis=f"y{axis}",
                        hovertemplate=f"{run.name}<br>{key}: %{{y:.4g}}<extra></extra>",
                    )
                )
                shown.add(run.name)
        old_axes = _axis_names(figure.layout)
        with figure.batch_update():
            figure.data = []
        unused = {name: None for name in old_axes - _axis_names(spec.layout)}
        if unused:
            figure.plotly_relayout(unused)
        with figure.batch_update():
            figure.layout = spec.layout
        figure.add_traces(traces)
        self.keys, self._traces = keys, registry
        self._sent.clear()


def _points(series, run: RunHistory, view: ChartView) -> tuple[list, list]:
    y = ema(series.y, view.smoothing) if view.smoothing > 0 else series.y
    x, y = downsample(series.x, y, view.max_points)
    return run.x_values(x, view.x_axis), y


def _axis_names(layout: go.Layout) -> set[str]:
    return {key for key in layout.to_plotly_json() if key.startswith(("xaxis", "yaxis"))}
