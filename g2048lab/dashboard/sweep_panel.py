"""A sweep in the runs browser, and so on the phone's home screen: its status, its trials by
group with their state and progress, and buttons that stop or resume the whole sweep.

    panel = SweepPanel(store, lock, on_change=..., on_overlay=...)  # main thread
    state = panel.read(rows)    # any thread, outside the lock: reads what changed
    panel.render(state)         # under the owner's lock: assigns only what changed
    panel.box                   # the titled widget, hidden while the store has no sweep

Which sweep the buttons act on is kernel state: ``selected`` (its name and store id), set
when the page's chooser changes and checked against the sweeps read, never a value the page
could set on a button (a tooltip, a description). "stop sweep" acts through ``stop_sweep``
(a live driver is asked; without one the trials are), "resume sweep" through
``resume_in_background`` (a driver process of its own, which outlives this kernel).

What a refresh reads: the sweeps, and a sweep's trials again only when its row changed (the
store bumps it at every trial's change). The chosen sweep's ``overview`` reads every trial's
metric rows (for its final value), so it is read again only when the sweep or one of its runs
changed, and then at most once per 20 times its own cost: at most 5% of the kernel's time,
whatever the sweep's size (a 12-trial sweep of 3,000 rows each: 0.2 s, every 4 s). An idle
sweep sends nothing.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from subprocess import Popen
from urllib.parse import quote

import ipywidgets as widgets

from ..store import RunStore, StoreError
from ..sweeps.control import resume_in_background, stop_sweep
from ..sweeps.overview import overview
from ..sweeps.sweep_store import SWEEPS_FOLDER, SweepInfo, SweepStore, Trial
from .groups import group_label
from .header import BADGE_COLOURS
from .layout import button, panel, toolbar
from .runs_table import RunRow

__all__ = ["SweepGroup", "SweepPanel", "SweepState", "sweep_html"]

COST_SHARE = 20  # an overview is read at most once per 20 times what reading it took
STOPPABLE = ("running", "interrupted")
RESUMABLE = ("stopped", "interrupted")
TRIAL_COLOURS = {
    "queued": "#bbada0",
    "running": BADGE_COLOURS["running"],
    "finished": BADGE_COLOURS["finished"],
    "failed": BADGE_COLOURS["failed"],
    "pruned": "#8f7a66",
}


@dataclass(frozen=True)
class SweepGroup:
    """One setting of a sweep and the runs of its trials that exist, in trial order."""

    sweep: str
    key: str
    setting: dict
    runs: tuple[str, ...]

    @property
    def id(self) -> str:
        """``SWEEP/KEY``, unique in a store (a sweep's name has no ``/``)."""
        return f"{self.sweep}/{self.key}"


@dataclass(frozen=True)
class SweepState:
    """What one refresh read: the sweeps (newest first), every sweep's groups, and the
    overview of the sweep shown (None: none yet)."""

    sweeps: list[SweepInfo] = field(default_factory=list)
    groups: list[SweepGroup] = field(default_factory=list)
    overview: dict | None = None


class SweepPanel:
    """See the module docstring. ``on_change()``: the chooser changed, the owner refreshes;
    ``on_overlay(groups)``: overlay those groups (the "overlay groups" button); ``link``: as
    for ``RunsBrowser``, a trial's run name links there."""

    def __init__(
        self,
        store: RunStore,
        lock: threading.RLock,
        *,
        on_change: Callable[[], None],
        on_overlay: Callable[[list[SweepGroup]], None],
        link: str | None = None,
    ):
        self.store, self.sweeps = store, SweepStore(store)
        self.link = link
        self._lock = lock
        self.on_change, self.on_overlay = on_change, on_overlay
        self.selected: tuple[str, int] | None = None  # (name, id): what the buttons act on
        self.state = SweepState()
        self.drivers: dict[str, Popen] = {}  # drivers started here, by sweep
        self._trials: dict[str, tuple[tuple, list[Trial]]] = {}  # name -> (row, trials)
        self._overview: tuple[tuple, dict] | None = None  # (what it was read at, overview)
        self._overview_at = 0.0  # time.monotonic() when last read
        self._overview_cost = 0.0  # seconds that reading took
        self._force = False  # read the overview at the next refresh, whatever it costs
        self._reading = threading.Lock()
        self._rendering = False

        self.chooser = widgets.Dropdown(
            description="sweep",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="auto", min_width="0", flex="0 1 360px"),
        )
        self.chooser.add_class("g2048lab-sweep-chooser")
        self.chooser.observe(lambda _: self._on_choose(), "value")
        self.view = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.view.add_class("g2048lab-sweep-view")
        self.stop_button = button("stop sweep", "stop every trial (each saves a checkpoint)")
        self.resume_button = button("resume sweep", "start a driver: the sweep goes on")
        self.overlay_button = button("overlay groups", "chart each group: mean and 95% band")
        self.stop_button.on_click(lambda _: self.stop())
        self.resume_button.on_click(lambda _: self.resume())
        self.overlay_button.on_click(lambda _: self.overlay())
        self.message = widgets.HTML()
        self.message.add_class("g2048lab-notes")
        self.box = panel(
            "sweeps",
            toolbar(self.chooser),
            self.view,
            toolbar(self.stop_button, self.resume_button, self.overlay_button),
            self.message,
        )
        self.box.add_class("g2048lab-sweep-panel")
        self.box.layout.display = "none"

    # --- reading (any thread, no widget) -------------------------------------------------

    def read(self, rows: Sequence[RunRow]) -> SweepState:
        """The sweeps, their groups and the shown sweep's overview (see the module
        docstring for when it is read again)."""
        with self._reading:
            for name, process in list(self.drivers.items()):
                if process.poll() is not None:  # reaped: no zombie left behind
                    del self.drivers[name]
            sweeps = self.sweeps.list_sweeps()
            existing = {row.name: row for row in rows}
            groups, trials = [], {}
            for sweep in sweeps:
                trials[sweep.name] = self._trials_of(sweep)
                groups += _groups(sweep.name, trials[sweep.name], existing)
            self._trials = {name: self._trials[name] for name in trials}
            shown = self._shown(sweeps)
            view = None
            if shown is not None:
                view = self._read_overview(shown, trials[shown.name], existing)
            self.state = SweepState(sweeps, groups, view)
            return self.state

    def _trials_of(self, sweep: SweepInfo) -> list[Trial]:
        row = (sweep.id, sweep.updated_at, sweep.status)
        cached = self._trials.get(sweep.name)
        if cached is None or cached[0] != row:
            cached = self._trials[sweep.name] = (row, self.sweeps.trials(sweep.name))
        return cached[1]

    def _shown(self, sweeps: list[SweepInfo]) -> SweepInfo | None:
        """The chosen sweep; before a choice, the newest running one, else the newest."""
        chosen = self.selected[0] if self.selected else None
        for sweep in sweeps:
            if sweep.name == chosen:
                return sweep
        running = [s for s in sweeps if s.status == "running"]
        return (running or sweeps or [None])[0]

    def _read_overview(
        self, sweep: SweepInfo, trials: list[Trial], existing: dict[str, RunRow]
    ) -> dict:
        runs = tuple(
            (row.name, row.status, row.env_steps, row.updated_at)
            for row in (existing.get(t.run_name) for t in trials)
            if row is not None
        )
        at = ((sweep.id, sweep.status, sweep.updated_at), runs)
        if self._overview is not None:
            (sweep_was, runs_were), view = self._overview
            if (sweep_was, runs_were) == at:
                return view
            wait = COST_SHARE * self._overview_cost - (time.monotonic() - self._overview_at)
            if sweep_was == at[0] and not self._force and wait > 0:
                return view  # only its runs moved on: read again once that is cheap enough
        self._force = False
        started = time.monotonic()
        view = overview(self.store, sweep.name)
        self._overview_at = time.monotonic()
        self._overview_cost = self._overview_at - started
        self._overview = (at, view)
        return view

    # --- drawing (under the owner's lock) ------------------------------------------------

    def render(self, state: SweepState) -> None:
        """Show ``state``; a value is assigned only when it changed."""
        self._rendering = True
        try:
            names = [sweep.name for sweep in state.sweeps]
            self.box.layout.display = None if names else "none"
            chosen = self.selected[0] if self.selected else None
            if list(self.chooser.options) != names:
                self.chooser.options = names  # selects the first: the choice is put back
            if chosen not in names:  # no choice yet: the sweep shown by default
                chosen = state.overview["name"] if state.overview else None
            if chosen in names and self.chooser.value != chosen:
                self.chooser.value = chosen
            self._select(state)
            view = state.overview
            self.view.value = sweep_html(view, self.link) if view else ""
            # the buttons wait for the chosen sweep's own overview (the next refresh)
            chosen = self.selected[0] if self.selected else None
            shown = view["name"] if view and view["name"] == chosen else None
            status = view["status"] if shown else None
            self.stop_button.disabled = status not in STOPPABLE
            self.resume_button.disabled = status not in RESUMABLE or shown in self.drivers
            self.overlay_button.disabled = not any(
                g.sweep == shown and g.runs for g in state.groups
            )
        finally:
            self._rendering = False

    def _select(self, state: SweepState) -> None:
        """The chooser's sweep becomes the one the buttons act on, if it is a sweep read."""
        sweep = next((s for s in state.sweeps if s.name == self.chooser.value), None)
        self.selected = (sweep.name, sweep.id) if sweep is not None else None

    # --- callbacks (any thread) ----------------------------------------------------------

    def say(self, text: str) -> None:
        with self._lock:
            self.message.value = f'<div class="g2048lab-notes">{html.escape(text)}</div>'

    def stop(self) -> str:
        """The "stop sweep" button: stop the selected sweep (returns at once; each trial
        saves a checkpoint as it stops)."""
        sweep = self._target()
        if sweep is None:
            return ""
        try:
            result = stop_sweep(self.store, sweep.name, wait=False)
        except StoreError as error:
            result = str(error)
        return self._done(result)

    def resume(self) -> str:
        """The "resume sweep" button: start a driver for the selected sweep, if it is
        stopped or its driver has gone."""
        sweep = self._target()
        if sweep is None:
            return ""
        if sweep.status not in RESUMABLE:
            return self._done(f"sweep {sweep.name} is {sweep.status}: nothing to resume")
        try:
            process = resume_in_background(self.store.root, sweep.name)
        except StoreError as error:
            return self._done(str(error))
        self.drivers[sweep.name] = process
        log = self.store.root / SWEEPS_FOLDER / sweep.name / "driver.log"
        return self._done(
            f"sweep {sweep.name}: a driver started (pid {process.pid}), its log {log}"
        )

    def overlay(self) -> None:
        """The "overlay groups" button: chart the selected sweep's groups."""
        with self._lock:
            name = self.selected[0] if self.selected else None
            groups = [g for g in self.state.groups if g.sweep == name and g.runs]
        if groups:
            self.on_overlay(groups)

    def _target(self) -> SweepInfo | None:
        """The selected sweep as the store has it now, if it is still that sweep."""
        with self._lock:
            selected = self.selected
        if selected is None:
            return None
        name, sweep_id = selected
        try:
            sweep = self.sweeps.get_sweep(name)
        except StoreError as error:
            self.say(str(error))
            return None
        if sweep.id != sweep_id:
            self.say(f"sweep {name} has changed since it was shown: nothing done, look again")
            return None
        return sweep

    def _done(self, result: str) -> str:
        self.say(result)
        self._force = True
        self.on_change()
        return result

    def _on_choose(self) -> None:
        with self._lock:
            if self._rendering:
                return
            self._select(self.state)
            self._force = True
        self.on_change()


def _groups(sweep: str, trials: list[Trial], existing: dict[str, RunRow]) -> list[SweepGroup]:
    """The sweep's groups, in the order of their first trial, with their runs that exist."""
    found: dict[str, tuple[dict, list[str]]] = {}
    for trial in trials:
        _, runs = found.setdefault(trial.group, (trial.setting, []))
        if trial.run_name in existing:
            runs.append(trial.run_name)
    return [SweepGroup(sweep, key, setting, tuple(runs)) for key, (setting, runs) in found.items()]


def sweep_html(view: dict, link: str | None = None) -> str:
    """An ``overview`` as HTML: the sweep's status and counts, then each group (its setting,
    how many trials finished, the mean final value) and its trials, one line each with a
    progress bar. One column that wraps: nothing scrolls sideways on a phone."""
    status = view["status"]
    counts = " · ".join(f"{n} {state}" for state, n in view["counts"].items() if n)
    driver = view["driver"]
    facts = [f"{len(view['groups'])} groups", f"{len(view['seeds'])} seeds"]
    if driver is not None:
        facts.append(f"driver pid {driver['pid']}")
    head = (
        f'<div class="g2048lab-sweep-head"><b>{html.escape(view["name"])}</b> '
        f"{_badge(status, BADGE_COLOURS.get(status, '#555'))} "
        f'<span class="g2048lab-sweep-facts">{html.escape(" · ".join(facts))}</span></div>'
        f'<div class="g2048lab-sweep-counts">{html.escape(counts or "no trials")}</div>'
    )
    groups = "".join(_group_html(group, view["metric"], link) for group in view["groups"])
    return (
        f'{SWEEP_STYLE}<div class="g2048lab-sweep" data-status="{html.escape(status)}">'
        f'{head}<div class="g2048lab-sweep-groups">{groups}</div></div>'
    )


def _group_html(group: dict, metric: str, link: str | None) -> str:
    trials = group["trials"]
    finished = sum(t["state"] == "finished" for t in trials)
    facts = f"{finished} of {len(trials)} finished"
    finals = [t["final"] for t in trials if t["final"] is not None]
    if group["final_mean"] is not None:
        facts += f" · {metric} {group['final_mean']:,.4g} (mean of {len(finals)})"
    lines = "".join(_trial_html(trial, link) for trial in trials)
    return (
        f'<div class="g2048lab-sweep-group" data-group="{html.escape(group["key"])}">'
        f'<div class="g2048lab-sweep-setting"><b>{html.escape(group_label(group["group"]))}</b>'
        f' <span class="g2048lab-sweep-facts">{html.escape(facts)}</span></div>{lines}</div>'
    )


def _trial_html(trial: dict, link: str | None) -> str:
    name = html.escape(trial["run"])
    if link is not None:
        href = html.escape(link.format(name=quote(trial["run"])))
        name = f'<a class="g2048lab-run-link" href="{href}">{name}</a>'
    state = trial["state"]
    colour = TRIAL_COLOURS.get(state, "#555")
    progress = trial["progress"]
    share = "–" if progress is None else f"{100 * progress:.0f}%"
    width = 0.0 if progress is None else 100 * progress
    error = trial["error"]
    why = (
        f'<div class="g2048lab-trial-error">{html.escape(error.splitlines()[-1][:200])}</div>'
        if error
        else ""
    )
    return (
        f'<div class="g2048lab-trial" data-run="{html.escape(trial["run"])}" '
        f'data-state="{html.escape(state)}"><div class="g2048lab-trial-line">'
        f'<span class="g2048lab-trial-name">{name}</span>'
        f'<span class="g2048lab-sweep-facts">seed {trial["seed"]} · '
        f"{trial['env_steps']:,} steps</span>"
        f'<span class="g2048lab-trial-state">{_badge(state, colour)} {share}</span></div>'
        f'<div class="g2048lab-bar"><div style="width:{width:.1f}%;background:{colour}">'
        f"</div></div>{why}</div>"
    )


def _badge(text: str, colour: str) -> str:
    return (
        f'<span class="g2048lab-status" data-status="{html.escape(text)}" '
        f'style="background:{colour}">{html.escape(text)}</span>'
    )


# Groups side by side while they fit (320 px each), one column on a phone; a trial's line
# wraps before it would scroll.
SWEEP_STYLE = """<style>
.g2048lab-sweep { font-size: 0.95em; }
.g2048lab-sweep .g2048lab-status { color: #fff; border-radius: 10px; padding: 1px 8px; }
.g2048lab-sweep-head, .g2048lab-sweep-counts { margin: 2px 0; overflow-wrap: anywhere; }
.g2048lab-sweep-facts { color: #8f7a66; }
.g2048lab-sweep-groups { display: grid; gap: 8px 16px; margin-top: 6px;
  grid-template-columns: repeat(auto-fill, minmax(min(100%, 320px), 1fr)); }
.g2048lab-sweep-group { min-width: 0; border-top: 1px solid #e5e0d8; padding-top: 4px; }
.g2048lab-sweep-setting { overflow-wrap: anywhere; margin-bottom: 2px; }
.g2048lab-trial { margin: 4px 0; }
.g2048lab-trial-line { display: flex; flex-wrap: wrap; gap: 0 8px; align-items: baseline; }
.g2048lab-trial-name { font-weight: 700; }
.g2048lab-trial-name a { display: inline-block; min-height: 32px; padding: 6px 0; }
.g2048lab-trial-state { margin-left: auto; white-space: nowrap; }
.g2048lab-bar { height: 6px; background: #eee4da; border-radius: 3px; overflow: hidden; }
.g2048lab-bar > div { height: 100%; }
.g2048lab-trial-error { color: #c62828; font-size: 0.9em; overflow-wrap: anywhere; }
</style>"""
