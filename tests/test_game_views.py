"""Everything that shows a board or a game follows the game's board shape and names the game:
the dashboard's board, its attention labels and header, the replay viewer, the runs table,
exported GIFs and pages, the terminal's tables, ``runs --json``."""

import gc
import io
import json
import re
import shutil

import numpy as np
import pytest

from g2048lab import games
from g2048lab.cli.tables import board_table, summary_table
from g2048lab.dashboard import Snapshot
from g2048lab.dashboard.board import GameView, board_html
from g2048lab.dashboard.charts import token_labels
from g2048lab.dashboard.header import header_html
from g2048lab.dashboard.history import RunHistory
from g2048lab.dashboard.metric_grid import ChartView
from g2048lab.dashboard.panels import ModelPanel
from g2048lab.dashboard.replay import ReplayViewer
from g2048lab.dashboard.runs_table import run_rows, runs_table_html
from g2048lab.engine.rules import to_values
from g2048lab.export import game_gif, game_html
from g2048lab.export.game_gif import GAP, HEADER, frame_size, tile_size
from g2048lab.export.game_html import game_data
from g2048lab.palette import LIGHT_TEXT, TILE_BACKGROUND, tile_colors
from g2048lab.recording import GameRecord
from g2048lab.store import RunStore

from .factories import training_update

CHROMIUM = "/usr/bin/chromium"


def board_record(rows: int, cols: int, moves: int = 3, seed: int = 0) -> GameRecord:
    """A GameRecord of random (not necessarily legal) (rows, cols) boards, tiles up to 2**17."""
    rng = np.random.default_rng(seed)
    return GameRecord(
        boards=rng.integers(0, 18, (moves + 1, rows, cols), dtype=np.uint8),
        actions=rng.integers(0, 4, moves),
        probs=rng.dirichlet(np.ones(4), moves).astype(np.float32),
        values=rng.random(moves, dtype=np.float32),
        rewards=rng.random(moves, dtype=np.float32),
        score_gains=rng.integers(0, 64, moves),
        score=1000,
        max_tile=2**17,
    )


def tiles(text: str) -> list[int]:
    return [int(v) for v in re.findall(r'data-value="(\d+)"', text)]


def rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


# --- exports ----------------------------------------------------------------------------


@pytest.mark.parametrize("rows, cols, size", [(5, 5, (398, 490)), (3, 3, (320, 412))])
def test_a_gif_frame_follows_the_board(rows, cols, size):
    pytest.importorskip("PIL")
    from PIL import Image

    record = board_record(rows, cols)
    assert frame_size(rows, cols) == size
    with Image.open(io.BytesIO(game_gif(record))) as image:
        assert (image.size, image.n_frames) == (size, record.length + 1)
        frame = image.convert("RGB")
    assert_frame_shows(frame, record.boards[0])


def assert_frame_shows(frame, board: np.ndarray) -> None:
    """Each tile's corner (inside its rounding) in the GIF frame has the colour of the tile
    of the (R, C) exponent ``board`` there."""
    rows, cols = board.shape
    cell = tile_size(cols)
    values = to_values(board)
    for row in range(rows):
        for col in range(cols):
            x, y = GAP + col * (cell + GAP) + 5, HEADER + GAP + row * (cell + GAP) + 5
            assert frame.getpixel((x, y)) == rgb(tile_colors(int(values[row, col]))[0])


@pytest.mark.parametrize("rows, cols", [(5, 5), (3, 3)])
def test_a_game_page_has_a_tile_per_cell_in_the_boards_grid(rows, cols):
    record = board_record(rows, cols)
    page = game_html(record, "run")
    assert page.count('<div class="tile"></div>') == rows * cols
    assert f"grid-template-columns:repeat({cols},1fr)" in page
    assert f"2048 on {rows}x{cols} · 3 moves" in page
    boards = game_data(record)["boards"]
    assert [len(board) for board in boards] == [rows * cols] * (record.length + 1)
    assert [int(digit, 32) for digit in boards[-1]] == record.boards[-1].ravel().tolist()


def test_a_5x5_game_page_draws_five_rows_of_five_tiles():
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    record = board_record(5, 5)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.set_content(game_html(record, "five"))
        boxes = [tile.bounding_box() for tile in page.locator("#board .tile").all()]
        texts = page.locator("#board .tile").all_text_contents()
        browser.close()
    assert len({round(b["x"]) for b in boxes}) == 5 and len({round(b["y"]) for b in boxes}) == 5
    assert max(b["x"] + b["width"] for b in boxes) <= 390
    shown = [int(t) if t else 0 for t in texts]
    assert shown == to_values(record.boards[0]).ravel().tolist()


# --- the dashboard ----------------------------------------------------------------------


def test_the_board_widget_draws_a_3x3_board():
    three = games.get("2048-3x3")
    view = GameView(three)
    assert tiles(view.board.value) == [0] * 9  # the game's empty board
    board = [[2, 0, 4], [8, 16, 0], [0, 2048, 4096]]
    view.show(board, [0.1, 0.2, 0.3, 0.4], 3, "a caption", three)
    assert tiles(view.board.value) == [2, 0, 4, 8, 16, 0, 0, 2048, 4096]
    assert 'data-shape="3x3"' in view.board.value
    assert "grid-template-columns:repeat(3,1fr);grid-template-rows:repeat(3,1fr)" in (
        view.board.value
    )
    assert "← left" in view.bars.value
    wide = board_html([[2, 4, 8]] * 2)  # 2 rows of 3: as wide as 3, as high as 2
    assert "aspect-ratio:3/2" in wide and tiles(wide) == [2, 4, 8] * 2


def test_tiles_beyond_2048_have_a_colour_each():
    big = [2**e for e in range(12, 18)]  # 4096 .. 131072, on 5x5 and 6x6 boards
    backgrounds = [tile_colors(v)[0] for v in big]
    assert len(set(backgrounds)) == len(big)
    assert not set(backgrounds) & {TILE_BACKGROUND[2**e] for e in range(0, 12) if e != 0}
    assert all(tile_colors(v)[1] == LIGHT_TEXT for v in big)


def test_attention_on_a_5x5_board_is_labelled_by_its_cells():
    board = [[2] * 5 for _ in range(5)]
    update = training_update(board_state=board, attention_weights=[[[1 / 25] * 25] * 25])
    panel = ModelPanel()
    panel.draw([_history(update)], ChartView())
    heatmap = panel.chart.traces["attention"]
    assert list(heatmap.x) == token_labels(5, 5) and len(heatmap.z) == 25
    assert heatmap.x[5] == "r2c1" and heatmap.x[-1] == "r5c5"


def test_the_replay_viewer_shows_a_runs_board(tmp_path):
    store = RunStore(tmp_path / "runs")
    store.create_run("five", config={"game": "2048-5x5", "learner": "ntuple"}, device="cpu")
    viewer = ReplayViewer(store, "five")
    assert viewer.rules.name == "2048-5x5" and tiles(viewer.view.board.value) == [0] * 25
    record = board_record(3, 3)
    games_viewer = ReplayViewer([record])
    games_viewer.show(1)
    assert tiles(games_viewer.view.board.value) == to_values(record.boards[1]).ravel().tolist()
    del viewer, store
    gc.collect()


def test_the_header_and_the_runs_table_name_the_game(tmp_path):
    store = RunStore(tmp_path / "runs")
    store.create_run("five", config={"game": "2048-5x5", "learner": "ntuple"}, device="cpu")
    store.create_run("old", config={"learner": "ntuple"}, device="cpu")  # from before games: 4x4
    rows = {row.name: row for row in run_rows(store)}
    assert (rows["five"].game, rows["old"].game) == ("2048-5x5", "2048-4x4")
    table = runs_table_html(list(rows.values()))
    assert '<td data-label="game">2048-5x5</td>' in table
    assert '<td data-label="game">2048-4x4</td>' in table
    assert '<span class="g2048lab-game">2048-3x3</span> · cpu' in header_html(
        "r", "running", game="2048-3x3", device="cpu"
    )
    del store
    gc.collect()


# --- the terminal -----------------------------------------------------------------------


def render(renderable, width: int = 80) -> str:
    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def test_the_eval_table_shows_the_games_tiles():
    five = games.get("2048-5x5")
    share = dict(zip(five.eval_tiles, (0.9, 0.6, 0.2, 0.0, 0.0, 0.0)))
    summary = {
        "games": 100,
        "mean_score": 51234.0,
        "median_score": 50000.0,
        "max_score": 99999,
        "tile_share": {str(t): s for t, s in share.items()},  # as in JSON
    }
    text = render(summary_table({"ntuple, greedy": summary}))
    shown = re.findall(r"^│ *(\d+) │ *([\d.]+)% │$", text, re.MULTILINE)
    # the game's tiles, up to the first one no game reached
    assert shown == [("1024", "90.0"), ("2048", "60.0"), ("4096", "20.0"), ("8192", "0.0")]
    assert five.eval_tiles[:4] == (1024, 2048, 4096, 8192)


def test_the_board_table_has_a_column_per_column_of_the_board():
    board = np.arange(1, 16, dtype=np.uint8).reshape(3, 5)
    text = render(board_table(board, "corner: score 12", "2048 on 3x5"))
    assert text.splitlines()[0].strip() == "corner: score 12"
    assert text.splitlines()[-1].strip() == "2048 on 3x5"
    first_row = next(line for line in text.splitlines() if "2" in line and "│" in line)
    assert first_row.count("│") == 6  # 5 cells between 6 borders
    assert "32768" in text  # exponent 15, the last cell


def test_runs_json_and_the_runs_table_name_each_runs_game(tmp_path, capsys, monkeypatch):
    from g2048lab.cli import main

    runs = tmp_path / "runs"
    store = RunStore(runs)
    store.create_run("five", config={"game": "2048-5x5", "learner": "ntuple"}, device="cpu")
    store.create_run("old", config={"learner": "ntuple"}, device="cpu")  # from before games: 4x4
    del store
    gc.collect()
    assert main(["runs", "--runs-dir", str(runs), "--json"]) == 0
    listed = {run["name"]: run["game"] for run in json.loads(capsys.readouterr().out)}
    assert listed == {"five": "2048-5x5", "old": "2048-4x4"}
    monkeypatch.setenv("COLUMNS", "160")
    assert main(["runs", "--runs-dir", str(runs)]) == 0
    table = capsys.readouterr().out
    assert "game" in table and "2048-5x5" in table and "2048-4x4" in table
    gc.collect()


# --- helpers ----------------------------------------------------------------------------


def _history(update) -> RunHistory:
    history = RunHistory("r")
    history.absorb(Snapshot(updates=[update], metrics=[], status="running"))
    return history


def test_runs_compare_shows_the_reach_tiles_of_the_runs_games(tmp_path, capsys):
    from g2048lab.cli import main

    runs = tmp_path / "runs"
    store = RunStore(runs)
    for name, score in (("a", 30_000.0), ("b", 40_000.0)):
        store.create_run(name, config={"game": "2048-5x5", "learner": "ntuple"}, device="cpu")
        row = {"iteration": 1, "env_steps": 100, "rollout/score_mean": score}
        store.add_metrics(name, {**row, "rollout/reach_4096": 0.5, "rollout/reach_8192": 0.25})
    del store
    gc.collect()
    assert main(["runs", "--runs-dir", str(runs), "--compare", "a", "b", "--json"]) == 0
    ended = json.loads(capsys.readouterr().out)["metrics"]["a"]
    assert list(ended)[:5] == [  # the 5x5 game's reach tiles, in place of 4x4's
        "rollout/score_mean",
        "rollout/best_score",
        "rollout/max_tile",
        "rollout/reach_4096",
        "rollout/reach_8192",
    ]
    assert (ended["rollout/reach_4096"], ended["rollout/reach_8192"]) == (0.5, 0.25)
    assert main(["runs", "--runs-dir", str(runs), "--compare", "a", "b"]) == 0
    assert "recent games reaching 8192" in capsys.readouterr().out
    gc.collect()


def test_a_3x3_run_is_named_and_shown_as_3x3_from_training_to_export(tmp_path, capsys):
    """A real (tiny) 3x3 n-tuple run: runs --json, eval --json and play --json name its game,
    its recorded game exports as a page of 9 tiles and a GIF of 3x3 frames."""
    pytest.importorskip("PIL")
    from PIL import Image

    from g2048lab.cli import main

    runs = str(tmp_path / "runs")
    train = ["train", "--game", "2048-3x3", "--learner", "ntuple", "--ntuple.tuples", "5x4"]
    assert main([*train, "--steps", "2000", "--runs-dir", runs, "--run-name", "t", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["runs", "--runs-dir", runs, "--json"]) == 0
    assert [run["game"] for run in json.loads(capsys.readouterr().out)] == ["2048-3x3"]
    assert main(["eval", f"{runs}/t", "--games", "4", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["game"] == "2048-3x3"
    assert set(evaluated["tile_share"]) == {str(t) for t in games.get("2048-3x3").eval_tiles}
    assert main(["play", "--checkpoint", f"{runs}/t", "--games", "4", "--no-watch", "--json"]) == 0
    played = json.loads(capsys.readouterr().out)  # the baselines play the checkpoint's game
    assert {name: row["game"] for name, row in played.items()} == dict.fromkeys(
        ["random", "corner", "ntuple"], "2048-3x3"
    )
    page, gif = tmp_path / "t.html", tmp_path / "t.gif"
    assert main(["export", "t", "--runs-dir", runs, "--html", str(page), "--gif", str(gif)]) == 0
    assert page.read_text().count('<div class="tile"></div>') == 9
    store = RunStore(runs, create=False)
    best = max(store.games("t"), key=lambda s: (s.score, -s.id))
    record = store.load_game(best.id)
    with Image.open(gif) as image:
        assert image.size == frame_size(3, 3)
        assert_frame_shows(image.convert("RGB"), record.boards[0])
    del store
    gc.collect()
