"""The phone app (`g2048lab dashboard`): Voila + the PWA template, tested in Debian's Chromium.

One tiny training run (a CLI process, at a lower CPU priority) and one dashboard server (with a
token) serve the browser tests in this module, but for those that stop their own server or
need a shorter culling time; screenshots go to ``artifacts/``. Without /usr/bin/chromium (or
Python Playwright) the browser tests fail with a message: CI installs them
(``apt-get install -y chromium``; ``pip install -e .[dev]``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from functools import partial
from pathlib import Path

import pytest

from g2048lab.cli import main
from g2048lab.phone import NOTEBOOK, STATIC_DIR, TEMPLATE_DIR, TOKEN_ENV
from g2048lab.store import RunStore

from . import helpers
from .factories import training_update
from .helpers import free_port, stop

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "test-token-3f9a"
RUN = "phone"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
wait_for = partial(helpers.wait_for, every=0.5)  # a browser and a server share two cores
PAGE_TIMEOUT_MS = 90_000  # a page starts a kernel; two cores are shared with the training


# --- no browser ---------------------------------------------------------------------------


def test_packaged_notebook_is_the_notebook():
    assert NOTEBOOK.read_bytes() == (ROOT / "notebooks" / "dashboard.ipynb").read_bytes()


def test_template_and_static_files_ship():
    assert json.loads((TEMPLATE_DIR / "conf.json").read_text()) == {"base_template": "lab"}
    template = (TEMPLATE_DIR / "index.html.j2").read_text()
    assert template.startswith("{%- extends 'voila/templates/lab/index.html.j2' -%}")
    manifest = json.loads((STATIC_DIR / "manifest.webmanifest").read_text())
    assert manifest["display"] == "standalone"
    purposes = {(icon["sizes"], icon.get("purpose", "any")) for icon in manifest["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= purposes
    for icon in manifest["icons"]:
        data = (STATIC_DIR / Path(icon["src"]).name).read_bytes()
        assert data.startswith(b"\x89PNG")
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert f"{width}x{height}" == icon["sizes"]


def test_the_wheel_ships_the_notebook_and_the_template(tmp_path):
    """A plain pip install gets everything the dashboard serves."""
    import shutil
    import zipfile

    # from a copy: setuptools' build/ folder keeps files of earlier builds
    source = tmp_path / "source"
    skip = shutil.ignore_patterns(
        ".*", "build", "*.egg-info", "artifacts", "checkpoints", "__pycache__", "*.pt"
    )
    shutil.copytree(ROOT, source, ignore=skip)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("g2048lab-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    package = NOTEBOOK.parent
    served = [NOTEBOOK, *(f for f in TEMPLATE_DIR.rglob("*") if f.is_file())]
    missing = [str(f) for f in served if f"g2048lab/phone/{f.relative_to(package)}" not in shipped]
    assert not missing, f"not in the wheel: {missing}"


def test_busy_port_is_an_error(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["dashboard", "--runs-dir", str(tmp_path), "--port", str(port), "--no-browser"])
    assert code == 2
    assert f"port {port} is busy" in capsys.readouterr().err


def test_viewer_kernels_go_quiet_before_they_are_culled():
    from g2048lab.phone.serve import viewer_idle_after_s

    assert viewer_idle_after_s(300) == 60  # the default: quiet after a minute, culled 5 later
    assert viewer_idle_after_s(30) == 30
    assert viewer_idle_after_s(5) == 15  # never below three missed reports (one per 5 s)


def test_unknown_run_is_an_error(tmp_path, capsys):
    code = main(["dashboard", "--runs-dir", str(tmp_path), "--run", "nope", "--no-browser"])
    assert code == 2
    assert "error:" in capsys.readouterr().err


# --- one training run, one dashboard, one browser -----------------------------------------


def cli(
    *args: str,
    log: Path,
    stdin: bytes | None = None,
    token: str | None = None,
    background: bool = False,
) -> subprocess.Popen:
    """``g2048lab ARGS`` with its output in ``log``; ``stdin`` is typed in, with no
    controlling terminal, so that getpass reads it from stdin. ``token`` goes in the
    environment, where ``g2048lab dashboard`` reads it (None: none there). ``background``: in
    a session of its own, so that ``lower_priority`` can lower its scheduling group alone."""
    env = {key: value for key, value in os.environ.items() if key != TOKEN_ENV}
    if token is not None:
        env[TOKEN_ENV] = token
    process = subprocess.Popen(
        [sys.executable, "-m", "g2048lab", *args],
        stdin=None if stdin is None else subprocess.PIPE,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env={**env, "PYTHONUNBUFFERED": "1"},
        start_new_session=stdin is not None or background,
    )
    if stdin is not None:
        process.stdin.write(stdin)
        process.stdin.close()
    return process


def lower_priority(pid: int, niceness: int = 10) -> None:
    """Set process ``pid``'s niceness to ``niceness``: each of its threads' (Linux keeps one
    per thread) and, with autogroup scheduling (a group per session, weighed as a whole),
    its session's group's. Nothing where /proc does not have them."""
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, int(task.name), niceness)
        Path(f"/proc/{pid}/autogroup").write_text(str(niceness))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects come back as HTTPError (302 to the login page), not followed."""

    def redirect_request(self, *args, **kwargs):
        return None


def reachable(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((host, port)) == 0


def start_dashboard(
    runs: Path,
    port: int,
    log: Path,
    *options: str,
    stdin: bytes | None = None,
    token: str | None = None,
) -> subprocess.Popen:
    """``g2048lab dashboard`` of run RUN with ``options``, once it serves; ``token`` in its
    environment (None: it makes one up and prints it in its URL)."""
    dashboard = cli(
        "dashboard", "--runs-dir", str(runs), "--run", RUN, "--port", str(port),
        "--no-browser", *options, log=log, stdin=stdin, token=token,
    )  # fmt: skip
    try:
        wait_for(
            lambda: "Ctrl-C stops" in log.read_text() or dashboard.poll() is not None,
            60,
            "the dashboard to start",
        )
        if dashboard.poll() is not None:
            raise AssertionError(f"the dashboard did not start:\n{log.read_text()}")
    except BaseException:
        stop(dashboard)
        raise
    return dashboard


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(url without token, store, training process) with a tiny run being trained.

    The server culls a closed page's kernel after 15 s idle, so the kernel stops refreshing
    15 s after its page's last report (60 s by default) and leaves the two cores to the
    tests that follow. An open page reports every 5 s and its kernel is connected, so it is
    never culled."""
    runs = tmp_path_factory.mktemp("runs")
    logs = tmp_path_factory.mktemp("logs")
    train = cli(
        "train", "--preset", "tiny", "--minutes", "10", "--runs-dir", str(runs),
        "--run-name", RUN, "--quiet", "--threads", "1", log=logs / "train.log", background=True,
    )  # fmt: skip
    store = RunStore(runs)
    dashboard = None
    try:

        def steps():
            try:
                return store.get_run(RUN).env_steps
            except Exception:
                return 0

        wait_for(steps, 90, "the first training update")
        # from now on the run yields the CPU to the server, its kernels and the browser, and
        # still trains whenever they wait (at full priority until now: a busy machine must
        # not starve its start)
        lower_priority(train.pid)
        port = free_port()
        dashboard = start_dashboard(
            runs, port, logs / "dashboard.log", "--cull-idle-s", "15", token=TOKEN
        )
        yield f"http://127.0.0.1:{port}", store, train
    finally:
        if train.poll() is None:
            train.terminate()  # the run saves and exits while the server stops
        if dashboard is not None:
            stop(dashboard)
            print((logs / "dashboard.log").read_text()[-3000:])
        with contextlib.suppress(subprocess.TimeoutExpired):
            train.wait(15)
        stop(train)


@pytest.fixture(scope="module")
def playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Python Playwright is missing: pip install -e .[dev]")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (CI installs it)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright):
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


def open_page(context, url: str, query: str = ""):
    """The app's page ``/?QUERY`` (the runs list without one), logged in with the token."""
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    # Voila streams the page while its kernel runs the notebook: "commit" returns at once
    page.goto(f"{url}/?{query}{'&' if query else ''}token={TOKEN}", wait_until="commit")
    return page


def open_dashboard(context, url: str, wait: bool = True, run: str = RUN):
    """Run ``run``'s page: the deep link ``/?run=NAME``."""
    page = open_page(context, url, f"run={run}")
    if wait:
        page.wait_for_selector(".g2048lab-header")
    return page


def latest_game(page) -> float:
    """The newest game (x) in the first Plotly chart (the games chart: scores); it moves on
    while training runs even when the traces hold their most points."""
    return page.evaluate(
        """() => {
            const plot = document.querySelector('.g2048lab-dashboard .js-plotly-plot');
            if (!plot || !plot.data) return 0;
            return Math.max(0, ...plot.data.map(t => t.x && t.x.length ? t.x[t.x.length - 1] : 0));
        }"""
    )


def test_phone_page_renders_live_and_controls_pause_resume(server, browser):
    url, store, _ = server
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    try:
        page = open_dashboard(context, url)
        page.wait_for_function(
            "() => { const p = document.querySelector('.g2048lab-dashboard .js-plotly-plot');"
            " return p && p.data && p.data.some(t => t.x && t.x.length > 0); }"
        )
        before = latest_game(page)
        wait_for(lambda: latest_game(page) > before, 60, "the score chart to gain new games")
        layout = page.evaluate(
            """() => ({
                scroll: document.documentElement.scrollWidth, width: window.innerWidth,
                buttons: [...document.querySelectorAll('.g2048lab-dashboard .jupyter-button')]
                    .filter(b => b.offsetParent !== null)
                    .map(b => [b.textContent.trim(), b.getBoundingClientRect().height,
                               b.getBoundingClientRect().width]),
                panels: [...document.querySelectorAll('.g2048lab-panel')]
                    .map(p => Math.round(p.getBoundingClientRect().left)),
            })"""
        )
        assert layout["scroll"] <= layout["width"], layout
        assert len(set(layout["panels"])) == 1, f"not one column: {layout['panels']}"
        small = [b for b in layout["buttons"] if b[1] < 44 or b[2] < 44]
        assert not small, f"tap targets under 44 px: {small}"
        page.screenshot(path=str(ARTIFACTS / "phone-390x844.png"))
        games = page.locator(".g2048lab-panel").nth(1)
        games.scroll_into_view_if_needed()
        games.screenshot(path=str(ARTIFACTS / "phone-390x844-games-chart.png"))

        page.get_by_role("button", name="pause").click()
        wait_for(lambda: store.get_run(RUN).status == "paused", 60, "the run to pause")
        paused_at = store.get_run(RUN).env_steps
        time.sleep(4)
        assert store.get_run(RUN).env_steps == paused_at, "steps advanced while paused"

        page.get_by_role("button", name="resume").click()
        wait_for(lambda: store.get_run(RUN).env_steps > paused_at, 60, "steps to advance on resume")
        assert store.get_run(RUN).status == "running"
    finally:
        context.close()


def test_request_without_token_is_refused(server):
    url, _, _ = server

    opener = urllib.request.build_opener(NoRedirect)
    for path in (
        "/",
        "/summary.json",
        "/api/kernels/00000000-0000-0000-0000-000000000000/channels",
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(url + path, timeout=30)
        assert refused.value.code in (302, 403), (path, refused.value.code)
        if refused.value.code == 302:
            assert "/login" in refused.value.headers["Location"]
    # the page needs no internet: no CDN (Font Awesome, mermaid) in it
    with urllib.request.urlopen(f"{url}/?token={TOKEN}", timeout=90) as response:
        page = response.read().decode()
    assert "cdn.jsdelivr.net" not in page and "cdnjs.cloudflare.com" not in page
    assert '<link rel="manifest"' in page and 'name="theme-color"' in page
    # the app shell is public and holds no secret
    shell = urllib.request.urlopen(url + "/sw.js", timeout=30)
    assert shell.headers["Service-Worker-Allowed"] == "/"
    assert TOKEN not in shell.read().decode()
    with urllib.request.urlopen(f"{url}/summary.json?token={TOKEN}", timeout=30) as response:
        summary = json.load(response)
    assert summary["run"] == RUN and summary["env_steps"] > 0 and summary["scores"]


SUMMARY_CACHED = """() => caches.open('g2048lab-summary')
    .then(c => c.match(new URL('summary.json', location.href).href))
    .then(r => r ? r.json() : null).then(s => s && s.run)"""


def test_installable_and_offline_shows_the_last_summary(server, playwright, tmp_path):
    """Installable; the worker controls the page; with the server gone, a reload and a fresh
    start of the app both show the offline page with the last summary."""
    _, store, _ = server
    # this test stops its own dashboard server; the run and the shared server go on
    port = free_port()
    dashboard = start_dashboard(store.root, port, tmp_path / "dashboard.log", token=TOKEN)
    url = f"http://127.0.0.1:{port}"
    # a persistent profile: Chromium never offers to install from an incognito context, which
    # is what browser.new_context() makes
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
    )
    try:
        page = open_dashboard(context, url)
        page.wait_for_function("() => navigator.serviceWorker.controller !== null")
        cdp = context.new_cdp_session(page)
        errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
        assert errors == [], errors
        manifest = cdp.send("Page.getAppManifest")
        assert manifest["url"].endswith("/manifest.webmanifest"), manifest
        assert not manifest.get("errors"), manifest["errors"]
        # page.evaluate awaits the promise (wait_for_function would take the promise as truthy)
        wait_for(lambda: page.evaluate(SUMMARY_CACHED) == RUN, 60, "the summary to be cached")

        stop(dashboard)
        wait_for(lambda: not reachable("127.0.0.1", port), 30, "the dashboard's port to close")
        page.reload(wait_until="load")
        offline = page.wait_for_selector("#offline-title")
        assert "offline" in offline.text_content().lower()
        assert page.wait_for_selector("#summary-run").text_content() == RUN
        assert page.text_content("#summary-best").strip() not in ("", "-")
        assert page.locator("#score-chart path").count() == 1
        page.screenshot(path=str(ARTIFACTS / "phone-offline.png"))

        # opening the installed app while the server is down: the offline page, no browser error
        fresh = context.new_page()
        fresh.goto(f"{url}/", wait_until="load")
        assert fresh.wait_for_selector("#summary-run").text_content() == RUN
        # a run's deep link opened offline shows that run, and the runs known link on
        fresh.goto(f"{url}/?run={RUN}", wait_until="load")
        assert fresh.wait_for_selector("#summary-run").text_content() == RUN
        links = fresh.eval_on_selector_all("#runs-list a", "as => as.map(a => a.textContent)")
        assert RUN in links
        fresh.screenshot(path=str(ARTIFACTS / "phone-offline-deep-link.png"))
    finally:
        context.close()
        stop(dashboard)


def test_five_viewers_desktop_and_closing_them_leaves_the_run(server, browser):
    url, store, train = server
    context = browser.new_context(viewport=DESKTOP)
    try:
        pages = [open_dashboard(context, url, wait=False) for _ in range(5)]  # at once
        for page in pages:
            page.wait_for_selector(".g2048lab-dashboard .js-plotly-plot")
        lefts = pages[-1].evaluate(
            "() => [...document.querySelectorAll('.g2048lab-panel')]"
            ".map(p => Math.round(p.getBoundingClientRect().left))"
        )
        assert len(set(lefts)) > 1, f"one column on a desktop: {lefts}"
        pages[-1].screenshot(path=str(ARTIFACTS / "desktop-1280x800.png"))
    finally:
        context.close()
    steps = store.get_run(RUN).env_steps
    wait_for(
        lambda: store.get_run(RUN).env_steps > steps, 60, "the run to go on with its pages closed"
    )
    assert train.poll() is None
    assert store.get_run(RUN).status == "running"


def kernels_of(pid: int) -> int:
    """Kernel processes started below process ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = 0, list(children.get(pid, []))
    while todo:
        child = todo.pop()
        try:
            found += b"ipykernel" in (Path("/proc") / str(child) / "cmdline").read_bytes()
        except OSError:
            continue
        todo.extend(children.get(child, []))
    return found


def test_kernels_of_closed_pages_are_culled(server, browser, tmp_path):
    _, store, train = server
    port = free_port()
    # culled 5 s after the refresher goes quiet (15 s after the last page report)
    dashboard = start_dashboard(
        store.root, port, tmp_path / "dashboard.log", "--cull-idle-s", "5", token=TOKEN
    )
    context = browser.new_context(viewport=PHONE)
    try:
        pages = [open_dashboard(context, f"http://127.0.0.1:{port}", wait=False) for _ in range(2)]
        for page in pages:  # both kernels start at once
            page.wait_for_selector(".g2048lab-dashboard .js-plotly-plot")
        assert kernels_of(dashboard.pid) == 2
        context.close()
        wait_for(lambda: kernels_of(dashboard.pid) == 0, 90, "the closed pages' kernels to go")
        assert train.poll() is None and store.get_run(RUN).status == "running"
    finally:
        context.close()
        stop(dashboard)


def test_a_phone_gets_fewer_chart_points(server, browser):
    """A finished run of 1,500 iterations and 30,000 games: 1,000 points per trace on a
    desktop page, 300 on a phone page (the page reports its width to its kernel). Both
    pages open at once, each in its own context (its own kernel)."""
    url, store, _ = server
    name = "points-1500"
    store.create_run(name, config={}, device="cpu")
    for i in range(1, 1501):
        store.add_metrics(name, {"iteration": i, "env_steps": 512 * i, "train/loss": 1 / i})
        store.put_update(
            name,
            training_update(
                run_id=name, iteration=i, episode=20 * i, env_steps=512 * i,
                timestamp=1.7e9 + 10 * i, status="running" if i < 1500 else "finished",
                finished_games=[[100 * g + i, 256] for g in range(20)],
            ),
        )  # fmt: skip
    longest = """() => {
        const plot = document.querySelector('.g2048lab-dashboard .js-plotly-plot');
        return plot && plot.data ? Math.max(...plot.data.map(t => t.x ? t.x.length : 0)) : 0;
    }"""
    contexts = []
    try:
        pages = []
        for viewport, points in ((DESKTOP, 1000), (PHONE, 300)):
            contexts.append(browser.new_context(viewport=viewport))
            pages.append((open_dashboard(contexts[-1], url, wait=False, run=name), points))
        for page, points in pages:
            page.wait_for_function(f"({longest})() === {points}")
    finally:
        for context in contexts:
            context.close()


def test_lan_generates_a_token_and_prints_a_qr_code(server, tmp_path):
    """--lan listens on every interface with a random token and prints the phone's URL and a
    QR code; without --lan the server listens on the loopback only."""
    import re

    from g2048lab.phone.serve import _lan_address

    url, store, _ = server
    lan = _lan_address()
    if not lan.startswith("127."):  # a machine with a network: the default server is local
        assert not reachable(lan, int(url.rsplit(":", 1)[1]))
    port = free_port()
    log = tmp_path / "dashboard.log"
    dashboard = start_dashboard(store.root, port, log, "--lan")
    try:
        printed = log.read_text()
        found = re.search(
            r"on the LAN \(phone\): http://([\d.]+):(\d+)/\?run=phone&token=(\S+)", printed
        )
        assert found, printed
        host, token = found.group(1), found.group(3)
        assert int(found.group(2)) == port and len(token) >= 24
        assert "\u2588" in printed or "\u2580" in printed, "no QR code printed"
        assert reachable(host, port)

        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.build_opener(NoRedirect).open(f"http://{host}:{port}/", timeout=30)
        assert refused.value.code in (302, 403)
        with urllib.request.urlopen(
            f"http://{host}:{port}/summary.json?token={token}", timeout=30
        ) as response:
            assert json.load(response)["run"] == RUN
    finally:
        stop(dashboard)


# --- the runs list: the app's home screen ------------------------------------------------


def finished_run(store: RunStore, name: str, learning_rate: float, iterations: int = 40) -> None:
    """A finished run with metric rows, as a training process leaves one."""
    config = {"learner": "ppo", "preset": "tiny", "ppo": {"learning_rate": learning_rate}}
    store.create_run(name, config=config, device="cpu")
    for i in range(1, iterations + 1):
        store.add_metrics(
            name,
            {
                "iteration": i,
                "env_steps": 512 * i,
                "episodes": 4 * i,
                "time/elapsed_s": 1.5 * i,
                "train/loss": 1 / i + learning_rate * 100,
                "rollout/score_mean": 500 + 10 * i * learning_rate * 1000,
            },
        )
    store.put_update(
        name, training_update(run_id=name, iteration=iterations, env_steps=512 * iterations,
                              status="finished"),
    )  # fmt: skip


def listed_steps(page, name: str) -> str:
    return page.evaluate(
        f"""() => {{
            const row = document.querySelector('tr[data-run="{name}"] td[data-label="env steps"]');
            return row ? row.textContent : '';
        }}"""
    )


def no_sideways_scroll(page) -> None:
    scroll, width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= width, f"the page scrolls sideways: {scroll} > {width}"


def test_the_runs_list_is_live_and_a_tap_opens_a_run_and_back(server, browser):
    url, store, _ = server
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    try:
        page = open_page(context, url)
        page.wait_for_selector(f'tr[data-run="{RUN}"]')
        first = listed_steps(page, RUN)
        wait_for(lambda: listed_steps(page, RUN) not in ("", first), 60, "the list to update")
        no_sideways_scroll(page)
        page.screenshot(path=str(ARTIFACTS / "phone-runs-390x844.png"))
        # one tap to the run's page: a deep link that survives a reload
        page.click(f'tr[data-run="{RUN}"] a.g2048lab-run-link')
        page.wait_for_selector(".g2048lab-header")
        assert f"run={RUN}" in page.url
        assert RUN in page.text_content(".g2048lab-header")
        page.reload(wait_until="commit")
        page.wait_for_selector(".g2048lab-header")
        assert RUN in page.text_content(".g2048lab-header") and f"run={RUN}" in page.url
        no_sideways_scroll(page)
        page.screenshot(path=str(ARTIFACTS / "phone-run-deep-link-390x844.png"))
        # and back to the list
        page.click("a.g2048lab-back")
        page.wait_for_selector(f'tr[data-run="{RUN}"]')
        assert "run=" not in page.url
    finally:
        context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_two_runs_overlay_and_delete_asks_first(server, browser, viewport):
    url, store, _ = server
    size = f"{viewport['width']}x{viewport['height']}"
    a, b = f"lr-high-{viewport['width']}", f"lr-low-{viewport['width']}"
    finished_run(store, a, 1e-3)
    finished_run(store, b, 3e-4)
    context = browser.new_context(viewport=viewport)
    try:
        page = open_page(context, url)
        page.wait_for_selector(f'tr[data-run="{b}"]')
        page.select_option(".g2048lab-compare select", [a, b])
        overlaid = f"""() => {{
            const plot = document.querySelector('.g2048lab-runs-browser .js-plotly-plot');
            if (!plot || !plot.data) return false;
            const names = new Set(plot.data.filter(t => t.x && t.x.length).map(t => t.name));
            return names.has('{a}') && names.has('{b}');
        }}"""
        page.wait_for_function(overlaid)
        diff = page.wait_for_selector(".g2048lab-config-diff")
        assert "ppo.learning_rate" in diff.text_content()
        no_sideways_scroll(page)
        page.locator(".g2048lab-runs-browser .js-plotly-plot").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"runs-compare-{size}.png"), full_page=True)

        # delete asks first: cancel keeps the run, yes deletes it
        page.select_option(".g2048lab-chosen select", b)
        page.get_by_role("button", name="delete…").click()
        confirm = page.wait_for_selector(".g2048lab-confirm", state="visible")
        assert f"delete run {b}" in confirm.text_content()
        page.screenshot(path=str(ARTIFACTS / f"runs-delete-asks-{size}.png"))
        page.get_by_role("button", name="cancel").click()
        page.wait_for_selector(".g2048lab-confirm", state="hidden")
        assert store.get_run(b).name == b
        page.get_by_role("button", name="delete…").click()
        page.get_by_role("button", name="yes, delete").click()
        page.wait_for_selector(f'tr[data-run="{b}"]', state="detached")
        assert b not in [run.name for run in store.list_runs()]
    finally:
        context.close()
