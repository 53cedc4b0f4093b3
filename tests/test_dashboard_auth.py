"""Who can drive the dashboard, tried as an attacker would: issue 21, item 1 and its minors.

The attack (before the fix it deleted any run): a second process on this machine reads a
page's kernel id from ``/``, opens ``/api/kernels/<id>/channels`` with no ``Origin`` header,
asks the widget control comm for every widget's state, sets the "yes, delete" button's
``tooltip`` to a victim's name and sends it a click. Now

- the server needs a token by default, so the page and the websocket are refused without it;
- served without one (``--no-token``), the run a button acts on is kernel state, so the
  tampered tooltip deletes nothing;
- the token is on no process's command line;
- a page whose run is deleted or renamed by another process says so at its next refresh;
- a runs list that nothing changes sends the page nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import struct
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import ipywidgets
import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from g2048lab.cli import main
from g2048lab.dashboard import Dashboard, RunsBrowser
from g2048lab.phone import TOKEN_ENV
from g2048lab.phone.serve import _open_browser, dashboard_token
from g2048lab.store import RunStore

from .factories import training_update
from .helpers import free_port, stop
from .test_phone_app import RUN, NoRedirect, kernels_of, start_dashboard
from .test_phone_security import voila_process

VICTIM = "victim"
DOOMED = "doomed"  # deleted while a browser shows it


def finished(store: RunStore, name: str) -> None:
    store.create_run(name, config={}, device="cpu")
    store.add_metrics(name, {"iteration": 1, "env_steps": 512, "train/loss": 0.5})
    store.put_update(name, training_update(run_id=name, env_steps=512, status="finished"))


@pytest.fixture
def store(tmp_path) -> RunStore:
    """Finished runs RUN ("phone", the user's) and VICTIM."""
    store = RunStore(tmp_path / "runs")
    finished(store, RUN)
    finished(store, VICTIM)
    return store


def names(store: RunStore) -> set[str]:
    return {run.name for run in store.list_runs()}


# --- a client of the kernel websocket, as the attacking process is ------------------------


def read_page(url: str) -> str:
    """The page at ``url``, read to its end: Voila has run the notebook by then."""
    with urllib.request.urlopen(url, timeout=180) as response:
        return response.read().decode()


def kernel_of(page: str) -> str:
    return re.search(r'"kernelId": "([0-9a-f-]+)"', page).group(1)


def message(msg_type: str, content: dict, metadata: dict | None = None) -> str:
    header = {
        "msg_id": uuid.uuid4().hex,
        "msg_type": msg_type,
        "username": "attacker",
        "session": uuid.uuid4().hex,
        "date": "2026-01-01T00:00:00Z",
        "version": "5.3",
    }
    return json.dumps(
        {
            "header": header,
            "parent_header": {},
            "metadata": metadata or {},
            "content": content,
            "channel": "shell",
            "buffers": [],
        }
    )


def decode(frame: str | bytes) -> dict:
    """A kernel message from a websocket frame; a binary one (with buffers) starts with the
    number of offsets and the offsets, the JSON first (jupyter_server's legacy protocol)."""
    if isinstance(frame, bytes):
        count = struct.unpack("!I", frame[:4])[0]
        offsets = struct.unpack(f"!{count}I", frame[4 : 4 + 4 * count])
        frame = frame[offsets[0] : offsets[1] if count > 1 else None]
    return json.loads(frame)


def channels_request(port: int, kernel: str, token: str | None = None) -> HTTPRequest:
    query = f"session_id={uuid.uuid4().hex}" + (f"&token={token}" if token else "")
    request = HTTPRequest(f"ws://127.0.0.1:{port}/api/kernels/{kernel}/channels?{query}")
    assert "Origin" not in request.headers  # a program, not a browser: no Origin at all
    return request


async def widget_states(ws) -> dict[str, dict]:
    """Every widget's state, by comm id, through the widget control comm."""
    control = uuid.uuid4().hex
    opening = {"comm_id": control, "target_name": "jupyter.widget.control", "data": {}}
    await ws.write_message(message("comm_open", opening, {"version": "1.0.0"}))
    asking = {"comm_id": control, "data": {"method": "request_states"}}
    await ws.write_message(message("comm_msg", asking))
    while True:
        frame = await ws.read_message()
        assert frame is not None, "the kernel websocket closed"
        reply = decode(frame)
        data = reply.get("content", {}).get("data", {})
        if reply["msg_type"] == "comm_msg" and data.get("method") == "update_states":
            return data["states"]


async def tooltip_attack(port: int, kernel: str, victim: str) -> dict:
    """Set "yes, delete"'s tooltip to ``victim`` and click it; then the button's state as
    the kernel holds it (asked after the click: the kernel handles messages in order)."""
    ws = await websocket_connect(channels_request(port, kernel))
    try:
        states = await widget_states(ws)
        (yes,) = [c for c, s in states.items() if s["state"].get("description") == "yes, delete"]
        tamper = {"method": "update", "state": {"tooltip": victim}, "buffer_paths": []}
        await ws.write_message(message("comm_msg", {"comm_id": yes, "data": tamper}))
        click = {"method": "custom", "content": {"event": "click"}}
        await ws.write_message(message("comm_msg", {"comm_id": yes, "data": click}))
        return (await widget_states(ws))[yes]["state"]
    finally:
        ws.close()


def run_async(coroutine, timeout: float = 120.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


async def connect_and_close(request: HTTPRequest) -> None:
    """Open the websocket (HTTPClientError if refused), then close it."""
    (await websocket_connect(request)).close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A store with RUN and VICTIM, and a dashboard on it started with --no-token."""
    runs = tmp_path_factory.mktemp("runs")
    store = RunStore(runs)
    finished(store, RUN)
    finished(store, VICTIM)
    port = free_port()
    log = tmp_path_factory.mktemp("logs") / "dashboard.log"
    dashboard = start_dashboard(runs, port, log, "--no-token")
    yield store, port, log
    stop(dashboard)


def test_without_a_token_a_tampered_tooltip_deletes_nothing(served):
    store, port, log = served
    assert "no token (--no-token)" in log.read_text()
    kernel = kernel_of(read_page(f"http://127.0.0.1:{port}/"))  # the runs list
    state = run_async(tooltip_attack(port, kernel, VICTIM))
    assert state["tooltip"] == VICTIM  # the tamper reached the kernel, and the click after it
    assert names(store) == {RUN, VICTIM}  # ... and deleted nothing


# --- the default: a token ---------------------------------------------------------------


@pytest.fixture(scope="module")
def default_server(tmp_path_factory):
    """(store, port, token, dashboard process) of ``g2048lab dashboard --run RUN`` as
    ``make run`` starts it: no token given, so it makes one and prints it in its URL."""
    runs = tmp_path_factory.mktemp("runs")
    store = RunStore(runs)
    for name in (RUN, VICTIM, DOOMED):
        finished(store, name)
    port = free_port()
    log = tmp_path_factory.mktemp("logs") / "dashboard.log"
    dashboard = start_dashboard(runs, port, log)
    url = re.search(rf"http://127\.0\.0\.1:{port}/\?run={RUN}&token=(\S+)", log.read_text())
    assert url, log.read_text()
    yield store, port, url.group(1), dashboard
    stop(dashboard)


def test_by_default_the_page_and_the_kernel_websocket_need_the_token(default_server):
    store, port, token, _ = default_server
    assert len(token) >= 24
    base = f"http://127.0.0.1:{port}"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.build_opener(NoRedirect).open(f"{base}/", timeout=30)
    assert refused.value.code == 302 and "/login" in refused.value.headers["Location"]
    kernel = kernel_of(read_page(f"{base}/?token={token}"))  # the owner's page: a real kernel
    with pytest.raises(HTTPClientError) as refused:
        run_async(connect_and_close(channels_request(port, kernel)))
    assert refused.value.code == 403
    with pytest.raises(HTTPClientError) as refused:
        run_async(connect_and_close(channels_request(port, kernel, token="wrong-" + token)))
    assert refused.value.code == 403
    # the refusals are the token's: with it, the same websocket opens
    run_async(connect_and_close(channels_request(port, kernel, token)))
    assert {RUN, VICTIM} <= names(store)


def test_the_token_is_on_no_command_line(default_server):
    """Not on ``g2048lab dashboard``'s, Voila's or a page kernel's: ``ps`` shows them to
    every user of the machine."""
    _, port, token, dashboard = default_server
    read_page(f"http://127.0.0.1:{port}/?run={RUN}&token={token}")  # starts a kernel
    assert kernels_of(dashboard.pid) >= 1
    pids = [dashboard.pid]
    while len(pids) < 64:  # every process below the dashboard, breadth first
        below = [
            int(stat.parent.name)
            for stat in Path("/proc").glob("[0-9]*/stat")
            if _parent(stat) in pids and int(stat.parent.name) not in pids
        ]
        if not below:
            break
        pids += below
    voila = voila_process(dashboard.pid)
    assert voila in pids and len(pids) >= 3
    # (environments, which only this user can read, may hold it: Voila gives a kernel its
    # page's URL, query string and all)
    for pid in pids:
        cmdline = _read(Path("/proc") / str(pid) / "cmdline")
        assert token.encode() not in cmdline, cmdline


def _parent(stat: Path) -> int:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_a_token_on_the_command_line_is_refused(tmp_path, capsys):
    code = main(["dashboard", "--runs-dir", str(tmp_path), "--token", "T0P", "--no-browser"])
    assert code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and TOKEN_ENV in error and "--token-file" in error
    assert not (tmp_path / "runs.sqlite").exists()  # refused before anything was done
    code = main(["dashboard", "--runs-dir", str(tmp_path), "--lan", "--no-token"])
    assert code == 2 and "--lan needs a token" in capsys.readouterr().err


def test_where_the_token_comes_from(tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    first, second = (dashboard_token(None, None, False, False) for _ in range(2))
    assert len(first) >= 24 and first != second  # random, made up each time
    assert dashboard_token(None, None, True, False) is None  # --no-token
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment")
    assert dashboard_token(None, None, False, False) == "from-the-environment"
    secret = tmp_path / "token"
    secret.write_text("from-a-file\n")
    secret.chmod(0o600)
    assert dashboard_token(None, str(secret), False, False) == "from-a-file"
    secret.chmod(0o644)
    with pytest.raises(ValueError, match="readable by other users: chmod 600"):
        dashboard_token(None, str(secret), False, False)
    secret.write_text("\n")
    secret.chmod(0o600)
    with pytest.raises(ValueError, match="is empty"):
        dashboard_token(None, str(secret), False, False)
    with pytest.raises(ValueError, match="cannot read the token file"):
        dashboard_token(None, str(tmp_path / "missing"), False, False)


def test_the_browser_opens_a_private_page_not_the_tokened_url(tmp_path, monkeypatch):
    """As Jupyter does: the browser's command line shows a file, which only this user reads."""
    opened = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    url = "http://127.0.0.1:8866/?run=a&token=s3cret"
    page = _open_browser(url)
    (uri,) = opened
    assert "s3cret" not in uri and uri == page.as_uri()
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    assert 'url=http://127.0.0.1:8866/?run=a&amp;token=s3cret"' in page.read_text()


def test_help_documents_the_token_and_the_opt_out():
    result = subprocess.run(
        [sys.executable, "-m", "g2048lab", "dashboard", "--help"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "COLUMNS": "100"},
    )  # fmt: skip
    assert "--no-token" in result.stdout and TOKEN_ENV in result.stdout
    assert "--token-file" in result.stdout and "--token " not in result.stdout


# --- the run a button acts on is kernel state -------------------------------------------


def from_the_page(widget: ipywidgets.Widget, **state) -> None:
    """What a page's message does to ``widget``'s state (any trait, as a client may send)."""
    data = {"method": "update", "state": state, "buffer_paths": []}
    widget._handle_msg({"content": {"data": data}, "buffers": []})


def click_from_the_page(widget: ipywidgets.Button) -> None:
    data = {"method": "custom", "content": {"event": "click"}}
    widget._handle_msg({"content": {"data": data}, "buffers": []})


def test_yes_deletes_only_the_run_that_delete_asked_about(store):
    browser = RunsBrowser(store)
    browser.chosen.value = RUN
    # "yes" with nothing asked: nothing, whatever its tooltip or description says
    for trait in ("tooltip", "description"):
        from_the_page(browser.confirm_yes, **{trait: VICTIM})
        click_from_the_page(browser.confirm_yes)
    assert names(store) == {RUN, VICTIM}
    # asked about RUN; the tooltip says VICTIM: RUN (what the person confirmed) goes
    click_from_the_page(browser.delete_button)
    assert f"delete run {RUN}" in browser.confirm_text.value
    from_the_page(browser.confirm_yes, tooltip=VICTIM, description=VICTIM)
    click_from_the_page(browser.confirm_yes)
    assert names(store) == {VICTIM}
    click_from_the_page(browser.confirm_yes)  # once: nothing is remembered any more
    assert names(store) == {VICTIM}
    browser.close()


def test_the_choice_moving_after_delete_cancels_it(store):
    browser = RunsBrowser(store)
    browser.chosen.value = RUN
    browser.delete_button.click()
    browser.chosen.value = VICTIM  # the question was about RUN
    assert browser.confirm.layout.display == "none"
    browser.confirm_yes.click()
    assert names(store) == {RUN, VICTIM}
    browser.close()


def test_yes_spares_a_new_run_made_under_the_name_asked_about(store):
    browser = RunsBrowser(store)
    browser.chosen.value = VICTIM
    browser.delete_button.click()
    store.delete_run(VICTIM)  # another process, meanwhile
    finished(store, VICTIM)
    browser.confirm_yes.click()
    assert names(store) == {RUN, VICTIM}
    assert "has changed since you asked" in browser.message.value
    browser.close()


def test_other_buttons_act_on_the_chosen_run_not_on_their_tooltips(store):
    browser = RunsBrowser(store)
    browser.chosen.value = RUN
    browser.tags.value = "mine"
    for widget in (browser.tags_button, browser.rename_button, browser.note_button):
        from_the_page(widget, tooltip=VICTIM, description=VICTIM)
    click_from_the_page(browser.tags_button)
    assert store.get_run(RUN).tags == ("mine",) and store.get_run(VICTIM).tags == ()
    browser.new_name.value = "renamed"
    click_from_the_page(browser.rename_button)
    assert names(store) == {"renamed", VICTIM}
    browser.close()


# --- a page whose run another process deletes or renames --------------------------------


def runs_cli(store: RunStore, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "g2048lab", "runs", *args, "--runs-dir", str(store.root)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("change", ["delete", "rename"])
def test_a_page_says_its_run_is_gone_at_the_next_refresh(store, change):
    dashboard = Dashboard.attach(store, VICTIM, link="?run={name}")
    assert dashboard.buttons["pause"].disabled and "victim" in dashboard.header.value
    if change == "delete":
        runs_cli(store, "delete", VICTIM, "--yes")
    else:
        runs_cli(store, "rename", VICTIM, "moved")
    dashboard.refresh()  # one refresh
    header = dashboard.header.value
    if change == "delete":
        assert 'data-status="deleted"' in header and "was deleted" in header
    else:
        assert 'data-status="renamed"' in header and "renamed to moved" in header
        assert 'href="?run=moved"' in header
    assert dashboard.ended and all(button.disabled for button in dashboard.buttons.values())
    assert "not possible" in dashboard.control("stop")
    dashboard.prepare_csv()  # says so, no traceback
    dashboard.close()


def test_a_page_of_a_name_taken_by_a_new_run_says_the_old_one_is_gone(store):
    dashboard = Dashboard.attach(store, VICTIM)
    store.delete_run(VICTIM)
    finished(store, VICTIM)  # same name, another run
    dashboard.refresh()
    assert 'data-status="deleted"' in dashboard.header.value
    dashboard.close()


def test_a_phone_page_says_its_run_was_deleted_by_another_process(default_server):
    """In Chromium at 390x844, logged in with the token: ``runs delete`` in another process,
    and the open page says so within about a refresh (1 s; the page's push takes longer on
    two shared cores)."""
    import time

    from playwright.sync_api import sync_playwright

    from .test_phone_app import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, PAGE_TIMEOUT_MS, PHONE

    store, port, token, _ = default_server
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=PHONE, is_mobile=True).new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(f"http://127.0.0.1:{port}/?run={DOOMED}&token={token}", wait_until="commit")
            page.wait_for_selector('.g2048lab-header [data-status="finished"]')
            asked = time.monotonic()
            runs_cli(store, "delete", DOOMED, "--yes")
            deleted = time.monotonic()
            page.wait_for_selector('.g2048lab-header [data-status="deleted"]', timeout=15_000)
            print(
                f"runs delete took {deleted - asked:.1f} s; the page said so"
                f" {time.monotonic() - asked:.1f} s after it started"
            )
            assert "was deleted" in page.text_content(".g2048lab-header")
            page.screenshot(path=str(ARTIFACTS / "phone-run-deleted-390x844.png"))
        finally:
            browser.close()


# --- an idle runs list sends nothing ------------------------------------------------------


def count_messages():
    """A counter of the widget messages the kernel sends (as bench/runs_view.py counts)."""
    sent = []
    original = ipywidgets.Widget._send

    def send(self, msg, buffers=None):
        sent.append((type(self).__name__, msg.get("method"), tuple(msg.get("state", ()))))
        return original(self, msg, buffers)

    return sent, send


def test_an_idle_runs_list_sends_the_page_nothing(store, monkeypatch):
    browser = RunsBrowser(store)
    browser.compare.value = (RUN, VICTIM)
    browser.chosen.value = VICTIM
    from_the_page(browser.refresher.presence, beat=1.0, width=390)  # a phone's page loaded
    sent, send = count_messages()
    monkeypatch.setattr(ipywidgets.Widget, "_send", send)
    for beat in range(10):  # 20 s of an idle page at the default interval
        browser.refresh()
        if beat % 3 == 0:  # the page's report every 5 s is not echoed back
            from_the_page(browser.refresher.presence, beat=2.0 + beat, width=390)
    assert sent == []
    # the counter counts: a change in the store is sent
    store.set_note(RUN, "a new note")
    store.set_tags(VICTIM, ["new"])
    browser.refresh()
    assert any(name == "HTML" for name, _, _ in sent), sent
    sent.clear()
    browser.refresh()
    assert sent == []
    browser.close()
