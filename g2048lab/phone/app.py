"""Voila with the PWA routes at the root: ``/sw.js`` (with ``Service-Worker-Allowed: /``),
``/manifest.webmanifest``, ``/offline.html`` and ``/summary.json[?run=NAME]``; a 403 on every
route for a request whose ``Host`` is not this machine; a 404 for template static paths outside
``static/``.

Run as ``python -m g2048lab.phone.app NOTEBOOK [voila options]`` (``g2048lab dashboard`` does,
with ``JUPYTER_PATH`` set so that Voila finds the ``g2048lab`` template, and the token or the
password hash in ``G2048LAB_DASHBOARD_TOKEN`` / ``G2048LAB_DASHBOARD_PASSWORD_HASH``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys

from jupyter_server import DEFAULT_STATIC_FILES_PATH
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httputil import HTTPServerRequest, split_host_and_port
from tornado.routing import Matcher, Rule
from voila.app import Voila
from voila.static_file_handler import TemplateStaticFileHandler

from . import PASSWORD_HASH_ENV, STATIC_DIR, TOKEN_ENV

SCORE_POINTS = 120  # points of the offline page's score chart
LISTED_RUNS = 50  # runs the offline page lists


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
    """A run's summary as JSON, for the offline page: ``?run=NAME``'s, else the latest
    run's. It needs the token (or the login cookie) when the server has one; no kernel is
    started."""

    def get(self) -> None:
        if self.current_user is None:
            raise web.HTTPError(403)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(summary(run=self.get_argument("run", None) or None)))


class TemplateStaticHandler(TemplateStaticFileHandler):
    """Voila's ``/voila/templates/NAME/static/PATH``, with a 404 for any other path: Voila's
    own handler answers ``NAME/static/..%2f``, ``NAME`` alone or a NUL with a 500 and a
    traceback (it asserts on the path; nothing outside ``static/`` is served either way)."""

    def parse_url_path(self, url_path: str) -> str:
        parts = os.path.normpath(url_path).split(os.sep)
        if "\0" in url_path or len(parts) < 3 or parts[0] in ("", "..") or parts[1] != "static":
            raise web.HTTPError(404)
        return super().parse_url_path(url_path)


def host_is_this_machine(host: str, lan: bool) -> bool:
    """Whether a request's ``Host`` names this machine: ``localhost`` or a loopback address,
    with or without a port; with ``lan``, also one of this machine's own addresses or names.

    ``localhost:8866``, ``127.0.0.1``, ``[::1]:8866`` -> True; ``evil.example:8866`` -> False
    """
    name = split_host_and_port(host.lower())[0].removeprefix("[").removesuffix("]")
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name == "localhost" or (lan and name in _own_names())
    return address.is_loopback or (lan and _own_address(address))


def _own_names() -> set[str]:
    """The names a phone on the LAN may know this machine by: its host name, short or mDNS."""
    name = socket.gethostname().lower()
    short = name.split(".")[0]
    return {name, short, f"{short}.local"}


def _own_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``address`` is on one of this machine's interfaces: only then can a socket be
    bound to it (asked at each request, so a new DHCP lease counts at once)."""
    if address.is_unspecified or address.is_multicast:
        return False
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True


class ForeignHost(Matcher):
    """Matches a request whose ``Host`` is not this machine: DNS rebinding, where a page of
    another site points its own name at this server and reads it as same-origin, still sends
    that site's name. Jupyter's own check (``JupyterHandler.check_host``) is off in Voila,
    which sets ``allow_remote_access=True``; it would miss the handlers that are not
    ``JupyterHandler``s (static files, the app shell) and refuse the LAN address with --lan.
    This rule comes before every route."""

    def __init__(self, lan: bool):
        self.lan = lan

    def match(self, request: HTTPServerRequest) -> dict | None:
        return None if host_is_this_machine(request.host, self.lan) else {}


class ForeignHostHandler(web.RequestHandler):
    """403 for every method, the kernel websocket's handshake included."""

    def prepare(self) -> None:
        raise web.HTTPError(403, "Host %r is not this machine", self.request.host)


def summary(runs_dir: str | None = None, run: str | None = None) -> dict:
    """What the offline page shows: ``{run, status, env_steps, best_score, max_tile,
    updated_at, scores: [[steps, score]], runs: [{name, status, ...}]}`` of run ``run``, else
    the latest in ``G2048LAB_RUNS_DIR``; ``runs`` lists the most recent ``LISTED_RUNS``.
    An unknown run gives ``{"run": None, "error": ...}``."""
    from ..store import RunNotFound, RunStore

    store = RunStore(runs_dir or os.environ.get("G2048LAB_RUNS_DIR", "checkpoints"), create=False)
    try:
        info = store.get_run(run) if run else store.latest_run()
    except RunNotFound as error:
        return {"run": None, "error": str(error)}
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
    listed = sorted(store.list_runs(), key=lambda r: r.updated_at, reverse=True)[:LISTED_RUNS]
    return {
        "run": info.name,
        "status": info.status,
        "env_steps": info.env_steps,
        "best_score": info.best_score,
        "max_tile": info.max_tile,
        "updated_at": info.updated_at,
        "scores": points,
        "runs": [
            {
                "name": r.name,
                "status": r.status,
                "learner": r.learner,
                "best_score": r.best_score,
                "max_tile": r.max_tile,
                "env_steps": r.env_steps,
                "updated_at": r.updated_at,
            }
            for r in listed
        ],
    }


class PhoneVoila(Voila):
    """Voila plus the PWA routes, which come first so that nothing else claims them, behind a
    check of the ``Host``; the token and the password hash come from the environment."""

    def initialize(self, argv: list[str] | None = None) -> None:
        super().initialize(argv)
        # popped: the kernels (they inherit this environment) have no use for them
        token = os.environ.pop(TOKEN_ENV, None)
        hashed_password = os.environ.pop(PASSWORD_HASH_ENV, None)
        if token:
            self.token = token
        if hashed_password:
            self.config.PasswordIdentityProvider.hashed_password = hashed_password
        # SameSite=Lax: what a page of another site sends here (a form POST, an image, a frame,
        # a websocket) goes without the login cookie; following a link to here keeps it
        section = self.config.IdentityProvider
        section.cookie_options = {"samesite": "Lax", **section.get("cookie_options", {})}

    def init_settings(self) -> dict:
        # jupyter_server's error pages (a 403 or 404 of a JupyterHandler) link their styles with
        # static_url(), which needs a static_path: without one, each error logs a traceback
        # instead of sending its page. /voila/static/ serves that folder (Voila adds it).
        return {
            **super().init_settings(),
            "static_path": DEFAULT_STATIC_FILES_PATH,
            "static_url_prefix": url_path_join(self.base_url, "/voila/static/"),
        }

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
        handlers.append((route("/voila/templates/(.*)"), TemplateStaticHandler))
        guard = Rule(ForeignHost(lan=not _loopback_only(self.ip)), ForeignHostHandler)
        return [guard, *handlers, *super().init_handlers()]


def _loopback_only(ip: str) -> bool:
    """Whether a server bound to ``ip`` is reachable from this machine only."""
    try:
        return ip == "localhost" or ipaddress.ip_address(ip).is_loopback
    except ValueError:  # a host name
        return False


def main(argv: list[str] | None = None) -> None:
    PhoneVoila.launch_instance(argv=sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
