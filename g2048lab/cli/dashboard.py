"""``g2048lab dashboard``: the command line of the phone app's server (phone/serve.py)."""

from __future__ import annotations

from ..phone.serve import cmd_dashboard
from .args import DEFAULT_RUNS_DIR, port_number, positive_int


def add_parser(commands) -> None:
    dashboard = commands.add_parser(
        "dashboard", help="serve the live dashboard (the phone app) with Voila"
    )
    dashboard.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    dashboard.add_argument(
        "--run", dest="run_name", default=None, help="run name (default: the latest run)"
    )
    dashboard.add_argument("--port", type=port_number, default=8866)
    dashboard.add_argument(
        "--lan", action="store_true", help="listen on all interfaces (needs a token or password)"
    )
    secret = dashboard.add_mutually_exclusive_group()
    secret.add_argument("--token", default=None, help="default with --lan: a random one")
    secret.add_argument("--password", action="store_true", help="ask for a login password")
    dashboard.add_argument("--no-browser", action="store_true", help="only print the URL")
    dashboard.add_argument(
        "--cull-idle-s",
        type=positive_int,
        default=300,
        help="shut down the kernel of a closed page after this many idle seconds",
    )
    dashboard.set_defaults(run=cmd_dashboard)
