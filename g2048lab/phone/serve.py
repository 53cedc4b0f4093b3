"""``g2048lab dashboard``: serve ``dashboard.ipynb`` with Voila and the phone-app template.

The server runs in a child process (``python -m g2048lab.phone.app``) in its own session, so
Ctrl-C reaches this process only and Voila is stopped without its y/n prompt.

It needs a token by default, as Jupyter does: without one, any program on this machine can
open a page's kernel websocket and drive its widgets (pause, stop, delete runs). The token
never appears on a command line, which every local user can read (``ps``): it comes from the
environment or a file, goes to the server in the environment, and reaches the browser through
a page only this user can read.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve the dashboard notebook with Voila and the phone-app template; Ctrl-C stops it."""
    import os
    import socket
    import subprocess
    from urllib.parse import urlencode

    from ..store import RunStore
    from . import JUPYTER_DIR, NOTEBOOK, PASSWORD_HASH_ENV, TEMPLATE, TOKEN_ENV

    token, hashed_password = None, None
    if args.password:
        hashed_password = _ask_password()
    else:
        token = dashboard_token(args.token, args.token_file, args.no_token, args.lan)
    runs_dir = Path(args.runs_dir).expanduser().resolve()
    store = RunStore(runs_dir, create=False)  # a reader: a mistyped folder is one line
    if args.run_name is not None:
        store.get_run(args.run_name)  # raises RunNotFound with the known names
    host = "0.0.0.0" if args.lan else "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, args.port))
        except OSError as error:
            raise ValueError(
                f"port {args.port} is busy ({error.strerror}): pick another with --port"
            ) from None
    command = [
        sys.executable,
        "-m",
        "g2048lab.phone.app",
        str(NOTEBOOK),
        "--no-browser",
        f"--port={args.port}",
        "--Voila.port_retries=0",
        f"--Voila.ip={host}",
        f"--template={TEMPLATE}",
        # the kernel of a closed page idles once its dashboard stops refreshing: cull it
        f"--MappingKernelManager.cull_idle_timeout={args.cull_idle_s}",
        f"--MappingKernelManager.cull_interval={max(1, min(60, args.cull_idle_s // 2))}",
        "--MappingKernelManager.cull_connected=False",
    ]
    env = dict(os.environ)
    # secrets in the environment, which only this user can read (argv: every user, with ps)
    for name, secret in ((TOKEN_ENV, token), (PASSWORD_HASH_ENV, hashed_password)):
        if secret:
            env[name] = secret
        else:
            env.pop(name, None)
    env["JUPYTER_PATH"] = os.pathsep.join(
        [str(JUPYTER_DIR), *filter(None, [os.environ.get("JUPYTER_PATH")])]
    )
    env["G2048LAB_RUNS_DIR"] = str(runs_dir)
    # dashboard.ipynb stops refreshing this long after its page last reported
    env["G2048LAB_IDLE_AFTER_S"] = str(viewer_idle_after_s(args.cull_idle_s))

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    # its own session: Ctrl-C reaches us only, and we stop Voila without its y/n prompt
    server = subprocess.Popen(command, env=env, cwd=str(NOTEBOOK.parent), start_new_session=True)
    redirect = None
    try:
        if not _wait_for_port("127.0.0.1", args.port, server, timeout=60):
            print("g2048lab dashboard: error: Voila did not start", file=sys.stderr)
            return 1
        # the run's page is a deep link into the app; the home page lists every run
        parameters = {"run": args.run_name, "token": token}
        query = urlencode({key: value for key, value in parameters.items() if value})
        query = f"?{query}" if query else ""
        local = f"http://127.0.0.1:{args.port}/{query}"
        what = f"run {args.run_name}" if args.run_name else "every run"
        print(f"dashboard of {what} in {runs_dir}: {local}", flush=True)
        if args.lan:
            lan = f"http://{_lan_address()}:{args.port}/{query}"
            print(f"on the LAN (phone): {lan}", flush=True)
            _print_qr(lan)
        if token is None and hashed_password is None:
            print(
                "no token (--no-token): any program on this machine can control and delete runs",
                flush=True,
            )
        print("Ctrl-C stops the dashboard (never the training run)", flush=True)
        if not args.no_browser:
            redirect = _open_browser(local)
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if redirect is not None:
            redirect.unlink(missing_ok=True)
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


def dashboard_token(
    on_command_line: str | None, token_file: str | None, no_token: bool, lan: bool
) -> str | None:
    """The server's token: the one in ``token_file``, else in $G2048LAB_DASHBOARD_TOKEN, else a
    random one; None with ``no_token`` (refused with ``lan``). A token given on the command
    line is refused: ``ps`` shows it to every user of the machine."""
    import os
    import secrets

    from . import TOKEN_ENV

    if on_command_line is not None:
        raise ValueError(
            "--token on the command line is visible to every user of this machine (ps): "
            f"put the token in ${TOKEN_ENV} or in a file given with --token-file"
        )
    if no_token:
        if lan:
            raise ValueError("--lan needs a token or a password: leave out --no-token")
        return None
    if token_file is not None:
        return _read_token_file(Path(token_file).expanduser())
    return os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)


def _read_token_file(path: Path) -> str:
    """The first line of ``path``, a file that only its owner may read."""
    import stat

    try:
        mode = path.stat().st_mode
        token = path.read_text().strip().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not text"
        raise ValueError(f"cannot read the token file {path} ({reason})") from None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        raise ValueError(f"the token file {path} is readable by other users: chmod 600 {path}")
    if not token or not token[0].strip():
        raise ValueError(f"the token file {path} is empty: write the token on its first line")
    return token[0].strip()


def _open_browser(url: str) -> Path | None:
    """Open ``url`` through a page that only this user can read and that redirects to it, as
    Jupyter does: a browser started with the URL as an argument would show the token to every
    user (``ps``). Returns the page, to delete when the dashboard stops."""
    import html
    import os
    import tempfile
    import webbrowser

    from jupyter_core.paths import jupyter_runtime_dir

    folder = Path(jupyter_runtime_dir())
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix="g2048lab-dashboard-", suffix=".html", dir=folder)
    except OSError:
        print("(open the URL above in a browser)", flush=True)
        return None
    target = html.escape(url, quote=True)
    with os.fdopen(handle, "w") as page:  # mkstemp: mode 0600
        page.write(
            f'<!doctype html><meta http-equiv="refresh" content="0;url={target}">'
            f'<a href="{target}">open the g2048lab dashboard</a>'
        )
    webbrowser.open(Path(name).as_uri())
    return Path(name)


def viewer_idle_after_s(cull_idle_s: int) -> int:
    """Seconds without a page's report (one every 5 s) after which a viewer kernel stops
    pushing updates: 60, or down to 15 when kernels are culled sooner, so that a closed
    page's kernel is shut down about ``idle + cull_idle_s`` seconds after it closed."""
    return max(15, min(60, cull_idle_s))


def _ask_password() -> str:
    import getpass

    from jupyter_server.auth.security import passwd

    first = getpass.getpass("dashboard password: ")
    if not first or getpass.getpass("again: ") != first:
        raise ValueError("the passwords are empty or differ")
    return passwd(first)


def _wait_for_port(host: str, port: int, server, timeout: float) -> bool:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.2)
    return False


def _lan_address() -> str:
    """This machine's address on the default route (a UDP connect sends nothing)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            return probe.getsockname()[0]
        except OSError:
            return socket.gethostbyname(socket.gethostname())


def _print_qr(text: str) -> None:
    try:
        import qrcode
    except ImportError:
        return
    code = qrcode.QRCode(border=1)
    code.add_data(text)
    code.print_ascii(out=sys.stdout, invert=True)
    sys.stdout.flush()
