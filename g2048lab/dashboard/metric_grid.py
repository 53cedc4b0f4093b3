"""Every metric of one or more runs, one small chart per metric, grouped by namespace.

As TensorBoard's scalars: the charts come from the metric names (``train/loss`` is a chart
in the ``train`` group), so a learner that reports a new metric gets a chart with no
dashboard code. One run's metric is one trace; comparing runs overlays them, one colour per
run, in every chart the runs share. A ``RunGroup`` (a sweep's setting over seeds) drawn among
them is, per chart, its mean curve and its 95% band in one colour (and, on demand, each seed
as a thin line): see ``groups.py``.

All the charts live in ONE ``FigureWidget``: each FigureWidget ships plotly.js (about 5 MB)
in its widget state. When the set of charts changes (a new metric, another namespace chosen,
runs added, a narrower page), the figure's grid is rebuilt in place: traces removed, axes no
longer used deleted (``plotly_relayout`` with None), the new layout sent, traces added. No
widget is created, so this may run on the refresher thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .charts import figure_widget, style_figure
from .groups import GroupCurve, RunGroup, band_outline
from .history import AXES, RunHistory, metric_groups
from .layout import PHONE_WIDTH
from .series import downsample, ema

__all__ = ["ALL", "ChartView", "MetricGrid", "grid_keys", "run_colour", "view_for_width"]

ALL = "all"  # the namespace choice that shows every group
ROW_HEIGHT_PX = 190
RUN_COLOURS = qualitative.Plotly


MODEBAR_PX = 28  # Plotly's tool bar, top right
LEGEND_LINE_PX = 24
LEGEND_PER_LINE = 3  # entries in a line of the legend, but on a phone (one each)
BAND_OPACITY = 0.2
SEED_OPACITY = 0.45

Entry = RunHistory | RunGroup  # what a grid draws: single runs and groups of runs


def run_colour(index: int) -> str:
    return RUN_COLOURS[index % len(RUN_COLOURS)]


def translucent(colour: str, opacity: float) -> str:
    """``translucent("#636EFA", 0.2) -> "rgba(99,110,250,0.2)"``"""
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{opacity})"


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


def grid_keys(runs: Sequence[Entry], namespace: str = ALL) -> list[str]:
    """The metric keys to chart for ``runs`` (runs and groups): any run's charted keys,
    grouped by namespace; only ``namespace``'s unless it is ALL."""
    seen: dict[str, None] = {}
    for run in runs:
        seen.update(dict.fromkeys(run.charted()))
    return [key for group, keys in metric_groups(seen) if namespace in (ALL, group) for key in keys]


class MetricGrid:
    """One figure of metric charts; ``draw(runs, view, namespace)`` brings it up to date and
    sends only the traces whose data changed. ``runs`` may hold ``RunGroup``s."""

    def __init__(self):
        self.figure = figure_widget()
        style_figure(self.figure, ROW_HEIGHT_PX)
        self.shape: tuple | None = None  # (keys, entries, columns, x axis): the grid drawn now
        self.keys: list[str] = []
        # (run or group, key, part) -> trace index; part: "" (a run; a group's mean),
        # BAND, or a seed's run name
        self._traces: dict[tuple[str, str, str], int] = {}
        self._sent: dict[tuple[str, str], object] = {}  # (run or group, key) -> data key sent
        self.sent = 0  # trace updates made, for tests and benchmarks
        self.values_sent = 0

    def namespaces(self, runs: Sequence[Entry]) -> list[str]:
        return [group for group, _ in metric_groups(grid_keys(runs))]

    def draw(self, runs: Sequence[Entry], view: ChartView, namespace: str = ALL) -> None:
        keys = grid_keys(runs, namespace)
        names = tuple(_traced(run) for run in runs)
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
                if isinstance(run, RunGroup):
                    for key in keys:
                        self._set_group(run, key, view)
                    continue
                for key in keys:
                    series = run.metrics.get(key)
                    if series is None or not series.x:
                        continue
                    version = (series.version, view.smoothing, view.max_points, view.x_axis)
                    self._set(run, key, version, lambda s=series, r=run: _points(s, r, view))

    def trace(self, run: str, key: str, part: str = "") -> go.Scatter | None:
        """The trace of ``run``'s metric ``key``, if charted now; of a group: its mean, or
        with ``part`` its band (BAND) or one seed's curve (the seed's run name)."""
        index = self._traces.get((run, key, part))
        return None if index is None else self.figure.data[index]

    def invalidate(self) -> None:
        """Make the next ``draw`` send every trace."""
        self._sent.clear()

    def _set(self, run: RunHistory, key: str, version: object, points: Callable) -> None:
        if self._sent.get((run.name, key)) == version:
            return
        x, y = points()
        self._update(run.name, key, "", x=x, y=y)
        self._sent[(run.name, key)] = version

    def _set_group(self, group: RunGroup, key: str, view: ChartView) -> None:
        """A group's traces in chart ``key``: band, mean (its legend says n), seeds."""
        version = (group.version(key), view.smoothing, view.max_points, view.x_axis)
        if self._sent.get((group.name, key)) == version:
            return
        curve = group.curve(key, view.smoothing, view.x_axis, view.max_points)
        if curve is None:  # no member has a value of it yet
            curve = GroupCurve(*(np.empty(0) for _ in range(5)))
        band_x, band_y = band_outline(curve)
        self._update(group.name, key, BAND, x=band_x, y=band_y)
        self._update(
            group.name,
            key,
            "",
            x=curve.x.tolist(),
            y=_gaps(curve.mean),
            text=[_band_text(*point) for point in zip(curve.low, curve.high, curve.n)],
            name=f"{group.label} (n={len(group.members)})",
        )
        if group.seeds:
            for member in group.members:
                x, y = group.seed_curve(member, key, view.smoothing, view.x_axis)
                self._update(group.name, key, member.name, *_bounded(x, y, view.max_points))
        self._sent[(group.name, key)] = version

    def _update(self, entry: str, key: str, part: str, x: list, y: list, **changes) -> None:
        self.figure.data[self._traces[(entry, key, part)]].update(x=x, y=y, **changes)
        self.sent += 1
        self.values_sent += len(x) + len(y)

    def _rebuild(self, keys: list[str], runs: Sequence[Entry], view: ChartView) -> None:
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
        if len(runs) > 1 or any(isinstance(run, RunGroup) for run in runs):
            # the runs' colours (a group's n), above the first row of charts' titles and
            # below Plotly's tool bar (always shown on a phone): a line per entry on a phone
            lines = len(runs) if view.columns == 1 else -(-len(runs) // LEGEND_PER_LINE)
            extra = MODEBAR_PX + LEGEND_LINE_PX * lines
            spec.update_layout(
                showlegend=True,
                legend={
                    "yref": "container",
                    "y": 1 - MODEBAR_PX / (height + extra),
                    "yanchor": "top",
                },
                margin={"t": 36 + extra},
                height=height + extra,
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
                if isinstance(run, RunGroup):
                    for part, trace in _group_traces(run, key, run_colour(number), axis, shown):
                        registry[(run.name, key, part)] = len(traces)
                        traces.append(trace)
                    shown.add(run.name)
                    continue
                registry[(run.name, key, "")] = len(traces)
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


BAND = "/band"  # a group's band trace (part of the registry's key; no run name has a /)


def _traced(run: Entry) -> object:
    """What of an entry decides its traces: a run's name; a group's name, and its members'
    when each seed has a trace."""
    if isinstance(run, RunGroup):
        return (run.name, tuple(m.name for m in run.members) if run.seeds else None)
    return run.name


def _group_traces(group: RunGroup, key: str, colour: str, axis: str, shown: set):
    """(part, trace) of a group in chart ``key``: the band first, then the mean (drawn over
    it; the one legend entry, whose click hides the group), then the seeds."""
    common = {"legendgroup": group.name, "xaxis": f"x{axis}", "yaxis": f"y{axis}"}
    yield (
        BAND,
        go.Scatter(
            name=f"{group.label} 95% interval",
            mode="lines",
            fill="toself",
            fillcolor=translucent(colour, BAND_OPACITY),
            line={"width": 0, "color": colour},
            hoverinfo="skip",
            showlegend=False,
            **common,
        ),
    )
    yield (
        "",
        go.Scatter(
            name=group.label,
            mode="lines",
            line={"color": colour, "width": 2.5},
            showlegend=group.name not in shown,
            hovertemplate=f"{group.label}<br>{key}: %{{y:.4g}}<br>%{{text}}<extra></extra>",
            **common,
        ),
    )
    if group.seeds:
        for member in group.members:
            yield (
                member.name,
                go.Scatter(
                    name=member.name,
                    mode="lines",
                    line={"color": colour, "width": 1},
                    opacity=SEED_OPACITY,
                    showlegend=False,
                    hovertemplate=f"{member.name}<br>{key}: %{{y:.4g}}<extra></extra>",
                    **common,
                ),
            )


def _band_text(low: float, high: float, n: int) -> str:
    """A bin's hover line: ``95% CI 1.2–3.4 · n=3``, or ``n=1: no interval``."""
    if not np.isfinite(low):
        return f"n={n}: no interval"
    return f"95% CI {low:.4g}–{high:.4g} · n={n}"


def _gaps(values: np.ndarray) -> list:
    """Floats, None where not finite (a gap, as Plotly draws it)."""
    return [v if np.isfinite(v) else None for v in values.tolist()]


def _bounded(x: list, y: list, max_points: int) -> tuple[list, list]:
    return downsample(x, y, max_points) if len(x) > max_points else (list(x), list(y))


def _axis_names(layout: go.Layout) -> set[str]:
    return {key for key in layout.to_plotly_json() if key.startswith(("xaxis", "yaxis"))}
