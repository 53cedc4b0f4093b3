"""Plotly ``FigureWidget`` builders for the dashboard, and ``LiveFigure`` to update them.

A few figures with stacked subplots rather than one figure per chart: every
``FigureWidget`` ships plotly.js (about 5 MB) to the browser in its own widget state, which
a phone on a mobile network feels. Each figure has ``autosize=True``, a fixed height and no
width (it takes its container's), and a constant ``uirevision`` so that zoom and pan survive
updates.
"""

from __future__ import annotations

from collections.abc import Callable

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..engine.rules import MAX_EXPONENT

__all__ = [
    "LiveFigure",
    "TILE_TICKS",
    "figure_widget",
    "games_figure",
    "model_figure",
    "style_figure",
    "token_labels",
]

TILE_TICKS = [2**k for k in range(1, MAX_EXPONENT + 1)]  # plotly shows those in range
_MARGIN = {"l": 48, "r": 12, "t": 36, "b": 36}
_LEGEND = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0}


def style_figure(figure: go.Figure, height: int) -> None:
    """The look every figure shares; ``height`` in px (the width is the container's)."""
    figure.update_layout(
        autosize=True,
        height=height,
        margin=_MARGIN,
        uirevision="g2048lab",
        legend=_LEGEND,
        template="plotly_white",
        hovermode="closest",
    )
    figure.update_annotations(font_size=13)  # subplot titles


def figure_widget(figure: go.Figure | None = None) -> go.FigureWidget:
    """A FigureWidget of ``figure`` that follows its container's width: plotly.js's
    ``responsive`` config re-measures on each window resize (a figure first drawn while its
    panel was hidden measures 0 px and falls back to 700; the page's ``Presence`` widget
    sends a resize event when a panel's width changes)."""
    widget = go.FigureWidget(figure)
    widget._config = {"responsive": True}
    return widget


def token_labels(rows: int = 4, cols: int = 4) -> list[str]:
    """The rows * cols tile tokens of a (rows, cols) board as cell names, token i = cell
    (i // cols, i % cols): ``token_labels(2, 3) -> ["r1c1", "r1c2", "r1c3", "r2c1", ...]``"""
    return [f"r{i // cols + 1}c{i % cols + 1}" for i in range(rows * cols)]


def games_figure() -> go.FigureWidget:
    """Score per finished game (points, moving average, smoothed) and max tile per game."""
    figure = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.1,
        row_heights=[0.6, 0.4],
        subplot_titles=("score per game", "max tile per game"),
    )
    marker = {"size": 4, "opacity": 0.4}
    figure.add_trace(go.Scatter(name="score", mode="markers", marker=marker), row=1, col=1)
    figure.add_trace(go.Scatter(name="moving average", mode="lines"), row=1, col=1)
    figure.add_trace(go.Scatter(name="smoothed", mode="lines", visible=False), row=1, col=1)
    figure.add_trace(
        go.Scatter(name="max tile", mode="markers", marker=marker, showlegend=False), row=2, col=1
    )
    figure.add_trace(
        go.Scatter(name="best tile", mode="lines", line_shape="hv", showlegend=False), row=2, col=1
    )
    figure.update_yaxes(
        type="log", tickvals=TILE_TICKS, ticktext=[str(t) for t in TILE_TICKS], row=2, col=1
    )
    figure.update_xaxes(title_text="game", row=2, col=1)
    style_figure(figure, 520)
    return figure_widget(figure)


def model_figure() -> go.FigureWidget:
    """Attention of one head (cells x cells tiles; labelled for a 4x4 board until a run's
    board says otherwise), expert usage now and expert usage over time."""
    figure = make_subplots(
        rows=3,
        cols=1,
        vertical_spacing=0.09,
        row_heights=[0.5, 0.2, 0.3],
        subplot_titles=(
            "attention (row: query tile, column: key tile)",
            "expert usage now",
            "expert usage over time",
        ),
    )
    labels = token_labels()
    figure.add_trace(
        go.Heatmap(
            name="attention",
            x=labels,
            y=labels,
            colorscale="YlOrBr",
            showscale=False,
            hovertemplate="query %{y} → key %{x}: %{z:.3f}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    figure.add_trace(
        go.Bar(name="expert usage", marker_color="#f59563", showlegend=False), row=2, col=1
    )
    figure.add_trace(
        go.Heatmap(
            name="expert usage over time",
            colorscale="YlOrBr",
            showscale=False,
            hovertemplate="%{y} at %{x:,} env steps: %{z:.3f}<extra></extra>",
        ),
        row=3,
        col=1,
    )
    figure.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain", row=1, col=1)
    figure.update_xaxes(constrain="domain", tickangle=-90, row=1, col=1)
    figure.update_yaxes(title_text="share", rangemode="tozero", row=2, col=1)
    figure.update_yaxes(autorange="reversed", row=3, col=1)
    figure.update_xaxes(title_text="env steps", row=3, col=1)
    style_figure(figure, 860)
    return figure_widget(figure)


class LiveFigure:
    """A FigureWidget's traces by name. ``set`` rebuilds and sends a trace's data only when
    its key changed, so an idle refresh costs nothing (assigning ``trace.y`` resends the
    whole array)."""

    def __init__(self, figure: go.FigureWidget):
        self.figure = figure
        self.traces = {trace.name: trace for trace in figure.data}
        self.sent = 0  # trace updates made, for tests and benchmarks of idle refreshes
        self.values_sent = 0  # x, y and z values in them (what the page receives, in numbers)
        self._keys: dict[str, object] = {}

    def set(self, name: str, key: object, properties: Callable[[], dict]) -> bool:
        """Update trace ``name`` with ``properties()`` unless it was last set with an equal
        ``key``; returns whether it was updated."""
        if name in self._keys and self._keys[name] == key:
            return False
        data = properties()
        self.traces[name].update(**data)
        self._keys[name] = key
        self.sent += 1
        self.values_sent += sum(_size(data.get(axis)) for axis in ("x", "y", "z"))
        return True

    def invalidate(self) -> None:
        """Make the next ``set`` of every trace send its data."""
        self._keys.clear()


def _size(values: object) -> int:
    """Numbers in a trace property: a list, a nested list (heatmap rows) or None."""
    if values is None:
        return 0
    if len(values) and isinstance(values[0], (list, tuple)):
        return sum(len(row) for row in values)
    return len(values)
