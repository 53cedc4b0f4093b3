"""The live dashboard of one training run.

Threads (as measured in JupyterLab and Voila, see the project's STACK notes): every widget
is created here, in ``__init__``, on the main thread, and displayed from it. The trainer
only fills a queue (or writes the run store). One refresher thread calls ``refresh()``
about once a second: it polls the source into a widget-free ``RunHistory`` and lets each
panel (``panels.py``) draw from it, figures inside ``batch_update()``; nothing is printed
and no output area is used from it. Button and slider callbacks may run on another thread
while a cell blocks (ipykernel 7), so ``refresh()`` and every callback hold one lock.
"""

from __future__ import annotations

import html
import threading
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import ipywidgets as widgets

from ..store import RunStore, StoreError
from .downloads import download_link, game_link, metrics_csv
from .header import header_html
from .history import AXES, RunHistory
from .layout import ROOT_CLASS, button, panels, style_widget, toolbar
from .metric_grid import ChartView, view_for_width
from .panels import GamePanel, MetricsPanel, ModelPanel, ScoresPanel, insight_panels
from .refresher import Presence, Refresher
from .sources import ACTIONS, LIVE, SILENT_AFTER_S, Source, StoreSource, TrainerSource

__all__ = ["ChartOptions", "Dashboard"]

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


class ChartOptions:
    """The smoothing slider, the log-y toggle and the x-axis choice every chart view has;
    ``on_change()`` runs when any of them changes, ``view(base)`` applies them."""

    def __init__(self, on_change, smoothing: float = 0.6):
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
            tooltip="log scale for every chart's y axis",
            layout=widgets.Layout(width="auto", min_width="88px", min_height="44px"),
        )
        self.x_axis = widgets.Dropdown(
            options=[(label, key) for key, label in AXES.items()],
            value="env_steps",
            description="x",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="auto", min_width="0", flex="0 1 180px"),
        )
        self.widgets = (self.smoothing, self.log_scale, self.x_axis)
        for option in self.widgets:
            option.observe(lambda _: on_change(), "value")

    def view(self, base: ChartView) -> ChartView:
        """``base`` with the smoothing, log scale and x axis chosen now."""
        return replace(
            base,
            smoothing=self.smoothing.value,
            log_y=self.log_scale.value,
            x_axis=self.x_axis.value,
        )


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
        back_link: HTML put above the header (the phone app's link back to its runs list).
        link: a URL template with ``{name}`` for a run's page (the phone app's
            ``"?run={name}"``): the page of a run renamed meanwhile links to its new name.

    A run deleted or renamed in the store (by any process) is said so in the header at the
    next refresh, its buttons are disabled and the refreshing stops.
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
        back_link: str = "",
        link: str | None = None,
    ):
        self.source: Source = _as_source(source, run)
        self.link = link
        self.full_points = max_points
        self.phone_points = phone_points
        self.refresher = Refresher(
            self._tick,
            interval,
            idle_after_s=idle_after_s,
            refresh_for_s=refresh_for_s,
            on_error=self._say,
            on_expire=lambda: self._say(
                "live updates stopped: reload the page (or run the cell) for more"
            ),
        )
        self.presence: Presence = self.refresher.presence
        self.presence.observe(self._resized, names="width")
        self._lock = threading.RLock()
        self.history = RunHistory(self.source.name, capacity=10 * max_points)
        self.view = ChartView(smoothing=smoothing, max_points=max_points)
        self._rendering = False
        self._build(smoothing, window, back_link)
        self.refresh()

    @classmethod
    def attach(cls, store: RunStore | str | Path, run: str | None = None, **options) -> Dashboard:
        """A dashboard on a run in a store (by default the one written most recently)."""
        return cls(StoreSource(store, run), **options)

    # what has been read so far (the history holds it)
    @property
    def latest(self):
        return self.history.latest

    @property
    def status(self) -> str:
        return self.history.status

    @property
    def error(self) -> str | None:
        return self.history.error

    @property
    def ended(self) -> bool:
        return self.history.ended

    @property
    def max_points(self) -> int:
        return self.view.max_points

    # --- widgets (main thread) ----------------------------------------------------------

    def _build(self, smoothing: float, window: int, back_link: str) -> None:
        self.header = widgets.HTML()
        self.buttons = {action: button(_LABELS[action], _TOOLTIPS[action]) for action in ACTIONS}
        for action, widget in self.buttons.items():
            widget.on_click(lambda _, action=action: self.control(action))
        self.notes_html = widgets.HTML()
        self.notes_html.add_class("g2048lab-notes")
        self.chart_options = ChartOptions(self._on_option, smoothing)
        self.smoothing, self.log_scale, self.x_axis = self.chart_options.widgets
        self.csv_button = button("metrics CSV", "make a link to download every metric row")
        self.csv_link = widgets.HTML()
        self.csv_button.on_click(lambda _: self.prepare_csv())
        self.game_button = button("best game", "make a link to the best game as a page")
        self.game_link = widgets.HTML()
        self.game_button.on_click(lambda _: self.prepare_game())
        options = toolbar(*self.chart_options.widgets)
        downloads = toolbar(self.csv_button, self.csv_link, self.game_button, self.game_link)
        self.game_panel = GamePanel()
        self.scores_panel = ScoresPanel(window)
        self.metrics_panel = MetricsPanel(self._on_option)
        self.model_panel = ModelPanel(self._on_option)
        self.panels = [
            self.game_panel,
            self.scores_panel,
            self.metrics_panel,
            self.model_panel,
            *insight_panels(),  # learners' own insights (panels.register)
        ]
        top = [widgets.HTML(back_link)] if back_link else []
        self.root = widgets.VBox(
            [
                style_widget(),
                self.presence,
                *top,
                self.header,
                toolbar(*self.buttons.values()),
                self.notes_html,
                options,
                panels(*(p.box for p in self.panels)),
                downloads,
            ],
            layout=widgets.Layout(width="100%"),
        )
        self.root.add_class(ROOT_CLASS)

    def _repr_mimebundle_(self, **kwargs):
        """Display the widgets (``display(dashboard)``, or a cell's last expression) and start
        refreshing them. The text form is constant, so nbval has nothing live to compare."""
        return {**self.widget()._repr_mimebundle_(**kwargs), "text/plain": "g2048lab Dashboard"}

    def widget(self) -> widgets.Widget:
        """The root widget, to display or put in a layout; starts the refresher."""
        for panel in self.panels:
            for figure in panel.figures():
                # A FigureWidget sends later changes as deltas, which a page that connects
                # after they were sent (Voila renders once the notebook has run) never sees;
                # displaying a figure copies its data into its synced state, but nested in
                # our layout it is not displayed itself, so ask it to do the same here.
                figure._repr_mimebundle_()
        self.start_refreshing()
        return self.root

    # --- refreshing -----------------------------------------------------------------------

    def start_refreshing(self) -> Dashboard:
        """Start the refresher thread (not the training); displaying the dashboard does it.
        It stops by itself once the run has ended and its last data is shown, or, for a run
        in a store, once it is deleted or renamed: until then another process may resume it
        (a refresh that finds nothing new sends the page nothing)."""
        with self._lock:
            if not self._done():
                self.refresher.start("g2048lab-dashboard")
        return self

    def _done(self) -> bool:
        """Whether nothing more can come: the run has left its store, or it has ended and
        its source is not read after the end (a trainer in this kernel)."""
        read_after_end = getattr(self.source, "read_after_end", False)  # optional in a Source
        return self.history.gone is not None or (self.ended and not read_after_end)

    @property
    def refreshing(self) -> bool:
        return self.refresher.running

    @property
    def watched(self) -> bool:
        """Whether a page has shown the dashboard lately (always True without idle_after_s)."""
        return self.refresher.watched

    @property
    def idle_ticks(self) -> int:
        return self.refresher.idle_ticks

    def close(self, timeout: float = 5.0) -> None:
        """Stop the refresher, unsubscribe from the trainer and close every widget."""
        self.refresher.stop(timeout)
        with self._lock:
            self.source.close()
            _close_tree(self.root)

    def _resized(self, change) -> None:
        """A phone-sized page: one chart per row and fewer points per trace; a wider page:
        two charts per row and all the points again."""
        view = view_for_width(self.view, change["new"], self.full_points, self.phone_points)
        with self._lock:
            if view == self.view:
                return
            self.view = view
            for panel in self.panels:
                panel.invalidate()
            self._render_panels()

    def _tick(self) -> bool:
        self.refresh()
        return self._done()

    def _say(self, text: str) -> None:
        with self._lock:
            self.history.note(text)
            self._render_notes()

    def refresh(self) -> None:
        """Poll the source once and show what changed (cheap when nothing did)."""
        with self._lock:
            self.history.absorb(self.source.poll())
            self._render()

    # --- drawing --------------------------------------------------------------------------

    def _render(self) -> None:
        self._rendering = True
        try:
            self._render_header()
            for action, widget in self.buttons.items():
                widget.disabled = not self.source.can(action)
            self._render_notes()
            self._render_panels()
        finally:
            self._rendering = False

    def _render_panels(self) -> None:
        view = self.chart_options.view(self.view)
        for panel in self.panels:
            panel.draw([self.history], view)

    def _render_header(self) -> None:
        history, source = self.history, self.source
        if history.gone is not None:
            self.header.value = header_html(
                source.name, "renamed" if history.gone.renamed_to else "deleted",
                gone=self._gone_html(),
            )  # fmt: skip
            return
        u = history.latest
        rates = history.metrics.get("time/steps_per_s")
        last_row_steps = rates.x[-1] if rates is not None and rates.x else None
        env_steps = u.env_steps if u is not None else last_row_steps
        remaining = None
        if u is not None and history.status in (*LIVE, "idle"):
            remaining = source.budget.remaining_s(u.env_steps, u.elapsed_s, u.steps_per_second)
        silent = (
            history.silent_s if history.silent_s and history.silent_s > SILENT_AFTER_S else None
        )
        self.header.value = header_html(
            source.name,
            history.status,
            error=history.error,
            game=source.game,
            device=source.device,
            params_m=source.params_m if source.params_m is not None else u and u.model_params,
            env_steps=env_steps,
            steps_per_s=u.steps_per_second if u is not None else None,
            elapsed_s=u.elapsed_s if u is not None else None,
            remaining_s=remaining,
            silent_s=silent,
        )

    def _gone_html(self) -> str:
        gone = self.history.gone
        text = html.escape(str(gone))
        if gone.renamed_to is not None and self.link is not None:
            href = html.escape(self.link.format(name=quote(gone.renamed_to)))
            text += f' · <a class="g2048lab-renamed" href="{href}">open it ›</a>'
        return text

    def _render_notes(self) -> None:
        notes = reversed(self.history.notes)
        lines = "".join(f"<div>{html.escape(note)}</div>" for note in notes)
        self.notes_html.value = f'<div class="g2048lab-notes">{lines}</div>'

    # --- callbacks (any thread) -----------------------------------------------------------

    def control(self, action: str) -> str:
        """What a button does: carry out or request ``action`` (one of ACTIONS)."""
        with self._lock:
            result = self.source.control(action)
            self.history.note(result)
            self._render_notes()
            for name, widget in self.buttons.items():
                widget.disabled = not self.source.can(name)
        if action == "start":
            self.start_refreshing()
        return result

    def prepare_csv(self) -> str:
        """Fill the download link with every metric row; returns the CSV text."""
        try:
            rows = self.source.all_metrics()
        except StoreError as error:  # deleted or renamed meanwhile
            self._say(str(error))
            return ""
        text = metrics_csv(rows)
        label = f"⬇ {self.source.name}-metrics.csv ({len(rows):,} rows)"
        with self._lock:
            self.csv_link.value = download_link(text, f"{self.source.name}-metrics.csv", label)
        return text

    def prepare_game(self) -> str:
        """Fill the download link with the run's best game as a page that plays it back."""
        try:
            game = self.source.best_game()
        except StoreError as error:  # deleted or renamed meanwhile
            self._say(str(error))
            return ""
        link = game_link(game, self.source.name) if game else "no recorded game yet"
        with self._lock:
            self.game_link.value = link
        return link

    def _on_option(self) -> None:
        with self._lock:
            if self._rendering:  # a dropdown whose options the refresh itself just set
                return
            self._render_panels()


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


def _close_tree(widget: widgets.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()
