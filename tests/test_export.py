"""``g2048lab export``: metrics as CSV and TensorBoard events, a game as an HTML page and a GIF.

A small store is built by hand (no training): metric rows, and real games of random legal
moves played with the engine's functions.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import socket
import stat
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from g2048lab.cli import main
from g2048lab.engine.rules import legal_mask, new_boards, sample_legal, slide, spawn
from g2048lab.export import files, game_gif, game_html, metrics_csv, pick_game
from g2048lab.export.game_gif import frame_positions, frame_step
from g2048lab.export.game_html import game_data
from g2048lab.export.games import has_policy, score_before
from g2048lab.export.metrics import hparams, tensorboard_scalars
from g2048lab.recording import GameRecord
from g2048lab.store import GameSummary, RunStore

CHROMIUM = "/usr/bin/chromium"
RUN = "r1"
ROWS = [
    {
        "iteration": i,
        "env_steps": 256 * i,
        "train/loss": 1.0 / i,
        "rollout/score_mean": 100.0 * i,
        "time/elapsed_s": 2.5 * i,
    }
    for i in (1, 2, 3)
]
ROWS[2]["memory/gpu_gb"] = None  # a key that first appears late, with no value


def random_game(seed: int, moves: int = 60) -> GameRecord:
    """A real game of up to ``moves`` random legal moves (it may end sooner)."""
    rng = np.random.default_rng(seed)
    board = new_boards(1, rng)
    boards, actions, gains = [board[0]], [], []
    for _ in range(moves):
        mask = legal_mask(board)
        if not mask.any():
            break
        action = sample_legal(mask, rng)
        after, gain, _ = slide(board, action)
        board = spawn(after, rng)
        boards.append(board[0])
        actions.append(int(action[0]))
        gains.append(int(gain[0]))
    length = len(actions)
    probs = rng.dirichlet(np.ones(4), length).astype(np.float32)
    values = rng.normal(size=length).astype(np.float32)
    values[0] = np.nan  # a player without a value estimate for this move
    stacked = np.stack(boards).astype(np.uint8)
    return GameRecord(
        boards=stacked,
        actions=np.asarray(actions, dtype=np.int64),
        probs=probs,
        values=values,
        rewards=np.asarray(gains, dtype=np.float32),
        score_gains=np.asarray(gains, dtype=np.int64),
        score=int(sum(gains)),
        max_tile=int(2 ** int(stacked.max())),
        env_steps=1000 * seed,
        timestamp=1000.0 + seed,
    )


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    """A store with run r1 (3 metric rows, 2 games) and run empty (nothing recorded)."""
    root = tmp_path / "runs"
    store = RunStore(root)
    store.create_run(RUN, config={"preset": "tiny", "ppo": {"gamma": 0.99}}, device="cpu")
    store.create_run("empty", config={}, device="cpu")
    claim = store.claim(RUN)
    for row in ROWS:
        store.add_metrics(RUN, row)
    store.add_game(RUN, random_game(1))
    store.add_game(RUN, random_game(2))
    claim.release()
    return root


def export(runs_dir: Path, *args: str) -> int:
    return main(["export", RUN, "--runs-dir", str(runs_dir), *args])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("g2048lab export: error: ")
    return err


# --- CSV ----------------------------------------------------------------------------------


def test_metrics_csv_columns_in_order_of_first_appearance():
    assert metrics_csv([{"iteration": 1, "a": 0.5}, {"iteration": 2, "b": 1}]) == (
        "iteration,a,b\r\n1,0.5,\r\n2,,1\r\n"
    )


def test_the_dashboard_still_offers_metrics_csv():
    from g2048lab.dashboard.downloads import metrics_csv as dashboard_metrics_csv

    assert dashboard_metrics_csv is metrics_csv


def test_csv_round_trips_every_row(runs_dir, tmp_path, capsys):
    path = tmp_path / "out" / "r1.csv"
    path.parent.mkdir()
    assert export(runs_dir, "--csv", str(path)) == 0
    assert capsys.readouterr().out.startswith(f"wrote {path}: 3 metric rows, ")
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    assert reader.fieldnames == [*ROWS[0], "memory/gpu_gb"]
    for got, want in zip(rows, ROWS):
        assert int(got["env_steps"]) == want["env_steps"]
        assert float(got["train/loss"]) == want["train/loss"]  # repr round-trips a float
    assert rows[2]["memory/gpu_gb"] == "" and rows[0]["memory/gpu_gb"] == ""
    assert [p.name for p in path.parent.iterdir()] == ["r1.csv"]  # no temporary file left


# --- TensorBoard --------------------------------------------------------------------------


def test_tensorboard_scalars_keep_namespaces_and_use_env_steps_and_walltime():
    rows = [{"iteration": 1, "env_steps": 64, "train/loss": 0.5, "time/elapsed_s": 2.0}]
    rows.append({"iteration": 2, "train/loss": 0.25, "note": "text", "gpu": None, "ok": True})
    got = [(s.tag, s.value, s.step, s.walltime) for s in tensorboard_scalars(rows, 100.0)]
    assert got == [
        ("iteration", 1.0, 64, 102.0),
        ("train/loss", 0.5, 64, 102.0),
        ("time/elapsed_s", 2.0, 64, 102.0),
        ("iteration", 2.0, 2, 100.0),  # no env_steps: the iteration; no elapsed: the start
        ("train/loss", 0.25, 2, 100.0),
    ]


def test_hparams_flatten_the_config():
    config = {"seed": 0, "ppo": {"gamma": 0.99, "value_clip": None}, "teacher": None}
    assert hparams(config) == {
        "seed": 0,
        "ppo.gamma": 0.99,
        "ppo.value_clip": "None",
        "teacher": "None",
    }


def read_events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return events


def test_tensorboard_events_read_back(runs_dir, tmp_path, capsys):
    logdir = tmp_path / "tb"
    assert export(runs_dir, "--tensorboard", str(logdir)) == 0
    assert capsys.readouterr().out.startswith(f"wrote {logdir / RUN}: 3 metric rows")
    run = RunStore(runs_dir).get_run(RUN)
    events = read_events(logdir / RUN)
    scalars = set(events.Tags()["scalars"])
    assert {"iteration", "train/loss", "rollout/score_mean", "time/elapsed_s"} <= scalars
    assert "env_steps" not in scalars and "memory/gpu_gb" not in scalars
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [row["env_steps"] for row in ROWS]
    assert [e.value for e in loss] == pytest.approx([row["train/loss"] for row in ROWS])
    walltimes = [run.created_at + row["time/elapsed_s"] for row in ROWS]
    assert [e.wall_time for e in loss] == pytest.approx(walltimes)
    (config,) = events.Tensors("config/text_summary")
    text = config.tensor_proto.string_val[0].decode()
    assert text.startswith("```json\n") and json.loads(text[8:-4]) == run.config


def test_tensorboard_runs_side_by_side_and_a_new_export_replaces_the_old(runs_dir, tmp_path):
    logdir = tmp_path / "tb"
    assert export(runs_dir, "--tensorboard", str(logdir)) == 0
    assert main(["export", "empty", "--runs-dir", str(runs_dir), "--tensorboard", str(logdir)]) == 0
    first = sorted(p.name for p in (logdir / RUN).iterdir())
    assert export(runs_dir, "--tensorboard", str(logdir)) == 0
    assert sorted(p.name for p in logdir.iterdir()) == ["empty", RUN]  # nothing else left
    assert len(list((logdir / RUN).iterdir())) == len(first)  # replaced, not added to
    assert len(read_events(logdir / RUN).Scalars("train/loss")) == 3


def test_tensorboard_leaves_a_folder_of_other_files_alone(runs_dir, tmp_path, capsys):
    (tmp_path / "tb" / RUN).mkdir(parents=True)
    (tmp_path / "tb" / RUN / "mine.txt").write_text("keep me")
    assert export(runs_dir, "--tensorboard", str(tmp_path / "tb")) == 2
    assert "mine.txt" in one_error_line(capsys)
    assert (tmp_path / "tb" / RUN / "mine.txt").read_text() == "keep me"


def test_without_tensorboard_one_line_names_the_extra(runs_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard: ImportError
    assert export(runs_dir, "--tensorboard", str(tmp_path / "tb")) == 2
    assert 'pip install "g2048lab[tensorboard]"' in one_error_line(capsys)
    assert not (tmp_path / "tb").exists()


# --- which game ---------------------------------------------------------------------------


def summary(game_id: int, score: int, timestamp: float) -> GameSummary:
    return GameSummary(game_id, score, 64, 10, frozenset({"best"}), timestamp, 0)


def test_pick_game_best_latest_and_id():
    games = [summary(7, 500, 3.0), summary(3, 500, 1.0), summary(9, 100, 5.0)]
    assert pick_game(games, "best", "r").id == 3  # the earlier among equal scores
    assert pick_game(games, "latest", "r").id == pick_game(games, "recent", "r").id == 9
    assert pick_game(games, 7, "r").id == 7
    with pytest.raises(ValueError, match=r"no game 8 in run 'r'; its games: 7 \(best: score 500"):
        pick_game(games, 8, "r")
    with pytest.raises(ValueError, match="has no recorded games yet"):
        pick_game([], "best", "r")


def test_score_before_and_has_policy():
    game = random_game(1)
    assert score_before(game).tolist() == [0, *np.cumsum(game.score_gains).tolist()]
    assert has_policy(game)
    game.probs = np.eye(4, dtype=np.float32)[game.actions]  # a greedy player's record
    assert not has_policy(game)


# --- HTML ---------------------------------------------------------------------------------


class Checker(HTMLParser):
    """Every element closed in order (void elements aside); the scripts' text kept."""

    VOID = {"meta", "input", "br", "img", "link"}

    def __init__(self):
        super().__init__()
        self.open: list[str] = []
        self.scripts: list[tuple[dict, str]] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.open.append(tag)
        if tag == "script":
            self.scripts.append((dict(attrs), ""))

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, (self.open, tag)
        self.open.pop()

    def handle_data(self, data):
        if self.open and self.open[-1] == "script":
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)


def checked(page: str) -> Checker:
    checker = Checker()
    checker.feed(page)
    checker.close()
    assert checker.open == []
    return checker


def test_html_page_holds_the_game_and_nothing_from_the_network(runs_dir, tmp_path, capsys):
    path = tmp_path / "game.html"
    assert export(runs_dir, "--html", str(path), "--game", "best") == 0
    store = RunStore(runs_dir)
    best = store.games(RUN)[0]
    assert capsys.readouterr().out.startswith(f"wrote {path}: game {best.id} (best & recent: ")
    page = path.read_text()
    record = store.load_game(best.id)
    assert f"<title>{RUN} · score {record.score:,} · max tile {record.max_tile:,}</title>" in page
    assert "http://" not in page and "https://" not in page and " src=" not in page
    (data_attrs, data), (code_attrs, _) = checked(page).scripts
    assert data_attrs == {"id": "game-data", "type": "application/json"} and code_attrs == {}
    data = json.loads(data)
    assert data == json.loads(json.dumps(game_data(record)))
    assert len(data["boards"]) == record.length + 1 and data["values"][0] is None
    assert data["score"][-1] == record.score and data["actions"] == record.actions.tolist()
    assert 'name="viewport"' in page and "policy" in page


def test_a_crafted_title_or_note_cannot_break_out():
    crafted = '</script><script>alert(1)</script><b onmouseover="x">&amp;'
    page = game_html(random_game(3), title=crafted, note=crafted)
    checker = checked(page)
    assert len(checker.scripts) == 2 and "alert" not in checker.scripts[1][1]
    assert page.count("<script") == 2 and "<b onmouseover" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in page


def test_the_note_of_the_run_is_on_the_page(runs_dir, tmp_path):
    RunStore(runs_dir).set_note(RUN, "</p><script>x</script> lr 3e-4")
    assert export(runs_dir, "--html", str(tmp_path / "g.html")) == 0
    page = (tmp_path / "g.html").read_text()
    assert '<p class="note">&lt;/p&gt;&lt;script&gt;x&lt;/script&gt; lr 3e-4</p>' in page


def test_a_game_without_a_policy_says_so():
    game = random_game(4)
    game.probs = np.eye(4, dtype=np.float32)[game.actions]
    assert "move taken (this player gives no probabilities)" in game_html(game, "g")


def test_html_plays_back_on_a_phone_screen(tmp_path):
    """In Chromium at 390 px: no horizontal scroll, no request beyond the file, and the
    controls step through the game."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Python Playwright is missing: pip install -e .[dev]")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (CI installs it)")
    game = random_game(5)
    path = tmp_path / "game.html"
    path.write_text(game_html(game, "phone · a long run name without spaces" + "x" * 80))
    requests, errors = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.on("request", lambda request: requests.append(request.url))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(path.as_uri())
            text = page.locator("#move").inner_text
            assert text() == f"move 1 of {game.length}"
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.click("#forward")
            page.click("#forward")
            assert text() == f"move 3 of {game.length}"
            score = int(game.score_gains[:2].sum())
            assert page.locator("#score").inner_text() == f"{score:,}"
            chosen = page.locator("#bars .bar.chosen").get_attribute("data-action")
            assert chosen == ["UP", "RIGHT", "DOWN", "LEFT"][game.actions[2]]
            page.click("#back")
            assert text() == f"move 2 of {game.length}"
            page.locator("#slider").fill(str(game.length))
            assert text() == f"game over after {game.length} moves"
            assert page.locator("#score").inner_text() == f"{game.score:,}"
            page.locator("#slider").fill("0")
            page.select_option("#speed", "50")
            page.click("#play")
            page.wait_for_function(
                f"document.getElementById('move').textContent !== 'move 1 of {game.length}'"
            )
            page.click("#play")  # pause
        finally:
            browser.close()
    assert errors == [] and requests == [path.as_uri()]


# --- GIF ----------------------------------------------------------------------------------


def test_frame_positions_keep_the_final_board_within_the_cap():
    assert frame_positions(3).tolist() == [0, 1, 2, 3]
    assert frame_positions(10, 4).tolist() == [0, 4, 8, 10]
    assert (frame_step(598), frame_step(600), frame_step(10, 4)) == (1, 2, 4)
    for length in (0, 1, 599, 600, 601, 5000, 12345):
        positions = frame_positions(length)
        assert len(positions) <= 600 and positions[0] == 0 and positions[-1] == length


def test_gif_has_a_frame_per_position_and_holds_the_last(runs_dir, tmp_path, capsys):
    from PIL import Image

    path = tmp_path / "game.gif"
    assert export(runs_dir, "--gif", str(path), "--game", "latest") == 0
    store = RunStore(runs_dir)
    latest = max(store.games(RUN), key=lambda s: s.timestamp)
    record = store.load_game(latest.id)
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {path}: game {latest.id} ")
    assert f"in {record.length + 1} frames, " in out
    with Image.open(path) as image:
        assert (image.format, image.size, image.n_frames) == ("GIF", (320, 412), record.length + 1)
        assert image.info["duration"] == 100
        image.seek(image.n_frames - 1)
        assert image.info["duration"] == 2000


def test_a_long_game_is_sampled():
    from PIL import Image

    game = random_game(6)
    data = game_gif(game, max_frames=10)
    with Image.open(io.BytesIO(data)) as image:
        assert image.n_frames == len(frame_positions(game.length, 10)) <= 10


def test_without_pillow_one_line_names_the_extra(runs_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    assert export(runs_dir, "--gif", str(tmp_path / "g.gif")) == 2
    assert 'pip install "g2048lab[gif]"' in one_error_line(capsys)


# --- errors and files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--csv", "{tmp}/x.csv", "--runs-dir", "{tmp}/nowhere"], "no runs folder"),
        (["--html", "{tmp}/x.html", "--game", "999"], "no game 999 in run 'r1'; its games: "),
        (["--csv", "{tmp}/missing/x.csv"], "the folder {tmp}/missing does not exist"),
        (["--csv", "{tmp}/x.csv", "--game", "best"], "--game picks the game for --html or --gif"),
        ([], "say what to export"),
    ],
)
def test_errors_are_one_line(runs_dir, tmp_path, capsys, args, words):
    args = [arg.format(tmp=tmp_path) for arg in args]
    assert export(runs_dir, *args) == 2
    assert words.format(tmp=tmp_path) in one_error_line(capsys)
    assert not list(tmp_path.glob("x.*"))


def test_unknown_run_and_a_run_without_games(runs_dir, tmp_path, capsys):
    assert main(["export", "nope", "--runs-dir", str(runs_dir), "--csv", str(tmp_path / "x")]) == 2
    assert "no run 'nope'" in one_error_line(capsys)
    assert main(["export", "empty", "--runs-dir", str(runs_dir), "--gif", str(tmp_path / "x")]) == 2
    assert "run 'empty' has no recorded games yet" in one_error_line(capsys)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    assert files.write_atomic(path, "old") == 3
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        files.write_atomic(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_game_data_is_plain_json():
    game = random_game(7)
    data = game_data(game)
    json.dumps(data, allow_nan=False)
    assert data["boards"][0] == "".join(
        "0123456789abcdefghijklmnopqrstuv"[e] for e in game.boards[0].ravel()
    )
    assert all(v is None or math.isfinite(v) for v in data["values"])


# --- only regular files are written -------------------------------------------------------


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_socket(path: Path) -> None:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))  # the socket file stays after the close
    server.close()


def make_folder(path: Path) -> None:
    path.mkdir()


def make_link(path: Path) -> None:
    path.with_name("real.txt").write_text("the link's target")
    path.symlink_to(path.with_name("real.txt"))


def make_dangling_link(path: Path) -> None:
    path.symlink_to(path.with_name("nowhere"))


SPECIAL = {  # what is at the target: (how to make it, how the error names it)
    "fifo": (make_fifo, "a named pipe (FIFO)"),
    "socket": (make_socket, "a socket"),
    "folder": (make_folder, "a folder"),
    "link": (make_link, "a symbolic link to {tmp}/real.txt"),
    "dangling link": (make_dangling_link, "a symbolic link to {tmp}/nowhere"),
}


def snapshot(path: Path) -> tuple:
    """What is at ``path``: its type, inode and device numbers, a link's target."""
    info = os.lstat(path)
    link = os.readlink(path) if stat.S_ISLNK(info.st_mode) else None
    return stat.S_IFMT(info.st_mode), info.st_ino, info.st_rdev, link


@pytest.mark.parametrize("flag", ["--csv", "--html", "--gif"])
@pytest.mark.parametrize("kind", SPECIAL)
def test_a_special_file_link_or_folder_at_the_target_is_refused_and_kept(
    runs_dir, tmp_path, capsys, flag, kind
):
    make, words = SPECIAL[kind]
    target = tmp_path / "out"
    make(target)
    before = snapshot(target)
    assert export(runs_dir, flag, str(target)) == 2
    line = one_error_line(capsys)
    assert f"cannot write {target}: it is {words.format(tmp=tmp_path)}, and exports" in line
    assert snapshot(target) == before
    if kind == "link":
        assert (tmp_path / "real.txt").read_text() == "the link's target"
    assert not list(tmp_path.glob(".out.*"))  # no temporary left


@pytest.mark.parametrize("device", ["/dev/null", "/dev/full"])
def test_a_device_is_never_replaced(runs_dir, capsys, device):
    """As root the rename would succeed: the check is what keeps the device node."""
    if not os.path.exists(device):
        pytest.skip(f"no {device} here")
    before = snapshot(Path(device))
    assert export(runs_dir, "--csv", device) == 2
    assert f"cannot write {device}: it is a character device" in one_error_line(capsys)
    assert snapshot(Path(device)) == before and stat.S_ISCHR(os.stat(device).st_mode)


def test_a_special_file_that_appears_while_writing_is_kept(tmp_path, monkeypatch):
    """The target is checked again just before the rename (which would replace it)."""
    target = tmp_path / "out.csv"
    real_fsync = os.fsync

    def fsync_then_a_fifo_appears(fd):
        real_fsync(fd)
        os.mkfifo(target)

    monkeypatch.setattr(os, "fsync", fsync_then_a_fifo_appears)
    with pytest.raises(ValueError, match="it is a named pipe"):
        files.write_atomic(target, "a,b\n")
    assert stat.S_ISFIFO(os.lstat(target).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


@pytest.mark.parametrize("kind", ["fifo", "link", "socket"])
def test_tensorboard_refuses_a_special_file_or_link_for_the_runs_folder(
    runs_dir, tmp_path, capsys, kind
):
    logdir = tmp_path / "tb"
    logdir.mkdir()
    make, words = SPECIAL[kind]
    make(logdir / RUN)
    if kind == "link":  # to a folder that looks like an earlier export: it is not emptied
        (logdir / "real.txt").unlink()
        (logdir / "real.txt").mkdir()
        (logdir / "real.txt" / "events.out.tfevents.1").write_text("theirs")
    before = snapshot(logdir / RUN)
    assert export(runs_dir, "--tensorboard", str(logdir)) == 2
    assert f"{logdir / RUN} is {words.format(tmp=logdir)}: move" in one_error_line(capsys)
    assert snapshot(logdir / RUN) == before
    expected = [RUN, "real.txt"] if kind == "link" else [RUN]
    assert sorted(p.name for p in logdir.iterdir()) == sorted(expected)  # nothing staged
    if kind == "link":
        assert (logdir / "real.txt" / "events.out.tfevents.1").read_text() == "theirs"


def test_tensorboard_into_a_device_or_fifo_is_refused(runs_dir, tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe")
    for logdir, words in [("/dev/null", "a character device"), (tmp_path / "pipe", "a named")]:
        before = snapshot(Path(logdir))
        assert export(runs_dir, "--tensorboard", str(logdir), "--csv", str(tmp_path / "x")) == 2
        assert f"cannot write into {logdir}: it is {words}" in one_error_line(capsys)
        assert snapshot(Path(logdir)) == before
    assert not (tmp_path / "x").exists()  # refused before any export is written


def test_a_link_to_a_folder_is_a_fine_tensorboard_folder(runs_dir, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "tb").symlink_to(tmp_path / "real")
    assert export(runs_dir, "--tensorboard", str(tmp_path / "tb")) == 0
    assert (tmp_path / "tb").is_symlink() and len(
        read_events(tmp_path / "real" / RUN).Scalars("train/loss")
    ) == 3
