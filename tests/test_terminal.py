"""What a person sees in an 80-column terminal: tables (with eval's intervals) and the
progress line keep every number and the run name whole; default run names never collide;
search depth is bounded; the top-level help reads as prose."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from g2048lab import stats
from g2048lab.cli import build_parser
from g2048lab.cli.tables import summary_table
from g2048lab.cli.train import progress_stats, training_progress
from g2048lab.engine.search import MAX_DEPTH
from g2048lab.evaluation import TILE_THRESHOLDS, EvalResult
from g2048lab.learners.loading import load_checkpoint
from g2048lab.store import RunStore

from .factories import training_update

CLI = [sys.executable, "-m", "g2048lab"]
TINY = ["--preset", "tiny", "--device", "cpu", "--threads", "1"]
TINY_ITERATION = 64 * 32  # the tiny preset's games x moves per rollout on the CPU


def g2048lab(*args, columns: int = 80, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env
    )


def render(renderable, width: int) -> str:
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(renderable)
    return console.export_text()


def assert_fits(text: str, width: int, whole: list[str]) -> None:
    """Every line of ``text`` fits ``width``, nothing is cut with an ellipsis, and every
    string of ``whole`` appears unbroken."""
    too_wide = [line for line in text.splitlines() if len(line) > width]
    assert not too_wide, f"wider than {width}:\n" + "\n".join(too_wide)
    assert "…" not in text, text
    missing = [s for s in whole if s not in text]
    assert not missing, f"cut or missing: {missing}\n{text}"


def summary_numbers(summary: dict) -> list[str]:
    """The numbers a summary table shows, as it formats them."""
    shares = {int(t): share for t, share in summary["tile_share"].items()}
    return [
        f"{summary['mean_score']:,.0f}",
        f"{summary['median_score']:,.0f}",
        f"{summary['max_score']:,}",
        *(f"{100 * share:.1f}%" for share in shares.values() if share > 0),
    ]


# --- tables ---------------------------------------------------------------------------------

STRONG = {  # a strong player with six- and seven-digit scores and every tile reached
    "games": 1000,
    "mean_score": 146483.4,
    "median_score": 155662.0,
    "max_score": 1234567,
    "tile_share": {256: 1.0, 512: 1.0, 1024: 0.991, 2048: 0.982, 4096: 0.973, 8192: 0.845},
}
WEAK = {
    "games": 1000,
    "mean_score": 1076.2,
    "median_score": 966.0,
    "max_score": 3028,
    "tile_share": {256: 0.081, 512: 0.012, 1024: 0.0, 2048: 0.0, 4096: 0.0, 8192: 0.0},
}


@pytest.mark.parametrize("width", [80, 60])
def test_summary_tables_keep_every_number_whole(width):
    rows = {"random": WEAK, "ntuple, search depth 3": STRONG}
    text = render(summary_table(rows), width)
    assert_fits(
        text,
        width,
        ["1,000", *summary_numbers(STRONG), *summary_numbers(WEAK), "8192", "depth"],
    )


def test_summary_tables_leave_out_tiles_past_the_first_no_game_reached():
    text = render(summary_table({"random": WEAK}), 80)
    assert "1024" in text and "0.0%" in text  # the first tile nobody reached is shown
    assert "2048" not in text and "8192" not in text


@pytest.fixture(scope="module")
def ntuple_run(tmp_path_factory) -> Path:
    """A small n-tuple run (1 MB of weights) that scores in the tens of thousands."""
    runs = tmp_path_factory.mktemp("runs")
    args = ["--learner", "ntuple", "--ntuple.tuples", "5x4", "--steps", 200_000]
    done = g2048lab("train", *args, "--runs-dir", runs, "--run-name", "nt", "--quiet")
    assert done.returncode == 0, done.stderr
    return runs / "nt"


@pytest.mark.parametrize("width, play", [(80, []), (60, ["--search", 2])])
def test_eval_prints_every_number_whole(ntuple_run, width, play):
    args = ["eval", ntuple_run, "--games", 12, *play]
    as_json = g2048lab(*args, "--json")
    assert as_json.returncode == 0, as_json.stderr
    expected = json.loads(as_json.stdout)
    shown = g2048lab(*args, columns=width)
    assert shown.returncode == 0, shown.stderr
    assert expected["mean_score"] > 1000  # numbers as long as those that were cut
    assert_fits(shown.stdout, width, summary_numbers(expected))


def test_play_prints_every_number_whole(ntuple_run):
    args = ["play", "--checkpoint", ntuple_run, "--no-watch", "--games", 12]
    as_json = g2048lab(*args, "--json")
    assert as_json.returncode == 0, as_json.stderr
    expected = json.loads(as_json.stdout)
    shown = g2048lab(*args)
    assert shown.returncode == 0, shown.stderr
    assert set(expected) == {"random", "corner", "ntuple"}
    assert_fits(shown.stdout, 80, [n for s in expected.values() for n in summary_numbers(s)])


# --- the progress line ----------------------------------------------------------------------


def test_the_progress_line_keeps_the_run_name_and_numbers_whole_at_80_columns(tmp_path):
    name = "a-rather-long-run-name-for-80-columns-x1"
    done = g2048lab(
        "train", *TINY, "--steps", TINY_ITERATION, "--runs-dir", tmp_path, "--run-name", name
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    bar = next((i for i, line in enumerate(lines) if line.startswith(name)), None)
    assert bar is not None, f"no line starts with the whole run name:\n{done.stderr}"
    progress = "\n".join(lines[bar : bar + 2])
    assert_fits(progress, 80, [name, "100%", f"{TINY_ITERATION:,} steps", "best tile", "loss"])


@pytest.mark.parametrize("width", [80, 60])
def test_progress_layout_fits_with_large_numbers(width):
    progress = training_progress(Console(width=width, file=io.StringIO()))
    name = "run-20261204-191955-3"
    task = progress.add_task(name, total=50_000_000)
    update = training_update(
        env_steps=12_345_678, steps_per_second=23_456.0, score=123_456.0, max_tile=16384, loss=0.123
    )
    progress.update(task, completed=12_345_678, stats=progress_stats(update))
    text = render(progress.get_renderable(), width)
    assert text.splitlines()[0].startswith(name)
    assert_fits(text, width, [name, "12,345,678 steps", "23,456/s", "123,456", "16384", "0.123"])


# --- default run names ----------------------------------------------------------------------


def test_runs_started_together_without_a_name_get_distinct_names(tmp_path):
    # the names the store would pick for the next minute are taken, so every run, started
    # in the same second or not, must find a free one while the others look too
    store = RunStore(tmp_path)
    now = time.time()
    for second in range(60):
        taken = time.strftime("run-%Y%m%d-%H%M%S", time.localtime(now + second))
        store.create_run(taken, config={}, device="cpu")
    args = ["train", *TINY, "--steps", 2000, "--quiet", "--runs-dir", tmp_path]
    procs = [
        subprocess.Popen([*CLI, *map(str, args)], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    new = [r for r in RunStore(tmp_path).list_runs() if r.config]
    names = {r.name for r in new}
    assert len(names) == 3 and all(r.status == "finished" for r in new)
    assert all(re.fullmatch(r"run-\d{8}-\d{6}-\d+", n) for n in names), names
    for name in names:  # each process trained under the name the store gave it
        assert load_checkpoint(tmp_path / name)["run_id"] == name
        assert f"run {name} finished" in "".join(errors)


# --- search depth ---------------------------------------------------------------------------


def test_search_deeper_than_the_bound_is_refused_in_one_line(ntuple_run, tmp_path):
    ppo = g2048lab("train", *TINY, "--steps", TINY_ITERATION, "--quiet", "--runs-dir", tmp_path)
    assert ppo.returncode == 0, ppo.stderr
    (ppo_run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    for args in (
        ["eval", ppo_run, "--search", 99],
        ["eval", ntuple_run, "--search", MAX_DEPTH + 1],
        ["play", "--checkpoint", ppo_run, "--search", 99, "--no-watch"],
    ):
        start = time.monotonic()
        refused = g2048lab(*args, timeout=60)
        assert time.monotonic() - start < 60
        assert refused.returncode == 2, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert f"use 1 to {MAX_DEPTH}" in refused.stderr and "Traceback" not in refused.stderr
    deepest = g2048lab("eval", ntuple_run, "--games", 2, "--search", MAX_DEPTH, "--json")
    assert deepest.returncode == 0, deepest.stderr
    assert json.loads(deepest.stdout)["play"] == f"search depth {MAX_DEPTH}"


# --- help -----------------------------------------------------------------------------------


def test_the_top_level_help_is_prose_that_fits_80_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    text = build_parser().format_help()
    assert "`" not in text
    assert "Train 2048 players" in text
    for command in ("play", "train", "eval", "runs", "export", "dashboard"):
        assert re.search(rf"^\s+{command}\b", text, re.MULTILINE), command
    assert max(map(len, text.splitlines())) <= 80


# --- what eval and play report ------------------------------------------------------------


def test_evaluation_summary_has_intervals():
    max_tiles = np.array([256] * 72 + [128] * 28)
    result = EvalResult(np.full(100, 3000), max_tiles, np.full(100, 250))
    summary = result.summary()
    assert summary["mean_score_ci"] == [3000.0, 3000.0] and summary["confidence"] == 0.95
    assert summary["tile_share_ci"][256] == pytest.approx([0.6251, 0.7986], abs=1e-4)
    assert summary["tile_share_ci"][512][0] == 0 and summary["tile_share_ci"][512][1] > 0
    # a strong player's tiles beyond the game's list (up to 8192 on 4x4) are reported too
    strong = EvalResult(np.full(4, 9e5), np.array([8192, 16384, 16384, 32768]), np.full(4, 9))
    shares = strong.summary()["tile_share"]
    assert (shares[8192], shares[16384], shares[32768]) == (1.0, 0.75, 0.25) and 65536 not in shares
    assert "32768" in render(summary_table({"strong": strong.summary()}), 80)
    single = EvalResult(np.array([500]), np.array([64]), np.array([90])).summary()
    assert single["mean_score_ci"] is None  # one game has no interval
    assert "500" in render(summary_table({"one game": single}), 80)


def strong_summary() -> dict:
    """A strong player over 1,000 games: six-digit scores, every tile reached."""
    rng = np.random.default_rng(0)
    scores = rng.gamma(2, 70_000, 1000).astype(np.int64)
    max_tiles = rng.choice([2048, 4096, 8192], 1000)
    return EvalResult(scores, max_tiles, np.full(1000, 5000)).summary()


def weak_summary() -> dict:
    rng = np.random.default_rng(1)
    scores = rng.gamma(2, 500, 1000).astype(np.int64)
    return EvalResult(scores, rng.choice([64, 128, 256], 1000), np.full(1000, 90)).summary()


def interval_numbers(summary: dict) -> list[str]:
    low, high = summary["mean_score_ci"]
    shares = [
        f"{100 * share:.1f}% ({100 * low:.1f}–{100 * high:.1f})"
        for share, (low, high) in zip(
            summary["tile_share"].values(), summary["tile_share_ci"].values()
        )
        if share > 0
    ]
    return [f"{low:,.0f}–{high:,.0f}", *shares]


@pytest.mark.parametrize("width, players", [(80, 3), (60, 1)])
def test_summary_tables_with_intervals_keep_every_number_whole(width, players):
    rows = {
        "random": weak_summary(),
        "corner": weak_summary(),
        "ntuple, search depth 3": strong_summary(),
    }
    rows = dict(list(rows.items())[-players:])
    whole = [n for s in rows.values() for n in summary_numbers(s) + interval_numbers(s)]
    assert_fits(render(summary_table(rows), width), width, [*whole, "8192", "95% interval"])


def test_eval_reports_intervals_and_its_seed(ntuple_run):
    args = ["eval", ntuple_run, "--games", 30, "--device", "cpu"]
    first, again = (json.loads(g2048lab(*args, "--json").stdout) for _ in range(2))
    assert first == {**again, "ms_per_move": first["ms_per_move"]}  # same games, same intervals
    assert first["seed"] == 10_000 and first["confidence"] == 0.95
    low, high = first["mean_score_ci"]
    assert low <= first["mean_score"] <= high and low < high
    assert set(first["tile_share_ci"]) == {str(t) for t in TILE_THRESHOLDS}
    k = round(first["tile_share"]["256"] * 30)
    assert first["tile_share_ci"]["256"] == pytest.approx(stats.wilson_interval(k, 30).bounds())
    other = json.loads(g2048lab(*args, "--seed", 1, "--json").stdout)
    assert other["seed"] == 1 and other["mean_score"] != first["mean_score"]
    shown = g2048lab(*args, "--seed", 1)
    assert shown.returncode == 0, shown.stderr
    assert_fits(shown.stdout, 80, [*summary_numbers(other), *interval_numbers(other)])
    assert "30 games from seed 1." in shown.stdout
