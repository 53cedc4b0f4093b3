"""The thread that keeps a view live, and the widget that tells it a page is looking.

``Refresher(refresh, interval, idle_after_s=..., refresh_for_s=...)`` calls ``refresh()``
every ``interval`` seconds on a daemon thread until ``refresh`` returns True (the view has
nothing more to show), ``refresh_for_s`` has passed, or ``stop()``. While no page has
reported through ``presence`` for ``idle_after_s`` seconds it sends nothing, so the kernel
of a closed Voila page goes idle and the server culls it. The dashboard and the runs
browser both use it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import anywidget
import traitlets

__all__ = ["Presence", "Refresher"]


class Presence(anywidget.AnyWidget):
    """An invisible widget whose view bumps ``beat`` every 5 s while a page shows it, and
    reports the page's width in CSS px (sent only when it changes).

    It also keeps the page's Plotly figures as wide as their panels: a figure first drawn
    while its panel was hidden (a panel without data yet) measures 0 px and falls back to
    700 px, and FigureWidget re-measures only on a window resize. So a ResizeObserver on
    the panels sends one (debounced) resize event whenever a panel's size changes.
    """

    _esm = """
    function render({ model, el }) {
      const beat = () => {
        model.set("beat", Date.now());
        model.set("width", window.innerWidth);
        model.save_changes();
      };
      beat();
      const timer = setInterval(beat, 5000);
      let pending = null, widths = new WeakMap();
      const resized = new ResizeObserver((entries) => {
        // widths only: a figure that grows taller must not set off another round
        const changed = entries.some((e) => widths.get(e.target) !== e.contentRect.width);
        entries.forEach((e) => widths.set(e.target, e.contentRect.width));
        if (!changed) return;
        clearTimeout(pending);
        pending = setTimeout(() => window.dispatchEvent(new Event("resize")), 100);
      });
      let scan = null;
      const watch = () => {
        clearTimeout(scan);
        scan = setTimeout(() => document.querySelectorAll(".g2048lab-panel")
          .forEach((panel) => resized.observe(panel)), 200);
      };
      const added = new MutationObserver(watch);
      added.observe(document.body, { childList: true, subtree: true });
      watch();
      return () => {
        clearInterval(timer);
        added.disconnect();
        resized.disconnect();
      };
    }
    export default { render };
    """
    # set by the page only; echo_update=False: the kernel does not send each report back
    # (ipywidgets 8 echoes every change a page makes, to keep its other views in step)
    beat = traitlets.Float(0.0).tag(
        sync=True, echo_update=False
    )  # ms since the epoch, page's clock
    width = traitlets.Int(0).tag(sync=True, echo_update=False)  # CSS px of the page; 0: unknown


class Refresher:
    """See the module docstring. ``on_error(text)`` and ``on_expire()`` let the view say
    what happened (a failed refresh is retried at the next tick)."""

    def __init__(
        self,
        refresh: Callable[[], bool],
        interval: float,
        *,
        idle_after_s: float | None = None,
        refresh_for_s: float | None = None,
        on_error: Callable[[str], None] = lambda text: None,
        on_expire: Callable[[], None] = lambda: None,
    ):
        self.refresh = refresh
        self.interval = interval
        self.idle_after_s = idle_after_s
        self.refresh_for_s = refresh_for_s
        self.on_error = on_error
        self.on_expire = on_expire
        self.presence = Presence()
        self.presence.observe(self._seen, names="beat")
        self.idle_ticks = 0  # passes that sent nothing because no page was shown
        self._last_seen = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def watched(self) -> bool:
        """Whether a page has shown the view lately (always True without idle_after_s)."""
        return self.idle_after_s is None or time.monotonic() - self._last_seen < self.idle_after_s

    def start(self, name: str) -> None:
        if self.running:
            return
        self._stop.clear()
        self._last_seen = time.monotonic()  # displayed: its page gets time to load
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _seen(self, change) -> None:
        self._last_seen = time.monotonic()

    def _loop(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self.interval):
            if not self.watched:
                # nobody looks: send nothing, so the kernel can go idle and be culled
                self.idle_ticks += 1
                continue
            try:
                if self.refresh():
                    return
            except Exception as error:  # show it, keep trying: a store may be busy a moment
                self.on_error(f"refresh failed: {type(error).__name__}: {error}")
            if self.refresh_for_s is not None and time.monotonic() - started > self.refresh_for_s:
                self.on_expire()
                return
