"""``g2048lab dashboard``: the command line of the phone app's server (phone/serve.py)."""

from __future__ import annotations

import argparse

from ..options.arg_types import DEFAULT_RUNS_DIR, port_number, positive_int
from ..phone import TOKEN_ENV
from ..phone.serve import cmd_dashboard

EPILOG = f"""\
The dashboard needs a token by default, as Jupyter does: a random one, printed in its URL
(the LAN URL and its QR code too). To choose the token, put it in the environment variable
{TOKEN_ENV} or in a file that only you can read (--token-file),
never on the command line, where every user of the machine sees it (ps). --no-token serves
without one: then any program on this machine can drive the dashboard, pause or stop runs
and delete them."""


def add_parser(commands) -> None:
    dashboard = commands.add_parser(
        "dashboard",
        help="serve the live dashboard (the phone app) with Voila",
        description="Serve the live dashboard (the phone app) with Voila.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dashboard.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    dashboard.add_argument(
        "--run", dest="run_name", default=None, help="run name (default: the latest run)"
    )
    dashboard.add_argument("--port", type=port_number, default=8866)
    dashboard.add_argument(
        "--lan", action="store_true", help="listen on all interfaces (not with --no-token)"
    )
    secret = dashboard.add_mutually_exclusive_group()
    secret.add_argument(
        "--token-file",
        default=None,
        metavar="FILE",
        help=f"read the token from FILE (default: ${TOKEN_ENV}, else a random one)",
    )
    secret.add_argument("--password", action="store_true", help="ask for a login password")
    secret.add_argument(
        "--no-token",
        action="store_true",
        help="serve without a token or password: any local program can control the runs",
    )
    # refused with a message that says where a token goes instead (see cmd_dashboard)
    secret.add_argument("--token", default=None, help=argparse.SUPPRESS)
    dashboard.add_argument("--no-browser", action="store_true", help="only print the URL")
    dashboard.add_argument(
        "--cull-idle-s",
        type=positive_int,
        default=300,
        help="shut down the kernel of a closed page after this many idle seconds",
    )
    dashboard.set_defaults(run=cmd_dashboard)
