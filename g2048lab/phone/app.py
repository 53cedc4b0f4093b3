"""Voila with the PWA routes at the root: ``/sw.js`` (with ``Service-Worker-Allowed: /``),
``/manifest.webmanifest``, ``/offline.html`` and ``/summary.json``.

Run as ``python -m g2048lab.phone.app NOTEBOOK [voila options]`` (``g2048lab dashboard`` does,
with ``JUPYTER_PATH`` set so that Voila finds the ``g2048lab`` template).
"""

from __future__ import annotations

import json
import os
import sys

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web
from voila.app import Voila

from . import STATIC_DIR

SCORE_POINTS = 120  # points of the offline page's score chart


class ShellHandler(web.RequestHandler):
    """One static file of the app shell; public: none of them holds anything secret."""

    def initialize(self, filename: str, content_type: str, headers: dict | None = None):
        self.filename = filename
        self.content_type = content_type
        self.extra_headers = headers or {}

    def get(self) -> None:
        self.set_header("Content-Type", self.content_type)
        self.set_header("Cache-Control", "no-cache")
        for key, value in self.extra_headers.items():
            self.set_header(key, value)
        self.finish((STATIC_DIR / self.filename).read_bytes())


class SummaryHandler(JupyterHandler):
    """The latest run's summary as JSON, for the offline page. It needs the token (or the
    login cookie) when the server has one; no kernel is started."""

    def get(self) -> None:
        if self.current_user is None:
            raise web.HTTPError(403)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(summary()))


def summary(runs_dir: str | None = None, run: str | None = None) -> dict:
    """{run, status, env_steps, best_score, max_tile, updated_at, scores: [[steps, score]]}
    of the run named by ``G2048LAB_RUN``, else the latest in ``G2048LAB_RUNS_DIR``."""
    from ..runs import RunStore

    store = RunStore(runs_dir or os.environ.get("G2048LAB_RUNS_DIR", "checkpoints"))
    name = run or os.environ.get("G2048LAB_RUN") or None
    info = store.get_run(name) if name else store.latest_run()
    if info is None:
        return {"run": None}
    history = [u for u in store.update_history(info.name) if u.score is not None]
    latest = store.latest_update(info.name)
    if (
        latest is not None
        and latest.score is not None
        and (not history or history[-1].timestamp < latest.timestamp)
    ):
        history.append(latest)
    step = max(1, -(-len(history) // SCORE_POINTS))
    points = [[u.env_steps, round(float(u.score), 1)] for u in history[::step]]
    if history and points[-1][0] != history[-1].env_steps:
        points.append([history[-1].env_steps, round(float(history[-1].score), 1)])
    return {
        "run": info.name,
        "status": info.status,
        "env_steps": info.env_steps,
        "best_score": info.best_score,
        "max_tile": info.max_tile,
        "updated_at": info.updated_at,
        "scores": points,
    }


class PhoneVoila(Voila):
    """Voila plus the PWA routes, which come first so that nothing else claims them."""

    def init_handlers(self) -> list:
        def route(path: str) -> str:
            return url_path_join(self.server_url, path)

        shell = [
            ("/sw.js", "sw.js", "application/javascript", {"Service-Worker-Allowed": "/"}),
            ("/manifest.webmanifest", "manifest.webmanifest", "application/manifest+json", None),
            ("/offline.html", "offline.html", "text/html; charset=utf-8", None),
        ]
        handlers = [
            (route(path), ShellHandler, {"filename": f, "content_type": t, "headers": h})
            for path, f, t, h in shell
        ]
        handlers.append((route("/summary.json"), SummaryHandler))
        return handlers + super().init_handlers()


def main(argv: list[str] | None = None) -> None:
    PhoneVoila.launch_instance(argv=sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
