"""Every run of a store at once, live: the list, overlaid curves, what differs, each run's
controls, and the sweeps. The notebook's ``RunsBrowser(store)`` and the phone app's home
screen.

    RunsBrowser("checkpoints")                 # in a notebook
    RunsBrowser(store, link="?run={name}")     # the phone app: names link to a run's page

Threads as in ``Dashboard``: widgets are made here on the main thread; a ``Refresher``
thread re-reads the store every ``interval`` s while a page shows the view, and every
callback holds the same lock. The overlay draws with the dashboard's own ``MetricsPanel``
from one ``RunHistory`` per selected run. A refresh that finds nothing new sends nothing to
the page: every widget value is worked out first and assigned once.

Sweeps: a ``SweepPanel`` (its trials by group, with progress; stop and resume the whole sweep)
above the list, and groups beside runs in the overlay: each group (a sweep's setting over its
seeds) one mean curve with its 95% band across seeds and n in the legend, each seed on demand
("single seeds"). Without a choice, the groups of a running sweep are overlaid.

Which run a button acts on is kernel state, never a widget value the page could set (a
tooltip, a description): ``selected`` is the run chosen in the "run" list, kept when the
list's choice changes and checked against the runs read; "delete…" remembers that run (its
name, store id and creation time), and "yes, delete" deletes the remembered run only, if it
is still that run; the sweep panel's buttons act on its chosen sweep, kept the same way.
Served without a token (``g2048lab dashboard --no-token``), a program on the machine can
still make the same choices a person can; with one, nobody else can.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from urllib.parse import quote

import ipywidgets as widgets

from ..compare import config_diff
from ..store import STATUSES, RunStore, StoreError
from .groups import RunGroup, group_label
from .history import RunHistory
from .layout import ROOT_CLASS, button, panel, panels, style_widget, toolbar
from .live import ChartOptions, Dashboard
from .metric_grid import ChartView, view_for_width
from .panels import MetricsPanel
from .refresher import Refresher
from .runs_table import (
    SORTS,
    RunRow,
    config_diff_html,
    filter_rows,
    run_rows,
    runs_table_html,
    sort_rows,
)
from .sources import LIVE, StoreSource
from .sweep_panel import SweepGroup, SweepPanel, SweepState

__all__ = ["MAX_COMPARED", "RunsBrowser"]

MAX_COMPARED = 8  # runs overlaid at once, and groups
CONTROLS = ("pause", "resume", "stop", "checkpoint")


class RunsBrowser:
    """See the module docstring.

    Args:
        store: a ``RunStore`` or its folder.
        interval: seconds between refreshes while a page shows the view.
        link: a URL template with ``{name}`` that each run's name links to (the phone app's
            ``"?run={name}"``); None: names are plain and "open" shows the run's dashboard
            below the list.
        compare: runs to overlay from the start.
        groups: groups to overlay from the start (``SWEEP/KEY``, as ``SweepGroup.id``);
            None: the groups of the sweep shown, if it is running and no run is compared.
        max_points, phone_points, smoothing: as for ``Dashboard``.
        idle_after_s, refresh_for_s: as for ``Dashboard``.
    """

    def __init__(
        self,
        store: RunStore | str | Path,
        *,
        interval: float = 2.0,
        link: str | None = None,
        compare: tuple[str, ...] = (),
        groups: tuple[str, ...] | None = None,
        max_points: int = 1000,
        phone_points: int | None = 300,
        smoothing: float = 0.6,
        idle_after_s: float | None = None,
        refresh_for_s: float | None = None,
    ):
        self.store = store if isinstance(store, RunStore) else RunStore(store, create=False)
        self.link = link
        self.full_points, self.phone_points = max_points, phone_points
        self.view = ChartView(smoothing=smoothing, max_points=max_points)
        self.rows: list[RunRow] = []  # every run, as last read
        self.shown: list[RunRow] = []  # the rows the filters let through, in order
        self.compared: dict[str, tuple[StoreSource, RunHistory]] = {}
        self.grouped: dict[str, RunGroup] = {}  # by SweepGroup.id, in the chosen order
        self.members: dict[str, tuple[StoreSource, RunHistory]] = {}  # the groups' runs
        self.sweep_state = SweepState()
        self.opened: Dashboard | None = None
        self.selected: str | None = None  # the run the buttons act on (see the docstring)
        # (name, (store id, created_at)) of the run "delete…" asked about: SQLite may give a
        # new run the id of one deleted, never its creation time as well
        self.pending_delete: tuple[str, tuple[int, float]] | None = None
        self._lock = threading.RLock()
        self._rendering = False
        self.refresher = Refresher(
            self.refresh,
            interval,
            idle_after_s=idle_after_s,
            refresh_for_s=refresh_for_s,
            on_error=self.say,
        )
        self.refresher.presence.observe(self._resized, names="width")
        self.sweep_panel = SweepPanel(
            self.store,
            self._lock,
            on_change=self._on_sweep_change,
            on_overlay=self.overlay_groups,
            link=link,
        )
        self._build(smoothing)
        self.refresh()
        if compare:
            self.compare.value = tuple(name for name in compare if name in self.compare.options)
        if groups is None and not compare:
            overview = self.sweep_state.overview
            running = overview is not None and overview["status"] == "running"
            groups = tuple(
                g.id for g in self.sweep_state.groups if running and g.sweep == overview["name"]
            )
        if groups:
            offered = {value for _, value in self.compare_groups.options}
            self.compare_groups.value = tuple(id for id in groups if id in offered)[:MAX_COMPARED]

    # --- widgets (main thread) ----------------------------------------------------------

    def _build(self, smoothing: float) -> None:
        self.title = widgets.HTML()
        choice = {"style": {"description_width": "initial"}, "layout": _grow(150)}
        self.status_filter = widgets.Dropdown(description="status", **choice)
        self.learner_filter = widgets.Dropdown(description="learner", **choice)
        self.tag_filter = widgets.Dropdown(description="tag", **choice)
        self.sort = widgets.Dropdown(
            options=[(label, key) for key, (label, _, _) in SORTS.items()],
            value="created",
            description="sort",
            **choice,
        )
        for selector in (self.status_filter, self.learner_filter, self.tag_filter, self.sort):
            selector.observe(lambda _: self._on_filter(), "value")
        self.table = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.table.add_class("g2048lab-runs-table")

        self.compare = widgets.SelectMultiple(
            description="compare", rows=6, layout=_grow(240), style={"description_width": "initial"}
        )
        self.compare.add_class("g2048lab-compare")
        self.compare.observe(lambda _: self._on_compare(), "value")
        self.compare_groups = widgets.SelectMultiple(
            description="groups", rows=4, layout=_grow(240), style={"description_width": "initial"}
        )
        self.compare_groups.add_class("g2048lab-compare-groups")
        self.compare_groups.observe(lambda _: self._on_groups(), "value")
        self.seeds = widgets.ToggleButton(
            description="single seeds",
            tooltip="each group's runs as thin lines under its mean and band",
            layout=widgets.Layout(width="auto", min_width="88px", min_height="44px"),
        )
        self.seeds.observe(lambda _: self._on_groups(), "value")
        self.group_row = toolbar(self.compare_groups, self.seeds)
        self.group_row.layout.display = "none"
        self.chart_options = ChartOptions(self._on_option, smoothing)
        self.smoothing, self.log_scale, self.x_axis = self.chart_options.widgets
        self.metrics_panel = MetricsPanel(self._on_option)
        self.diff = widgets.HTML()

        self.chosen = widgets.Dropdown(description="run", **choice)
        self.chosen.add_class("g2048lab-chosen")
        self.chosen.observe(lambda _: self._on_choose(), "value")
        self.open_link = widgets.HTML()
        self.open_button = button("open dashboard", "show the run's live dashboard below")
        self.open_button.on_click(lambda _: self.open(self.selected))
        self.controls = {action: button(action, f"{action} the run") for action in CONTROLS}
        for action, widget in self.controls.items():
            widget.on_click(lambda _, action=action: self.control(self.selected, action))
        self.new_name = widgets.Text(placeholder="new name", layout=_grow(160))
        self.rename_button = button("rename")
        self.rename_button.on_click(lambda _: self.rename(self.selected, self.new_name.value))
        self.tags = widgets.Text(placeholder="tags, comma separated", layout=_grow(200))
        self.tags_button = button("save tags")
        self.tags_button.on_click(lambda _: self.set_tags(self.selected, self.tags.value))
        self.note = widgets.Textarea(placeholder="a note on this run", layout=_grow(240))
        self.note_button = button("save note")
        self.note_button.on_click(lambda _: self.set_note(self.selected, self.note.value))
        self.delete_button = button("delete…", "delete the run's records and checkpoints")
        self.delete_button.on_click(lambda _: self.ask_delete())
        self.confirm_text = widgets.HTML()
        self.confirm_yes = button("yes, delete", "delete it for good")
        self.confirm_no = button("cancel")
        self.confirm_yes.on_click(lambda _: self.confirm_delete())
        self.confirm_no.on_click(lambda _: self._hide_confirm())
        self.confirm = toolbar(self.confirm_text, self.confirm_yes, self.confirm_no)
        self.confirm.layout.display = "none"
        self.confirm.add_class("g2048lab-confirm")
        self.message = widgets.HTML()
        self.message.add_class("g2048lab-notes")
        self.detail = widgets.VBox(layout=widgets.Layout(width="100%"))

        open_widget = self.open_link if self.link is not None else self.open_button
        actions = panel(
            "run",
            toolbar(self.chosen, open_widget),
            toolbar(*self.controls.values()),
            toolbar(self.new_name, self.rename_button),
            toolbar(self.tags, self.tags_button),
            toolbar(self.note, self.note_button),
            toolbar(self.delete_button),
            self.confirm,
            self.message,
        )
        overlay = panel(
            "compare runs",
            toolbar(self.compare),
            self.group_row,
            toolbar(*self.chart_options.widgets),
            self.diff,
        )
        self.root = widgets.VBox(
            [
                style_widget(),
                self.refresher.presence,
                self.title,
                panels(self.sweep_panel.box),
                toolbar(self.status_filter, self.learner_filter, self.tag_filter, self.sort),
                self.table,
                panels(overlay, actions),
                panels(self.metrics_panel.box),
                self.detail,
            ],
            layout=widgets.Layout(width="100%"),
        )
        self.root.add_class(ROOT_CLASS)
        self.root.add_class("g2048lab-runs-browser")

    def _repr_mimebundle_(self, **kwargs):
        """Display the view and start refreshing it (the text form is constant, for nbval)."""
        return {**self.widget()._repr_mimebundle_(**kwargs), "text/plain": "g2048lab RunsBrowser"}

    def widget(self) -> widgets.Widget:
        """The view's root widget, its figures synced and its refresher started."""
        for figure in self.metrics_panel.figures():
            figure._repr_mimebundle_()  # as Dashboard.widget does, for the same reason
        self.refresher.start("g2048lab-runs")
        return self.root

    def close(self, timeout: float = 5.0) -> None:
        self.refresher.stop(timeout)
        with self._lock:
            if self.opened is not None:
                self.opened.close(timeout)
            self.root.close()

    # --- refreshing -----------------------------------------------------------------------

    def refresh(self) -> bool:
        """Read the store once and show what changed. Returns False: a store can always get
        new runs, so the refresher goes on."""
        rows = run_rows(self.store)
        sweeps = self.sweep_panel.read(rows)
        with self._lock:
            self.rows = rows
            self.sweep_state = sweeps
            for source, history in list(self.compared.values()):
                snapshot = source.poll()
                if snapshot.gone is not None:  # deleted or renamed since: drop it
                    self.compared.pop(source.name, None)
                else:
                    history.absorb(snapshot)
            self._follow_groups(poll=True)
            self._render()
        return False

    def _follow_groups(self, poll: bool) -> None:
        """Bring the chosen groups' members up to date with the trials read (a trial that
        starts joins its group); ``poll``: read each member's new rows too."""
        found = {group.id: group for group in self.sweep_state.groups}
        chosen = [found[id] for id in self.compare_groups.value if id in found][:MAX_COMPARED]
        sweeps = {group.sweep for group in chosen}
        wanted = {name for group in chosen for name in group.runs}
        for name in list(self.members):
            if name not in wanted:
                del self.members[name]
        for name, (source, history) in list(self.members.items()):
            if poll:
                snapshot = source.poll()
                if snapshot.gone is not None:
                    del self.members[name]
                    continue
                history.absorb(snapshot)
        for name in wanted - set(self.members):
            try:
                source = StoreSource(self.store, name)
            except StoreError:  # gone since it was read: the next refresh drops it
                continue
            history = RunHistory(name, capacity=10 * self.full_points)
            history.absorb(source.poll())
            self.members[name] = (source, history)
        grouped = {}
        for group in chosen:
            label = group_label(group.setting)
            if len(sweeps) > 1:
                label = f"{group.sweep}: {label}"
            entry = self.grouped.get(group.id) or RunGroup(group.id, label)
            entry.label, entry.seeds = label, self.seeds.value
            entry.members = [self.members[n][1] for n in group.runs if n in self.members]
            grouped[group.id] = entry
        self.grouped = grouped

    def _render(self) -> None:
        self._rendering = True
        try:
            names = [row.name for row in self.rows]
            live = sum(row.status in LIVE for row in self.rows)
            where = html.escape(str(self.store.root))
            self.title.value = (
                f'<div class="g2048lab-runs-title"><b style="font-size:1.2em">runs</b> '
                f'<span style="color:#8f7a66">{len(names)} in {where}, {live} live</span></div>'
            )
            _set_choices(self.status_filter, "any status", STATUSES)
            _set_choices(self.learner_filter, "any learner", {r.learner for r in self.rows})
            _set_choices(self.tag_filter, "any tag", {t for r in self.rows for t in r.tags})
            self.shown = sort_rows(
                filter_rows(
                    self.rows,
                    self.status_filter.value or None,
                    self.learner_filter.value or None,
                    self.tag_filter.value or None,
                ),
                self.sort.value,
            )
            self.table.value = runs_table_html(self.shown, self.compare.value, self.link)
            if list(self.compare.options) != names:
                kept = tuple(name for name in self.compare.value if name in names)
                self.compare.options = names
                self.compare.value = kept
            groups = [(_group_choice(g), g.id) for g in self.sweep_state.groups]
            if list(self.compare_groups.options) != groups:
                kept = tuple(v for v in self.compare_groups.value if v in {i for _, i in groups})
                self.compare_groups.options = groups
                self.compare_groups.value = kept
            self.group_row.layout.display = None if groups else "none"
            self.sweep_panel.render(self.sweep_state)
            if list(self.chosen.options) != names:
                chosen = self.chosen.value
                self.chosen.options = names
                self.chosen.value = chosen if chosen in names else (names[0] if names else None)
            self._select(self.chosen.value)
            self._render_chosen()
            self._render_overlay()
        finally:
            self._rendering = False

    def _render_overlay(self) -> None:
        histories = [history for _, history in self.compared.values()]
        entries = [*histories, *self.grouped.values()]
        self.metrics_panel.draw(entries, self.chart_options.view(self.view))
        configs = {
            row.name: self._config(row.name) for row in self.rows if row.name in self.compared
        }
        names = [name for name in self.compare.value if name in configs]
        self.diff.value = config_diff_html(config_diff({n: configs[n] for n in names}), names)

    def _config(self, name: str) -> dict:
        return self.compared[name][0].config

    def _render_chosen(self) -> None:
        """The selected run's buttons and link; each value is assigned once, so a refresh
        that changes nothing sends nothing."""
        name = self.selected
        row = self._row(name)
        try:
            source = self._source(name) if row is not None else None
        except StoreError:  # gone since the rows were read: the next refresh drops it
            source = None
        for action, widget in self.controls.items():
            widget.disabled = source is None or not source.can(action)
        self.open_button.disabled = row is None
        self.delete_button.disabled = row is None or row.status in LIVE
        if row is None or self.link is None:
            self.open_link.value = ""
        else:
            href = html.escape(self.link.format(name=quote(name)))
            self.open_link.value = (
                f'<a class="g2048lab-open" href="{href}" style="display:inline-block;'
                f'padding:12px 8px;font-weight:700">open {html.escape(name)} ›</a>'
            )

    # --- callbacks (any thread) -----------------------------------------------------------

    def say(self, text: str) -> None:
        with self._lock:
            self.message.value = f'<div class="g2048lab-notes">{html.escape(text)}</div>'

    def open(self, name: str | None) -> Dashboard | None:
        """Show run ``name``'s live dashboard below the list (one at a time)."""
        if name is None:
            return None
        with self._lock:
            if self.opened is not None:
                self.opened.close()
            self.opened = Dashboard.attach(self.store, name)
            self.detail.children = (self.opened.widget(),)
            return self.opened

    def control(self, name: str | None, action: str) -> str:
        """Ask run ``name``'s process to ``action`` (one of CONTROLS)."""
        if name is None:
            return ""
        try:
            result = self._source(name).control(action)
        except StoreError as error:  # deleted or renamed by another process meanwhile
            result = str(error)
        self.say(f"{name}: {result}")
        return result

    def rename(self, name: str | None, new: str) -> None:
        self._act(lambda: self.store.rename_run(name, new.strip()), f"renamed {name} to {new}")

    def set_tags(self, name: str | None, text: str) -> None:
        tags = [tag.strip() for tag in text.split(",") if tag.strip()]
        self._act(lambda: self.store.set_tags(name, tags), f"{name}: tags saved")

    def set_note(self, name: str | None, text: str) -> None:
        self._act(lambda: self.store.set_note(name, text), f"{name}: note saved")

    def ask_delete(self) -> None:
        """The "delete…" button: remember the selected run (here, in the kernel) and ask;
        nothing is deleted yet."""
        with self._lock:
            name = self.selected
            if name is None:
                return
            try:
                run = self.store.get_run(name)
            except StoreError as error:
                self.say(str(error))
                return
            self.pending_delete = (name, (run.id, run.created_at))
            self.confirm_text.value = (
                f"<b>delete run {html.escape(name)}</b>, its metrics, games and checkpoint "
                "files? This cannot be undone."
            )
            self.confirm.layout.display = "flex"

    def confirm_delete(self) -> None:
        """The "yes, delete" button: delete the run remembered by ``ask_delete``, only if it
        is still the same run (not one made under its name since); without one, nothing."""
        with self._lock:
            pending, self.pending_delete = self.pending_delete, None
            self.confirm.layout.display = "none"
            if pending is None:
                return
            name, identity = pending
            try:
                run = self.store.get_run(name)
                same = (run.id, run.created_at) == identity
            except StoreError as error:
                self.say(str(error))
                return
            if not same:
                self.say(f"run {name} has changed since you asked: nothing deleted, ask again")
                return
        self.delete(name)

    def delete(self, name: str) -> None:
        """Delete ``name`` for good (the store refuses while it trains); the buttons go
        through ``ask_delete`` and ``confirm_delete``."""
        self._hide_confirm()
        self._act(lambda: self.store.delete_run(name), f"deleted {name}")

    def _hide_confirm(self) -> None:
        with self._lock:
            self.pending_delete = None
            self.confirm.layout.display = "none"

    def _act(self, change, done: str) -> None:
        try:
            change()
        except (StoreError, ValueError) as error:
            self.say(str(error))
            return
        self.say(done)
        self.refresh()  # drops from the overlay a run renamed or deleted here

    def _row(self, name: str | None) -> RunRow | None:
        return next((row for row in self.rows if row.name == name), None)

    def _select(self, name: str | None) -> None:
        """Make ``name`` the run the buttons act on, if it is a run read from the store."""
        self.selected = name if self._row(name) is not None else None

    def _source(self, name: str) -> StoreSource:
        if name in self.compared:
            return self.compared[name][0]
        return StoreSource(self.store, name)

    def _on_filter(self) -> None:
        with self._lock:
            if not self._rendering:
                self._render()

    def _on_compare(self) -> None:
        with self._lock:
            if self._rendering:
                return
            names = list(self.compare.value)[:MAX_COMPARED]
            if len(self.compare.value) > MAX_COMPARED:
                self.say(f"at most {MAX_COMPARED} runs are overlaid: the first are shown")
            for name in list(self.compared):
                if name not in names:
                    del self.compared[name]
            for name in names:
                if name not in self.compared:
                    try:
                        source = StoreSource(self.store, name)
                    except StoreError as error:
                        self.say(str(error))
                        continue
                    history = RunHistory(name, capacity=10 * self.full_points)
                    history.absorb(source.poll())
                    self.compared[name] = (source, history)
            self.compared = {name: self.compared[name] for name in names if name in self.compared}
            self.table.value = runs_table_html(self.shown, self.compare.value, self.link)
            self._render_overlay()

    def _on_groups(self) -> None:
        with self._lock:
            if self._rendering:
                return
            if len(self.compare_groups.value) > MAX_COMPARED:
                self.say(f"at most {MAX_COMPARED} groups are overlaid: the first are shown")
            self._follow_groups(poll=False)
            self._render_overlay()

    def overlay_groups(self, groups: list[SweepGroup]) -> None:
        """Overlay ``groups`` (the sweep panel's "overlay groups"), in place of those shown."""
        with self._lock:
            offered = {value for _, value in self.compare_groups.options}
            chosen = tuple(g.id for g in groups if g.id in offered)
            self.compare_groups.value = chosen[:MAX_COMPARED]

    def _on_sweep_change(self) -> None:
        """The sweep panel's choice or action: read again now."""
        self.refresh()

    def _on_choose(self) -> None:
        with self._lock:
            self._select(self.chosen.value)
            row = self._row(self.selected)
            self.new_name.value = row.name if row else ""
            self.tags.value = ", ".join(row.tags) if row else ""
            self.note.value = row.note if row else ""
            self._hide_confirm()
            if not self._rendering:
                self._render_chosen()

    def _on_option(self) -> None:
        with self._lock:
            if not self._rendering:
                self._render_overlay()

    def _resized(self, change) -> None:
        """Phone or wider page: see ``view_for_width``."""
        with self._lock:
            view = view_for_width(self.view, change["new"], self.full_points, self.phone_points)
            if view != self.view:
                self.view = view
                self.metrics_panel.invalidate()
                self._render_overlay()


def _set_choices(dropdown: widgets.Dropdown, any_label: str, values) -> None:
    """Options "any" (value "": a Dropdown shows None as no choice at all) + sorted
    ``values``, keeping the selection while it is still offered."""
    options = [(any_label, ""), *((str(v), v) for v in sorted(values))]
    if list(dropdown.options) == options:
        return
    value = dropdown.value
    dropdown.options = options
    dropdown.value = value if value in [v for _, v in options] else ""


def _group_choice(group: SweepGroup) -> str:
    """A group as the "groups" list offers it: ``s1: ppo.learning-rate=3e-4``."""
    return f"{group.sweep}: {group_label(group.setting)}"


def _grow(basis: int) -> widgets.Layout:
    return widgets.Layout(width="auto", min_width="0", flex=f"1 1 {basis}px")
