"""The run store under faults caused for real: a disk that fills up while runs are written,
a page of the store overwritten with garbage, a game's bytes damaged, a runs folder that is
not there, processes naming runs in the same second; and the runs tables at 80 columns."""

import gc
import multiprocessing
import os
import random
import re
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest
from rich.cells import cell_len

from g2048lab.store import (
    RESERVE_NAME,
    DiskFull,
    RunStore,
    StoreDamaged,
    StoreError,
    check_store,
)

from .factories import game_record

PAGE = 4096  # SQLite's default page size, which the store keeps
CLI = [sys.executable, "-m", "g2048lab"]


def cli(*args, capsys) -> tuple[int, str, str]:
    """``g2048lab ARGS`` in this process: (exit code, stdout, stderr)."""
    from g2048lab.cli import main

    code = main([*map(str, args)])
    gc.collect()  # closes the command's store connections, as its process exit would
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str, command: str = "runs") -> str:
    """The one error line of a command, checked to be just that."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"g2048lab {command}: error: "), err
    return lines[0]


def checkpoint_and_close(root: Path) -> None:
    """Fold the WAL into the store's file, so that its pages are all there, and close."""
    gc.collect()
    with closing(sqlite3.connect(root / "runs.sqlite")) as db:
        assert db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # not busy


@pytest.fixture
def tmpfs(tmp_path):
    """A 2 MB tmpfs (half of it the store's reserve file, once a store is made there)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "disk"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        gc.collect()
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Fill the disk of ``folder`` to the last byte with one file; returns it."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as file:
        try:
            while True:
                file.write(bytes(PAGE))
                file.flush()
        except OSError as error:
            assert error.errno == 28  # ENOSPC
    return filler


# --- a full disk ----------------------------------------------------------------------------


def test_a_full_disk_is_said_to_be_full_and_the_store_survives_it(tmpfs, capsys):
    written: dict[str, int] = {}  # run -> metric rows committed
    failure: list[tuple[type, str]] = []  # not the error: its frames hold a connection

    def runs_writing_until_the_disk_is_full():
        store = RunStore(tmpfs)
        try:
            for i in range(10_000):
                name = f"r{i}"
                store.create_run(name, config={"pad": "c" * 2000}, device="cpu")
                written[name] = 0
                for iteration in range(1, 6):
                    store.add_metrics(name, {"iteration": iteration, "pad": "m" * 2000})
                    written[name] = iteration
        except StoreError as error:
            failure.append((type(error), str(error)))

    writer = threading.Thread(target=runs_writing_until_the_disk_is_full)
    writer.start()
    writer.join(60)
    assert failure, "the disk never filled up"
    kind, message = failure[0]
    assert kind is DiskFull, message
    assert "the disk is full (database or disk is full)" in message
    assert "nothing stored is lost" in message and "free some space" in message
    assert "move" not in message and "\n" not in message
    assert len(written) >= 3

    def intact() -> None:
        found = check_store(tmpfs)
        assert found.problems == () and found.runs == len(written)
        store = RunStore(tmpfs, create=False)
        assert {r.name for r in store.list_runs()} == set(written)
        for name, rows in written.items():
            assert [row["iteration"] for row in store.metrics(name)] == list(range(1, rows + 1))

    (tmpfs / RESERVE_NAME).unlink()  # space freed: the store is whole, nothing was lost
    intact()
    checkpoint_and_close(tmpfs)
    assert sorted(p.name for p in tmpfs.iterdir()) == ["runs.sqlite"]  # -wal, -shm: gone

    filler = fill(tmpfs)  # opening the store now cannot make its -shm: "disk I/O error"
    for args in (["runs"], ["runs", "--json"], ["runs", "note", "r0", "hi"], ["runs", "check"]):
        code, out, err = cli(*args, "--runs-dir", tmpfs, capsys=capsys)
        line = one_line(err)
        assert code == 2 and out == "", args
        assert f"the run store {tmpfs / 'runs.sqlite'}: the disk is full" in line, line
        assert "nothing stored is lost: free some space on that disk and try again" in line
        assert "move" not in line
    real = subprocess.run([*CLI, "runs", "--runs-dir", tmpfs], capture_output=True, text=True)
    assert real.returncode == 2 and "Traceback" not in real.stderr
    assert "the disk is full (disk I/O error)" in one_line(real.stderr), real.stderr

    filler.unlink()  # and once there is room again, everything is there
    assert cli("runs", "check", "--runs-dir", tmpfs, capsys=capsys)[0] == 0
    assert (
        cli("runs", "note", "r0", "after the full disk", "--runs-dir", tmpfs, capsys=capsys)[0] == 0
    )
    intact()
    assert RunStore(tmpfs).get_run("r0").note == "after the full disk"


# --- a damaged store ------------------------------------------------------------------------


def build_store(root: Path, runs: int) -> dict[str, int]:
    """A store of ``runs`` runs (r000, r001...) with metrics and, for every 10th, games;
    each run's config holds a MARKER-nnnn to find its row in the file. Returns run ids."""
    store = RunStore(root)
    ids = {}
    for i in range(runs):
        name = f"r{i:03d}"
        config = {"marker": f"MARKER-{i:04d}", "ppo": {"learning_rate": 1e-5 * (i + 1)}}
        ids[name] = store.create_run(name, config=config, device="cpu").id
        rows = [{"iteration": k, "env_steps": 2048 * k, "rollout/score_mean": 100.0 * k}
                for k in range(1, 11)]  # fmt: skip
        store.add_metrics_batch(name, rows)
        if i % 10 == 0:
            for score in (1000 + i, 2000 + i):
                store.add_game(name, game_record(score, moves=40))
    return ids


def overwrite_page_holding(path: Path, marker: bytes, seed: int = 21) -> set[str]:
    """Overwrite the page of ``path`` that holds ``marker`` with random bytes; returns the
    runs whose rows were on it (by their MARKER-nnnn)."""
    data = path.read_bytes()
    page = data.index(marker) // PAGE
    assert 2 < page < len(data) // PAGE - 2  # in the middle of the file
    held = re.findall(rb"MARKER-(\d{4})", data[page * PAGE : (page + 1) * PAGE])
    with path.open("r+b") as file:
        file.seek(page * PAGE)
        file.write(random.Random(seed).randbytes(PAGE))
    return {f"r{int(n):03d}" for n in held}


def test_a_damaged_page_is_one_line_everywhere_and_what_can_be_read_is_recovered(tmp_path, capsys):
    root = tmp_path / "runs"
    ids = build_store(root, 120)
    checkpoint_and_close(root)
    lost = overwrite_page_holding(root / "runs.sqlite", b"MARKER-0060")
    assert "r060" in lost and len(lost) < 40
    path = root / "runs.sqlite"
    for args in (
        ["runs"],
        ["runs", "--json"],
        ["runs", "--compare", "r060", "r061"],
        ["runs", "note", "r060", "hi"],
        ["export", "r060", "--html", tmp_path / "r060.html"],
    ):
        code, out, err = cli(*args, "--runs-dir", root, capsys=capsys)
        line = one_line(err, args[0])
        assert code == 2, args
        assert f"the run store {path} is damaged (database disk image is malformed)" in line
        assert f"g2048lab runs check --runs-dir {root} says what is damaged" in line
    assert not (tmp_path / "r060.html").exists()
    real = subprocess.run([*CLI, "runs", "--compare", "r060", "r061", "--runs-dir", root],
                          capture_output=True, text=True)  # fmt: skip
    assert real.returncode == 2 and "Traceback" not in real.stderr
    assert "is damaged (database disk image is malformed)" in one_line(real.stderr)
    # runs on pages that are whole are still read
    assert cli("runs", "--compare", "r010", "r110", "--runs-dir", root, capsys=capsys)[0] == 0

    code, out, _ = cli("runs", "check", "--runs-dir", root, capsys=capsys)
    assert code == 1
    assert out.startswith(f"{path} is damaged: 1 problem\n  Page ")
    assert f"To save what can be read: g2048lab runs recover --runs-dir {root}" in out

    code, out, _ = cli("runs", "recover", "--runs-dir", root, capsys=capsys)
    assert code == 0 and path.read_bytes()  # the damaged store is only read
    assert f"wrote {root / 'recovered.sqlite'}: {120 - len(lost)} runs, 1,200 metric rows" in out
    assert "skipped as unreadable: runs (1 stretch)" in out
    for step in (  # as the command says: put the damaged store aside, the new one in its place
        f"mkdir {root / '.damaged'} && mv {path}* {root / '.damaged'}/",
        f"mv {root / 'recovered.sqlite'} {path}",
    ):
        assert f"  {step}\n" in out
        subprocess.run(step, shell=True, check=True)
    code, out, _ = cli("runs", "check", "--runs-dir", root, capsys=capsys)
    assert (code, out) == (0, f"{path}: whole (SQLite quick_check ok); 120 runs, 24 recorded "
                              "games read back\n")  # fmt: skip
    store = RunStore(root, create=False)
    renamed = {f"recovered-{ids[name]}" for name in lost}
    assert {r.name for r in store.list_runs()} == (set(ids) - lost) | renamed
    for name in ("r000", "r119", *renamed):  # every record of a run is kept
        assert [row["iteration"] for row in store.metrics(name)] == list(range(1, 11))
    assert store.get_run(f"recovered-{ids['r060']}").status == "failed"
    assert [g.score for g in store.games(f"recovered-{ids['r060']}")] == [2060, 1060]
    assert store.get_run("r119").config == {"marker": "MARKER-0119",
                                            "ppo": {"learning_rate": 1e-5 * 120}}  # fmt: skip


def test_a_damaged_game_is_one_line_naming_it_and_its_run(tmp_path, capsys):
    root = tmp_path / "runs"
    store = RunStore(root)
    store.create_run("g", config={}, device="cpu")
    kept = [store.add_game("g", game_record(score, moves=10)) for score in (100, 200, 300)]
    with closing(sqlite3.connect(root / "runs.sqlite")) as db:
        (blob,) = db.execute("SELECT arrays FROM games WHERE id = ?", (kept[1],)).fetchone()
    checkpoint_and_close(root)
    data = (root / "runs.sqlite").read_bytes()
    at = data.index(blob) + len(blob) // 2  # inside a stored array: quick_check cannot tell
    (root / "runs.sqlite").write_bytes(data[:at] + bytes(64) + data[at + 64 :])

    store = RunStore(root, create=False)
    with pytest.raises(StoreDamaged) as caught:
        store.load_game(kept[1])
    message = str(caught.value)
    assert message.startswith(f"game {kept[1]} of run 'g' in {root / 'runs.sqlite'} is damaged (")
    assert "choose another of its games" in message and "\n" not in message
    assert store.load_game(kept[2]).score == 300  # the others read back whole
    code, _, err = cli("export", "g", "--game", kept[1], "--html", tmp_path / "g.html",
                       "--runs-dir", root, capsys=capsys)  # fmt: skip
    assert code == 2 and f"game {kept[1]} of run 'g'" in one_line(err, "export")
    code, out, _ = cli("runs", "check", "--runs-dir", root, capsys=capsys)
    assert code == 1 and f"\n  game {kept[1]} of run 'g': BadZipFile: Bad CRC-32" in out
    code, out, _ = cli("runs", "recover", "--runs-dir", root, capsys=capsys)
    assert code == 0 and "1 runs, 0 metric rows, 2 games" in out
    assert "skipped as unreadable: games (1 stretch)" in out


# --- readers create nothing -----------------------------------------------------------------


def test_reading_a_runs_folder_that_is_not_there_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "deep" / "x"
    with pytest.raises(StoreError) as caught:
        RunStore(missing, create=False)
    assert str(caught.value) == (
        f"no runs folder {missing}: it is not there; check --runs-dir, or train a run first"
    )
    for args in (["runs"], ["runs", "--json"], ["runs", "--compare", "a", "b"],
                 ["runs", "check"], ["runs", "recover"], ["runs", "tag", "a", "t"],
                 ["runs", "delete", "a", "--yes"], ["export", "a", "--csv", tmp_path / "a.csv"],
                 ["dashboard", "--no-browser"],
                 ["dashboard", "--no-browser", "--run", "a"]):  # fmt: skip
        code, out, err = cli(*args, "--runs-dir", missing, capsys=capsys)
        line = one_line(err, args[0])
        assert code == 2 and f"no runs folder {missing}: it is not there" in line, args
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StoreError, match="it is a file, not a folder; check --runs-dir"):
        RunStore(tmp_path / "file", create=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no deep/, no store


def test_reading_a_folder_without_a_store_is_reading_an_empty_store(tmp_path, capsys):
    folder = tmp_path / "empty"
    folder.mkdir()
    reader = RunStore(folder, create=False)
    assert reader.list_runs() == [] and reader.latest_run() is None
    assert reader.last_metrics() == {}
    with pytest.raises(StoreError, match=f"no run store in {re.escape(str(folder))} yet .*: train"):
        reader.create_run("r", config={}, device="cpu")
    assert cli("runs", "--json", "--runs-dir", folder, capsys=capsys)[:2] == (0, "[]\n")
    code, out, _ = cli("runs", "check", "--runs-dir", folder, capsys=capsys)
    assert (code, out) == (0, f"{folder} holds no run store yet: nothing to check\n")
    assert list(folder.iterdir()) == []  # no store, no reserve file
    RunStore(folder).create_run("r", config={}, device="cpu")  # a writer comes
    assert [r.name for r in reader.list_runs()] == ["r"]  # and the reader sees its run


# --- names picked at once -------------------------------------------------------------------


def _create_at(root: str, barrier, start, names) -> None:
    """In a process of its own: wait for all, then at the start of the next second (the
    first process through sets ``start``) open the store and create a run without a name."""
    barrier.wait(60)
    with start.get_lock():
        if not start.value:
            start.value = int(time.time()) + 1.05
    time.sleep(max(0.0, start.value - time.time()))
    names.append(RunStore(root).create_run(None, config={}, device="cpu").name)


def test_processes_making_a_store_and_naming_runs_in_the_same_second_get_a_name_each(tmp_path):
    spawn = multiprocessing.get_context("spawn")
    root, count = tmp_path / "runs", 3  # no store yet: they make it at once, too
    with spawn.Manager() as manager:
        names, start, barrier = manager.list(), spawn.Value("d", 0.0), spawn.Barrier(count)
        processes = [spawn.Process(target=_create_at, args=(str(root), barrier, start, names))
                     for _ in range(count)]  # fmt: skip
        for process in processes:
            process.start()
        for process in processes:
            process.join(120)
        assert [p.exitcode for p in processes] == [0] * count
        names = list(names)
    base = time.strftime("run-%Y%m%d-%H%M%S", time.localtime(start.value))
    assert sorted(names) == sorted([base, *(f"{base}-{n}" for n in range(2, count + 1))])
    assert {r.name for r in RunStore(root).list_runs()} == set(names)


def test_a_generated_name_passes_over_a_folder_that_has_it(tmp_path, monkeypatch):
    import g2048lab.store.run_store as run_store

    monkeypatch.setattr(run_store.time, "strftime", lambda *_: "run-20261204-191955")
    store = RunStore(tmp_path)
    (tmp_path / "run-20261204-191955").mkdir()  # not a run: someone's folder
    assert store.create_run(None, config={}, device="cpu").name == "run-20261204-191955-2"


# --- 80 columns -----------------------------------------------------------------------------


def check_fits(out: str, width: int, numbers: list[str]) -> None:
    assert max(map(cell_len, out.splitlines())) <= width
    assert "…" not in out
    for number in numbers:
        assert number in out, number


def test_the_runs_table_fits_80_columns_hiding_columns_never_cutting_numbers(
    tmp_path, capsys, monkeypatch
):
    store = RunStore(tmp_path)
    numbers = []
    for i, name in enumerate(
        ["kickstart-30min-seed1-teacher-weight-0.2", "a", "run-20261204-191955"]
    ):
        name = name.replace(".", "_")
        store.create_run(name, config={"learner": "ntuple"}, device="cuda:0")
        store.set_tags(name, ["kickstart", f"seed:{i}", "30min"])
        env_steps, score, tile = 12_345_678_901 + i, 1_234_567 + i, 131072
        with closing(sqlite3.connect(store.path)) as db, db:
            db.execute("UPDATE runs SET env_steps = ?, best_score = ?, max_tile = ?"
                        " WHERE name = ?", (env_steps, score, tile, name))  # fmt: skip
        numbers += [f"{env_steps:,}", f"{score:,}", str(tile)]
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = cli("runs", "--runs-dir", tmp_path, capsys=capsys)
    assert code == 0
    check_fits(out, 80, [*numbers, "kickstart", "seed:2"])
    assert "hidden to fit 80 columns: device, last update, learner (a wider terminal or " in out
    monkeypatch.setenv("COLUMNS", "160")
    code, out, _ = cli("runs", "--runs-dir", tmp_path, capsys=capsys)
    check_fits(out, 160, [*numbers, "cuda:0", "ntuple", "kickstart-30min-seed1-teacher-weight-0_2"])
    assert "hidden" not in out


def test_runs_compare_fits_80_columns_and_settings_none_in_all_runs_are_no_difference(
    tmp_path, capsys, monkeypatch
):
    store = RunStore(tmp_path)
    names, numbers = [f"lr-sweep-{i}" for i in range(8)], []
    for i, name in enumerate(names):
        config = {"ppo": {"learning_rate": (i + 1) / 10_000}, "seed": 1000 + i}
        if i % 2:
            config["teacher"] = None  # the others have no teacher setting at all
        store.create_run(name, config=config, device="cpu")
        store.add_metrics(name, {"iteration": 1, "rollout/score_mean": 123_456.0 + i,
                                 "time/steps_per_s": 98_765.0})  # fmt: skip
        numbers += [str(config["ppo"]["learning_rate"]), str(1000 + i), f"{123_456 + i:,}"]
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = cli("runs", "--compare", *names, "--runs-dir", tmp_path, capsys=capsys)
    assert code == 0
    check_fits(out, 80, [*numbers, "98,765"])
    assert "settings that differ (1/2)" in out and "where each run ended up (2/2)" in out
    assert "teacher" not in out
    code, out, _ = cli("runs", "--compare", *names[:2], "--runs-dir", tmp_path, capsys=capsys)
    assert "(1/" not in out and "teacher" not in out
