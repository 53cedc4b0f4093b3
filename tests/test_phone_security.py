"""What a security probe of `g2048lab dashboard` found, tried as a client would (no browser).

- DNS rebinding: a page of another site that points its name at 127.0.0.1 sends that name as
  ``Host``; the server answers only this machine's names, with a 403 on every route.
- Secrets: the token and the password hash reach the Voila process in its environment, never
  on its command line (``ps`` shows that to every local user); ``g2048lab dashboard`` itself
  takes the token from its environment.
- The login cookie is ``SameSite=Lax``.
- A traversal on a static route (``..%2f`` and its other spellings) is a 404 or 403, with no
  traceback in the log.

Each test starts its own dashboard of a small made-up run; none trains.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from g2048lab.phone.app import host_is_this_machine
from g2048lab.phone.serve import _lan_address
from g2048lab.store import RunStore

from .factories import training_update
from .helpers import free_port, stop
from .test_phone_app import RUN, TOKEN, NoRedirect, start_dashboard

NO_KERNEL = "/api/kernels/00000000-0000-0000-0000-000000000000"
WEBSOCKET = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A runs folder with run RUN and one update."""
    store = RunStore(tmp_path_factory.mktemp("runs"))
    store.create_run(RUN, config={}, device="cpu")
    store.put_update(RUN, training_update(run_id=RUN, env_steps=4096, status="running"))
    return store.root


@pytest.fixture(scope="module")
def open_server(runs, tmp_path_factory):
    """(port, log, headers) of a dashboard as started by default: loopback only, a token of
    its own, which ``headers`` carry (so what refuses a request here is not the token)."""
    import re

    port = free_port()
    log = tmp_path_factory.mktemp("logs") / "dashboard.log"
    dashboard = start_dashboard(runs, port, log)
    token = re.search(r"http://127\.0\.0\.1:\d+/\?run=\S+&token=(\S+)", log.read_text())
    assert token, log.read_text()
    yield port, log, {"Authorization": f"token {token.group(1)}"}
    stop(dashboard)


def get(port: int, path: str, host: str, **headers: str) -> tuple[int, bytes]:
    """GET ``path`` from 127.0.0.1:``port`` with ``Host: host``: (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Host": host, **headers})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def voila_process(dashboard_pid: int) -> int:
    """The pid of the Voila process that ``g2048lab dashboard`` started (Linux /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if parent == dashboard_pid and b"g2048lab.phone.app" in cmdline:
            return int(stat.parent.name)
    raise AssertionError(f"no Voila process below {dashboard_pid}")


@pytest.mark.parametrize(
    "host, lan, allowed",
    [
        ("localhost:8866", False, True),
        ("LocalHost", False, True),
        ("127.0.0.1:8866", False, True),
        ("127.0.0.1", False, True),
        ("[::1]:8866", False, True),
        ("evil.example:8866", False, False),
        ("evil.example", True, False),
        ("localhost.evil.example:8866", False, False),
        ("127.0.0.1.nip.io:8866", False, False),
        ("203.0.113.7:8866", True, False),  # an address of another machine
        ("0.0.0.0:8866", True, False),
        ("", False, False),
        (f"{socket.gethostname()}:8866", False, False),
        (f"{socket.gethostname()}:8866", True, True),
        (f"{socket.gethostname().split('.')[0]}.local", True, True),
        (f"{_lan_address()}:8866", True, True),
    ],
)
def test_host_names_of_this_machine(host, lan, allowed):
    assert host_is_this_machine(host, lan) is allowed


def test_another_host_name_is_refused_on_every_route(open_server):
    """``curl -H "Host: evil.example:PORT" http://127.0.0.1:PORT/summary.json`` gave the
    run's data; now every route answers 403, and this machine's names still get through."""
    port, _, token = open_server
    routes = [
        "/",
        "/summary.json",
        "/sw.js",
        "/manifest.webmanifest",
        "/offline.html",
        "/login",
        "/voila/templates/g2048lab/static/icon-192.png",
        "/voila/static/voila.js",
        NO_KERNEL,
    ]
    evil = f"evil.example:{port}"
    for path in routes:
        status, body = get(port, path, evil, **token)
        assert status == 403, (path, status)
        assert RUN.encode() not in body
    assert get(port, f"{NO_KERNEL}/channels", evil, **WEBSOCKET, **token)[0] == 403

    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
        status, body = get(port, "/summary.json", host, **token)
        assert status == 200 and RUN.encode() in body, (host, status)
        assert get(port, "/sw.js", host)[0] == 200
        assert get(port, "/voila/templates/g2048lab/static/icon-192.png", host)[0] == 200
        # no such kernel
        assert get(port, f"{NO_KERNEL}/channels", host, **WEBSOCKET, **token)[0] == 404


def test_static_traversal_is_a_404_without_a_traceback(open_server):
    port, log, token = open_server
    template = "/voila/templates/g2048lab/static"
    not_found = [
        f"{template}/..%2f..%2fconf.json",
        f"{template}/..%2f",
        f"{template}/%2e%2e%2f%2e%2e%2fconf.json",
        f"{template}/%2E%2E/%2E%2E/conf.json",
        f"{template}/..%252f..%252fconf.json",  # double-encoded: a file name with %2f in it
        f"{template}/%252e%252e%252fconf.json",
        f"{template}/..%5c..%5cconf.json",
        f"{template}/%00",
        f"{template}/",
        "/voila/templates/..%2f..%2f..%2fetc%2fpasswd",
        "/voila/templates//etc/passwd",
        "/voila/templates/g2048lab",
        "/voila/templates/g2048lab/index.html.j2",
        "/voila/labextensions/..%2f..%2fsetup.py",
    ]
    for path in not_found:
        assert get(port, path, "127.0.0.1", **token)[0] == 404, path
    for path in ("/voila/static/..%2f..%2fapp.py", "/voila/files/..%2f..%2fetc%2fpasswd"):
        assert get(port, path, "127.0.0.1", **token)[0] == 403, path
    # the way to the template's files still works, however it is spelled
    assert get(port, f"{template}/sw.js", "127.0.0.1")[0] == 200
    assert get(port, f"{template}/x%2f..%2fsw.js", "127.0.0.1")[0] == 200
    # tornado logs an uncaught exception before it answers: the log is complete here
    printed = log.read_text(errors="replace")
    assert "Traceback" not in printed and "Uncaught exception" not in printed, printed[-3000:]


def test_token_stays_off_the_command_line_and_the_cookie_is_same_site(runs, tmp_path):
    """The token given in the environment is on neither process's command line."""
    port = free_port()
    dashboard = start_dashboard(runs, port, tmp_path / "dashboard.log", token=TOKEN)
    try:
        for pid in (dashboard.pid, voila_process(dashboard.pid)):
            cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes()
            assert TOKEN.encode() not in cmdline, cmdline
        url = f"http://127.0.0.1:{port}"
        for path in ("/", "/summary.json"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.build_opener(NoRedirect).open(url + path, timeout=30)
            assert refused.value.code in (302, 403), (path, refused.value.code)
        with urllib.request.urlopen(f"{url}/summary.json?token={TOKEN}", timeout=30) as response:
            assert response.status == 200
            cookies = response.headers.get_all("Set-Cookie")
        (login,) = [c for c in cookies if c.startswith("username-")]
        assert "SameSite=Lax" in login, login
    finally:
        stop(dashboard)


def log_in(url: str, password: str) -> tuple[int, http.cookiejar.CookieJar]:
    """The login's refusal, else the status of /summary.json, where the login sends the
    browser (not to /: that page would start a kernel); the cookies."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{url}/login", timeout=30).read()  # sets the _xsrf cookie
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    form = urllib.parse.urlencode({"password": password, "_xsrf": xsrf}).encode()
    try:
        with opener.open(f"{url}/login?next=%2Fsummary.json", data=form, timeout=30) as response:
            assert response.url.endswith("/summary.json"), response.url
            return response.status, jar
    except urllib.error.HTTPError as refused:
        return refused.code, jar


def test_password_login_and_its_hash_stays_off_the_command_line(runs, tmp_path):
    """--password asks twice (no terminal: from stdin); without logging in, / goes to the
    login page; the right password opens /summary.json, a wrong one does not."""
    port = free_port()
    log = tmp_path / "dashboard.log"
    secret = b"s3cret-pass\ns3cret-pass\n"
    dashboard = start_dashboard(runs, port, log, "--password", stdin=secret)
    try:
        assert "token=" not in log.read_text()
        cmdline = (Path("/proc") / str(voila_process(dashboard.pid)) / "cmdline").read_bytes()
        assert b"hashed_password" not in cmdline and b"argon2" not in cmdline, cmdline
        url = f"http://127.0.0.1:{port}"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.build_opener(NoRedirect).open(f"{url}/", timeout=30)
        assert refused.value.code == 302 and "/login" in refused.value.headers["Location"]
        assert log_in(url, "wrong")[0] in (401, 403)
        status, jar = log_in(url, "s3cret-pass")
        assert status == 200
        (login,) = [c for c in jar if c.name.startswith("username-")]
        assert login.get_nonstandard_attr("SameSite") == "Lax"
    finally:
        stop(dashboard)


def test_lan_answers_this_machines_addresses_and_names_only(runs, tmp_path):
    import re

    port = free_port()
    log = tmp_path / "dashboard.log"
    dashboard = start_dashboard(runs, port, log, "--lan")
    try:
        found = re.search(
            r"on the LAN \(phone\): http://([\d.]+):\d+/\?(?:run=\S+&)?token=(\S+)", log.read_text()
        )
        assert found, log.read_text()
        lan, token = found.groups()
        path = f"/summary.json?token={token}"
        for host in (lan, socket.gethostname(), "localhost", "127.0.0.1"):
            status, body = get(port, path, f"{host}:{port}")
            assert status == 200 and RUN.encode() in body, (host, status)
        for host in ("evil.example", "203.0.113.7"):
            assert get(port, path, f"{host}:{port}")[0] == 403, host
    finally:
        stop(dashboard)
