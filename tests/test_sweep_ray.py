"""``sweep start --ray``: trials on a Ray cluster, relayed into the one run store.

The relay's two ends (``NodeRelay`` reading a node's local store, ``RunMirror`` writing the
driver's) are tested on stores built by hand; then one real sweep runs on a two-node Ray
cluster (``ray_cluster_script.py``, in a loopback-only network namespace) with its worker node
killed mid-trial, and the tests below read what it left."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from g2048lab.cli import main
from g2048lab.store import RunBusy, RunStore
from g2048lab.sweeps import relay
from g2048lab.sweeps.ray_launcher import check_ray
from g2048lab.sweeps.relay import NODE, NodeRelay, RunMirror, TrialNode
from g2048lab.sweeps.sweep_store import SweepStore

from .factories import game_record, training_update

SCRIPT = Path(__file__).with_name("ray_cluster_script.py")


# --- the relay, without Ray -----------------------------------------------------------------


def _rows(first: int, last: int) -> list[dict]:
    return [
        {"iteration": i, "env_steps": 100 * i, "rollout/score_mean": float(i)}
        for i in range(first, last + 1)
    ]


def _node(tmp_path: Path, name: str = "r") -> tuple[RunStore, Path, Path]:
    """A node's local store with a run ``name`` in ``tmp_path/node``, and its output file."""
    root = tmp_path / "node"
    local = RunStore(root / "runs")
    local.create_run(name, config={"teacher": {"source": f"{root}/teacher/t"}}, device="cpu")
    output = root / "output.log"
    output.write_text(f"run {name}: folder {root}/runs/{name}\n")
    return local, root, output


def _relay(node: NodeRelay, mirror: RunMirror, root: Path, code=None, lose=False):
    """One pull: the node's shipment, applied here unless ``lose`` (lost on the way)."""
    shipment = node.read(code, mirror.cursor, mirror.requests())
    if not mirror.cursor["node"]:
        shipment.node, shipment.ended = {"host": "n1", "root": str(root)}, None
    return shipment, (None if lose else mirror.apply(shipment))


def test_a_relayed_run_arrives_whole_with_this_machines_paths(tmp_path, monkeypatch):
    monkeypatch.setattr(relay, "CHUNK_BYTES", 1000)  # files in several chunks
    local, root, output = _node(tmp_path)
    here = RunStore(tmp_path / "here")
    log = tmp_path / "r.log"
    mirror = RunMirror(here, "r", log, {f"{NODE}/runs": str(here.root), f"{NODE}/teacher/t": "/T"})
    node = NodeRelay(root / "runs", "r", output)
    local.add_metrics_batch("r", _rows(1, 2))
    local.put_update("r", training_update(timestamp=5.0, env_steps=200, events=["nan seen"]))
    local.add_event("r", f"checkpoint saved: {root}/runs/r/ckpt-0000002.pt")
    local.add_game("r", game_record(30))
    folder = local.run_dir("r")
    (folder / "ckpt-0000003.pt").write_bytes(os.urandom(2500))  # its row is not there yet
    (folder / "ckpt-0000002.pt").write_bytes(os.urandom(2500))
    _relay(node, mirror, root)
    run = here.get_run("r")
    assert run.config == {"teacher": {"source": "/T"}}  # the node's path made this machine's
    assert run.writer is not None and run.writer.pid == os.getpid()  # the one writer
    assert [m["iteration"] for m in here.metrics("r")] == [1, 2]
    assert here.latest_update("r").env_steps == 200 and run.status == "running"
    assert [g.score for g in here.games("r")] == [30]
    # events once each (the update's own came with the events table), paths made local
    texts = [text for _, text in here.events("r")]
    assert texts[0] == "runs on Ray node n1"
    assert f"checkpoint saved: {here.root}/r/ckpt-0000002.pt" in texts
    assert log.read_text().endswith(f"run r: folder {here.root}/r\n")
    # ckpt-2 (its row shipped) comes in chunks; a shipment lost on the way is shipped again
    _relay(node, mirror, root)
    _relay(node, mirror, root, lose=True)
    while not (here.root / "r" / "ckpt-0000002.pt").exists():
        _relay(node, mirror, root)
    assert (here.root / "r" / "ckpt-0000002.pt").read_bytes() == (
        folder / "ckpt-0000002.pt"
    ).read_bytes()
    assert not list((here.root / "r").glob(".relay-*"))
    for _ in range(5):
        _relay(node, mirror, root)
    assert not (here.root / "r" / "ckpt-0000003.pt").exists()  # not before its row
    local.add_metrics_batch("r", _rows(3, 3))
    for _ in range(5):
        _relay(node, mirror, root)
    assert (here.root / "r" / "ckpt-0000003.pt").read_bytes() == (
        folder / "ckpt-0000003.pt"
    ).read_bytes()
    # the command ends: best.pt follows, then the run's status and the claim's release
    (folder / "best.pt").write_bytes(b"best")
    local.set_status("r", "finished")
    with output.open("a") as file:
        file.write("last words without a newline")
    ended = None
    for _ in range(10):
        _, ended = _relay(node, mirror, root, code=0)
        if ended is not None:
            break
    assert ended is not None and ended.code == 0 and ended.status == "finished"
    assert (here.root / "r" / "best.pt").read_bytes() == b"best"
    run = here.get_run("r")
    assert run.status == "finished" and run.writer is None
    assert log.read_text().endswith("last words without a newline")


def test_a_mirror_keeps_the_checkpoints_train_keeps():
    from g2048lab.checkpoint import CheckpointManager

    assert CheckpointManager(".").keep_last == relay.KEEP_CHECKPOINTS


def test_control_requests_reach_the_node_and_their_results_come_back(tmp_path):
    local, root, output = _node(tmp_path)
    here = RunStore(tmp_path / "here")
    mirror = RunMirror(here, "r", tmp_path / "r.log", {f"{NODE}/runs": str(here.root)})
    node = NodeRelay(root / "runs", "r", output)
    _relay(node, mirror, root)
    asked = here.request("r", "pause")
    _relay(node, mirror, root)
    (there,) = local.pending_requests("r")
    assert there.action == "pause"
    local.acknowledge(there.id, "done")
    _relay(node, mirror, root)
    _relay(node, mirror, root)
    assert here.request_state(asked).result == "done"
    assert len(local.pending_requests("r")) == 0 and len(here.pending_requests("r")) == 0


def test_a_resume_rewinds_the_run_here_to_its_last_checkpoint(tmp_path):
    here = RunStore(tmp_path)
    here.create_run("r", config={}, device="cpu")
    here.add_metrics_batch("r", _rows(1, 5))
    here.add_game("r", game_record(40))  # at env step 400: after the checkpoint
    folder = here.run_dir("r")
    for number in (1, 3):
        (folder / f"ckpt-{number:07d}.pt").write_bytes(b"x")
    (folder / ".relay-ckpt-0000005.pt.abc").write_bytes(b"half")  # left by a dead relay
    mirror = RunMirror(here, "r", tmp_path / "r.log", {})
    assert mirror.resume() == folder / "ckpt-0000003.pt"
    assert [m["iteration"] for m in here.metrics("r")] == [1, 2, 3]
    assert here.games("r") == [] and here.get_run("r").status == "idle"
    assert "resumed on the Ray cluster from iteration 3" in here.events("r")[-1][1]
    assert not list(folder.glob(".relay-*"))
    with pytest.raises(RunBusy):
        here.claim("r")  # the mirror is its one writer
    mirror.lost("its node died")
    run = here.get_run("r")
    assert run.status == "killed" and run.error == "its node died" and run.writer is None


def test_a_run_stopped_mid_iteration_resumes_from_its_last_file_with_nothing_lost(tmp_path):
    """Its last checkpoint, saved as it stopped, holds steps past its last row."""
    here = RunStore(tmp_path)
    here.create_run("r", config={}, device="cpu")
    here.add_metrics_batch("r", _rows(1, 4))
    here.put_update("r", training_update(iteration=4, env_steps=470, status="stopped"))
    here.add_game("r", game_record(45))  # at env step 450: in the last file
    (here.run_dir("r") / "ckpt-0000004.pt").write_bytes(b"x")
    RunMirror(here, "r", tmp_path / "r.log", {}).resume()
    assert here.get_run("r").env_steps == 470 and [g.score for g in here.games("r")] == [45]
    assert "(lost 0 env steps" in here.events("r")[-1][1]


def test_a_trial_node_runs_its_command_and_clears_what_dead_ones_left(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the node's temporary folder
    gone = subprocess.Popen(["true"])
    gone.wait()
    orphan = tmp_path / f"g2048lab-trial-{gone.pid}-abc"  # an actor killed with its node
    orphan.mkdir()
    alive = tmp_path / f"g2048lab-trial-{os.getpid()}-abc"
    alive.mkdir()
    node = TrialNode(["--version"], None, ["eval/x/ckpt-0000001.pt"], b"weights")
    assert not orphan.exists() and alive.exists()
    assert (node.root / "eval" / "x" / "ckpt-0000001.pt").read_bytes() == b"weights"
    log = tmp_path / "v.log"
    mirror = RunMirror(None, None, log, {})
    for _ in range(200):
        if (ended := mirror.apply(node.pull(mirror.cursor, []))) is not None:
            break
        time.sleep(0.1)
    assert ended is not None and ended.code == 0 and ended.status is None
    assert log.read_text().splitlines()[-1].startswith("g2048lab ")  # its --version
    assert not node.root.exists()


def test_without_ray_the_flag_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if not installed
    runs_dir = tmp_path / "runs"
    argv = ["--seeds", "2", "--ray", "head:6379", "--", "--preset", "tiny"]
    assert main(["sweep", "start", "s", "--runs-dir", str(runs_dir), *argv]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        'g2048lab sweep: error: --ray needs Ray: pip install "g2048lab[ray]"'
    ]
    assert not runs_dir.exists()


def test_an_address_where_nothing_answers_is_one_line():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ValueError, match=r"no Ray cluster answers there .*ray start --head"):
        check_ray(f"127.0.0.1:{port}")


# --- a real two-node Ray cluster, one node killed mid-trial ---------------------------------


def _unshare_allowed() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    done = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    return done.returncode == 0


ITERATIONS = 30  # of each trial, as in ray_cluster_script.py


@pytest.fixture(scope="module")
def ray_sweep(tmp_path_factory):
    """The sweep ``rs`` (2 seeds of the tiny preset for ITERATIONS, 2 at once) run by the
    script on a cluster in a network namespace of its own: (its store, what the script saw)."""
    pytest.importorskip("ray")
    if not _unshare_allowed():
        pytest.skip("unshare -n is not permitted here (needs root): Ray must run on loopback")
    runs = tmp_path_factory.mktemp("ray-runs")
    home = tmp_path_factory.mktemp("ray-home")  # Ray writes under ~/.ray: not the user's
    env = {**os.environ, "HOME": str(home)}
    done = subprocess.run(
        [
            "unshare",
            "-n",
            "bash",
            "-c",
            'ip link set lo up && exec "$@"',
            "-",
            sys.executable,
            str(SCRIPT),
            str(runs),
        ],
        capture_output=True,
        text=True,
        timeout=420,
        env=env,
    )
    driver_log = (
        (runs / "driver.log").read_text(errors="replace") if (runs / "driver.log").exists() else ""
    )
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-3000:] + driver_log[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["driver_code"] == 0, driver_log[-3000:]
    return RunStore(runs, create=False), seen


@pytest.mark.slow
def test_a_ray_sweep_finishes_into_the_one_store(ray_sweep):
    store, seen = ray_sweep
    sweeps = SweepStore(store)
    assert sweeps.get_sweep("rs").status == "finished"
    trials = sweeps.trials("rs")
    assert [t.state for t in trials] == ["finished", "finished"]
    for trial in trials:
        assert trial.result["games"] == 3 and trial.result["checkpoint"] == str(
            store.root / trial.run_name
        )
        run = store.get_run(trial.run_name)
        assert run.status == "finished" and run.writer is None
        assert run.env_steps >= ITERATIONS * 2048
        assert "sweep:rs" in run.tags
        assert [m["iteration"] for m in store.metrics(run.name)] == list(range(1, ITERATIONS + 1))
        assert store.games(run.name) and store.latest_update(run.name).status == "finished"
        folder = store.root / run.name
        assert (folder / f"ckpt-{ITERATIONS:07d}.pt").is_file() and (folder / "best.pt").is_file()
        assert not list(folder.glob(".relay-*"))
    placed = {
        t.run_name: [x for _, x in store.events(t.run_name) if x.startswith("runs on")]
        for t in trials
    }
    nodes = {seen["head_node"][:12], seen["worker_node"][:12]}
    first = {texts[0].rsplit("node ", 1)[1] for texts in placed.values()}
    assert first == nodes  # one trial on each node


@pytest.mark.slow
def test_metrics_reach_the_store_while_a_remote_trial_trains(ray_sweep):
    store, seen = ray_sweep
    for name, live in seen["live"].items():
        assert len(live["rows"]) >= 3, (name, live)  # rows grew while it ran
    untouched = next(name for name in seen["live"] if name != seen["killed"]["run"])
    staleness = sorted(seen["live"][untouched]["staleness_s"])
    assert staleness and staleness[len(staleness) // 2] < 5.0, staleness  # live within seconds


@pytest.mark.slow
def test_a_dead_node_costs_the_work_since_the_last_checkpoint_here(ray_sweep):
    store, seen = ray_sweep
    killed = seen["killed"]
    assert killed is not None, seen
    name, saved = killed["run"], int(killed["checkpoint"][5:12])
    texts = [text for _, text in store.events(name)]
    resumed = [t for t in texts if t.startswith("resumed on the Ray cluster from iteration")]
    assert len(resumed) == 1, texts
    assert int(resumed[0].split("iteration ")[1].split(" ")[0]) >= saved
    after = texts[texts.index(resumed[0]) :]
    assert any(f"node {seen['head_node'][:12]}" in t for t in after)  # went on on the other node
    trial = next(t for t in SweepStore(store).trials("rs") if t.run_name == name)
    assert trial.attempts == 2 and trial.state == "finished"


@pytest.mark.slow
def test_a_remote_trial_is_evaluated_replayed_and_exported_here(ray_sweep, capsys, tmp_path):
    store, seen = ray_sweep
    name = seen["killed"]["run"]
    assert main(["eval", str(store.root / name), "--games", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["games"] == 1 and result["env_steps"] >= ITERATIONS * 2048
    page = tmp_path / "game.html"
    assert main(["export", name, "--runs-dir", str(store.root), "--html", str(page)]) == 0
    assert page.stat().st_size > 1000
