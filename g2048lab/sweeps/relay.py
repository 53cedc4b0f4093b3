"""A trial that trains on another machine, relayed into the one run store.

Nodes of a cluster share no file system. So a trial on a Ray node runs ``g2048lab train``
as it would anywhere, into a run store of its own in a node-local temporary folder, and
what that store gains travels back in ``Shipment``s:

    node:   TrialNode (the Ray actor) runs the command; NodeRelay reads its local store
              | metric rows, the latest message, events, recorded games, the run's status,
              | new checkpoint files (in chunks), the command's output, served requests
    driver: RunMirror writes them into the sweep's store as the run's one writer
            (``RunStore.claim``): checkpoint files land atomically in ``run_dir(name)``

A checkpoint file is shipped only after its iteration's metric row, so the sweep's machine
can rewind the run to any checkpoint it holds (``RunMirror.resume``) without reading it.
Control requests left in the sweep's store (pause, stop, checkpoint from the runs browser)
travel the other way and their results come back.

Nothing here needs Ray (``TrialNode`` only asks it which node it is on):
``ray_launcher.py`` carries the shipments, a pull per poll.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from ..messages import TrainingUpdate
from ..recording import GameRecord
from ..status import Status
from ..store import RunClaim, RunNotFound, RunStore, StoreError
from ..store.claims import pid_alive

__all__ = [
    "NODE",
    "Ended",
    "FileChunk",
    "NodeRelay",
    "RunMirror",
    "Shipment",
    "TrialNode",
    "latest_checkpoint",
    "new_cursor",
]

NODE = "{node}"  # in a command or a path: the trial's folder on its node
CHUNK_BYTES = 32 << 20  # of a checkpoint file per shipment
OUTPUT_BYTES = 1 << 20  # of the command's output per shipment
GAMES_PER_SHIPMENT = 20
KEEP_CHECKPOINTS = 3  # numbered files kept per run, as train's CheckpointManager keeps
CHECKPOINT = re.compile(r"ckpt-(\d+)\.pt$")
BEST = "best.pt"
PARTIAL = ".relay-"  # prefix of a checkpoint file still arriving
TRIAL_FOLDER = "g2048lab-trial-"  # + the actor's pid: a node's temporary folder of a trial
# a run that ended so saved its last checkpoint as it ended, at its last counters
ENDED_CLEANLY = (Status.STOPPED, Status.FINISHED, Status.FAILED)

# ``python -c`` wrapper of the node's command: it dies with the actor (PR_SET_PDEATHSIG),
# also when the actor dies with its node's raylet, so no orphan trains on
_CHILD = """\
import ctypes, os, signal, sys
parent = int(sys.argv.pop(1))
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
except (AttributeError, OSError):
    pass  # not Linux: the actor's end() still stops it
if os.getppid() != parent:
    sys.exit(137)
from g2048lab.cli import main
sys.exit(main(sys.argv[1:]))
"""


@dataclass
class FileChunk:
    """Bytes ``[offset, offset + len(data))`` of the run folder's file ``name``, ``size``
    bytes in all, as it was when its shipping began (``signature``)."""

    name: str
    signature: tuple  # (inode, size, mtime ns) on the node
    offset: int
    data: bytes
    size: int

    @property
    def last(self) -> bool:
        return self.offset + len(self.data) >= self.size


@dataclass
class Ended:
    """The command has ended and everything it wrote has been shipped."""

    code: int  # its exit code (negative: killed by that signal)
    status: str | None  # its run's last status; None if it never made one
    error: str | None


@dataclass
class Shipment:
    """What a trial's node holds beyond the driver's ``cursor`` (``new_cursor``)."""

    node: dict | None = None  # host, ip, node_id, root, version: until the driver has it
    run: dict | None = None  # {"config", "device", "digest"}: first seen, or config changed
    rows: list[dict] = field(default_factory=list)  # metric rows, in iteration order
    update: str | None = None  # the latest TrainingUpdate (JSON), if newer
    events: list[str] = field(default_factory=list)
    games: list[tuple[int, list[str], GameRecord]] = field(default_factory=list)  # id there
    chunk: FileChunk | None = None
    served: list[tuple[int, str]] = field(default_factory=list)  # (request id, result)
    output: bytes = b""  # the command's stdout and stderr, whole lines until it ends
    ended: Ended | None = None
    more: bool = False  # more is ready at once (a file's next chunk, an ended command's rest)

    def empty(self) -> bool:
        return not (
            self.node or self.run or self.rows or self.update or self.events or self.games
        ) and not (self.chunk or self.served or self.output)


def new_cursor() -> dict:
    """What the driver has written of a relayed command: the node ships what lies beyond.
    Pulls are repeatable: a shipment lost on the way is shipped again."""
    return {
        "node": False,
        "config": None,  # digest of the run's config as last written
        "row": -1,  # iteration of the last metric row
        "update_at": None,  # timestamp of the last message
        "events": 0,
        "game": 0,  # the last game's id on the node
        "output": 0,  # bytes of output
        "files": {},  # file name: signature, of the newest checkpoint and best.pt written
        "partial": None,  # [name, signature, bytes written] of a file arriving
    }


class NodeRelay:
    """Reads what the command's local run store and output hold beyond a cursor (on the
    node). ``runs_root``: the local runs folder; ``name``: the run (None: a command without
    one, such as ``eval``); ``output``: the file the command writes its output to."""

    def __init__(self, runs_root: Path, name: str | None, output: Path):
        self.store = RunStore(runs_root) if name else None
        self.name, self.output = name, output
        self.sending: tuple[str, BinaryIO, int, tuple] | None = None  # name, file, size, sig
        self.passed: dict[int, int] = {}  # request id there -> request id here

    def read(self, code: int | None, cursor: dict, requests: list[tuple[int, str]]) -> Shipment:
        """What lies beyond ``cursor``; ``code``: the command's exit code once it has ended
        (``ended`` is set once nothing is left); ``requests``: the requests pending there,
        (id, action), passed on here once each."""
        ended = code is not None
        shipment = Shipment()
        run = self._run()
        if run is not None:
            digest = _digest(run.config)
            if digest != cursor["config"]:
                shipment.run = {"config": run.config, "device": run.device, "digest": digest}
            shipment.rows = self.store.metrics(self.name, since_iteration=cursor["row"])
            last_row = shipment.rows[-1]["iteration"] if shipment.rows else cursor["row"]
            update = self.store.latest_update(self.name)
            if update is not None and update.timestamp != cursor["update_at"]:
                shipment.update = update.to_json()
            shipment.events = [text for _, text in self.store.events(self.name)[cursor["events"] :]]
            shipment.games = self._games(cursor["game"])
            shipment.served = self._requests(requests, ended)
            shipment.chunk = self._chunk(cursor, last_row, ended)
        shipment.output = self._output(cursor["output"], ended)
        if ended and shipment.empty():
            run = self._run()
            shipment.ended = Ended(code, run and run.status, run and run.error)
        shipment.more = shipment.chunk is not None or (ended and shipment.ended is None)
        shipment.more |= len(shipment.games) == GAMES_PER_SHIPMENT
        return shipment

    def _run(self):
        if self.store is None:
            return None
        try:
            return self.store.get_run(self.name)  # a writer that died is marked killed
        except RunNotFound:
            return None

    def _games(self, after: int) -> list[tuple[int, list[str], GameRecord]]:
        new = sorted((g for g in self.store.games(self.name) if g.id > after), key=id_of)
        games = []
        for summary in new[:GAMES_PER_SHIPMENT]:
            with contextlib.suppress(StoreError):  # pruned since it was listed
                games.append((summary.id, sorted(summary.kinds), self.store.load_game(summary.id)))
        return games

    def _requests(self, requests: list[tuple[int, str]], ended: bool) -> list[tuple[int, str]]:
        served = []
        for request_id, action in requests:
            if request_id not in self.passed:
                if ended:
                    served.append((request_id, "ignored: the run has ended"))
                    continue
                self.passed[request_id] = self.store.request(self.name, action)
            state = self.store.request_state(self.passed[request_id])
            if state.acknowledged_at is not None:
                served.append((request_id, state.result))
            elif ended:
                served.append((request_id, "ignored: the run has ended"))
        return served

    def _chunk(self, cursor: dict, last_row: int, ended: bool) -> FileChunk | None:
        written = cursor["files"]
        if self.sending is not None and tuple(written.get(self.sending[0], ())) == self.sending[3]:
            self.sending[1].close()  # the driver has it
            self.sending = None
        if self.sending is None:
            path = self._next_file(written, last_row, ended)
            if path is None:
                return None
            try:
                # kept open across pulls: the open file outlives a replace or delete there
                file = open(path, "rb")  # noqa: SIM115
            except FileNotFoundError:
                return None
            stat = os.fstat(file.fileno())
            self.sending = (path.name, file, stat.st_size, _signature(stat))
        name, file, size, signature = self.sending
        partial = cursor["partial"]
        same = partial is not None and partial[0] == name and tuple(partial[1]) == signature
        offset = partial[2] if same else 0
        data = os.pread(file.fileno(), CHUNK_BYTES, offset)
        return FileChunk(name, signature, offset, data, size)

    def _next_file(self, written: dict, last_row: int, ended: bool) -> Path | None:
        """The newest numbered checkpoint whose row has been shipped, unless written there
        as it is; once the command has ended, ``best.pt`` too."""
        folder = self.store.root / self.name
        if not folder.is_dir():
            return None
        newest = max(
            (checkpoint_number(n) for n in written if checkpoint_number(n) is not None), default=-1
        )
        ready = [p for n, p in numbered(folder) if newest <= n <= last_row]
        if ready and self._changed(ready[-1], written):
            return ready[-1]
        best = folder / BEST
        if ended and best.is_file() and self._changed(best, written):
            return best
        return None

    def _changed(self, path: Path, written: dict) -> bool:
        try:
            signature = _signature(path.stat())
        except FileNotFoundError:
            return False
        there = written.get(path.name)
        return there is None or tuple(there) != signature

    def _output(self, offset: int, ended: bool) -> bytes:
        try:
            with open(self.output, "rb") as file:
                file.seek(offset)
                data = file.read(OUTPUT_BYTES)
        except FileNotFoundError:
            return b""
        if not ended and len(data) < OUTPUT_BYTES:
            data = data[: data.rfind(b"\n") + 1]  # whole lines while it runs
        return data


class TrialNode:
    """One ``g2048lab`` command on a Ray node, in a temporary folder of that node (a Ray
    actor made by ``RayLauncher``; a plain class, so it is tested without Ray).

    ``command``: the ``g2048lab`` arguments, ``NODE`` standing for the folder; ``name``: the
    run it trains (None for eval); ``files``: paths in the folder, for ``blobs`` (the bytes
    of a checkpoint to resume from, a teacher, the checkpoint to evaluate)."""

    def __init__(self, command: list[str], name: str | None, files: list[str], *blobs: bytes):
        _remove_orphans()
        prefix = f"{TRIAL_FOLDER}{os.getpid()}-"
        self.root = Path(tempfile.mkdtemp(prefix=prefix)).resolve()
        for relative, blob in zip(files, blobs, strict=True):
            path = self.root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)
        argv = [item.replace(NODE, str(self.root)) for item in command]
        output = self.root / "output.log"
        self.relay = NodeRelay(self.root / "runs", name, output)
        with open(output, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(os.getpid()), *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        self.node = _node_info(self.root)

    def pull(self, cursor: dict, requests: list[tuple[int, str]]) -> Shipment:
        """What lies beyond the driver's ``cursor`` (``NodeRelay.read``); the folder is
        removed with the last shipment."""
        code = self.process.poll()
        shipment = self.relay.read(code, cursor, requests)
        if not cursor["node"]:  # the node's description first, the end after it
            shipment.node, shipment.ended = self.node, None
            shipment.more = shipment.more or code is not None
        if shipment.ended is not None:
            shutil.rmtree(self.root, ignore_errors=True)
        return shipment

    def stop(self) -> None:
        """Stop cleanly: train saves a checkpoint, then exits (the shipments carry it)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def end(self) -> None:
        """End the command now and remove the folder."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _remove_orphans() -> None:
    """Remove the folders of this machine's trials whose actor has died without a word
    (killed with its raylet, or as the driver that owned it died)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{TRIAL_FOLDER}*-*"):
        pid = folder.name.removeprefix(TRIAL_FOLDER).split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _node_info(root: Path) -> dict:
    from .. import __version__

    info = {"host": socket.gethostname(), "root": str(root), "version": __version__}
    try:
        import ray
    except ImportError:  # a plain TrialNode (tests): the host says enough
        return info
    if ray.is_initialized():  # in an actor: its node's own address, no probing
        info["ip"] = ray.util.get_node_ip_address()
        info["node_id"] = ray.get_runtime_context().get_node_id()
    return info


class RunMirror:
    """Writes a relayed command on the sweep's machine (``apply``): its output into ``log``
    and, for a trial (``name``), its run into ``store`` as the run's one writer. ``cursor``
    says what has been written, for the next pull.

    ``paths``: {path on the node, with NODE: path here}, put back into the output and the
    run's config so that both name this machine's files."""

    def __init__(self, store: RunStore | None, name: str | None, log: Path, paths: dict):
        self.store, self.name, self.log = store, name, log
        self.paths = dict(paths)
        self.cursor = new_cursor()
        self.claim: RunClaim | None = None
        self.partial: tuple[Path, BinaryIO] | None = None  # a file arriving: path, file
        self.said: list[str] = []  # events waiting for the run to exist
        self.last_line = ""

    # --- before the command starts ---------------------------------------------------------

    def resume(self) -> Path:
        """For ``train --resume``: claim the run, rewind it to its latest checkpoint here and
        return that file. Requests left from before are acknowledged as ignored."""
        self._claim()
        folder = self.store.run_dir(self.name)
        for stale in folder.glob(f"{PARTIAL}*"):
            stale.unlink(missing_ok=True)
        path = latest_checkpoint(folder)
        if path is None:
            raise StoreError(f"run {self.name} has no checkpoint in {folder} to resume from")
        iteration = checkpoint_number(path.name)
        rows = self.store.metrics(self.name, since_iteration=iteration - 1)
        row = rows[0] if rows and rows[0]["iteration"] == iteration else None
        run = self.store.get_run(self.name)
        if run.status in ENDED_CLEANLY and run.iteration == iteration:
            env_steps = run.env_steps  # its last file, saved as it ended (past its last row)
        else:  # shipped before its file, the row is here; without it only the rows go back
            env_steps = row["env_steps"] if row else run.env_steps
        lost = self.store.rewind(self.name, iteration, env_steps, checkpoint_row=row)
        self.store.set_status(self.name, Status.IDLE, claim=self.claim)
        self.store.add_event(
            self.name,
            f"resumed on the Ray cluster from iteration {iteration} (lost {lost:,} env steps "
            "since the last checkpoint)",
        )
        return path

    # --- while it runs ---------------------------------------------------------------------

    def requests(self) -> list[tuple[int, str]]:
        """The run's pending requests here, (id, action), for the node to serve."""
        if self.claim is None:
            return []
        return [(r.id, r.action) for r in self.store.pending_requests(self.name)]

    def apply(self, shipment: Shipment) -> Ended | None:
        """Write ``shipment`` here; its ``ended`` once the command's last one is written."""
        cursor = self.cursor
        if shipment.node is not None:
            root = shipment.node["root"]
            self.paths = {node.replace(NODE, root): here for node, here in self.paths.items()}
            cursor["node"] = True
            self.say(_where(shipment.node))
        if shipment.output:
            self._log(self._here(shipment.output.decode(errors="replace")))
            cursor["output"] += len(shipment.output)
        if self.name is not None:
            self._apply_run(shipment)
        if shipment.ended is not None:
            self._end(shipment.ended)
        return shipment.ended

    def _apply_run(self, shipment: Shipment) -> None:
        store, name, cursor = self.store, self.name, self.cursor
        if shipment.run is not None:
            config = json.loads(self._here(json.dumps(shipment.run["config"])))
            if self.claim is None:
                store.create_run(name, config=config, device=shipment.run["device"])
                self._claim()
            else:
                store.set_config(name, config)
            cursor["config"] = shipment.run["digest"]
            self._flush_said()
        if shipment.rows:
            store.add_metrics_batch(name, shipment.rows)
            cursor["row"] = shipment.rows[-1]["iteration"]
        if shipment.update is not None:
            update = TrainingUpdate.from_json(shipment.update)
            store.put_update(name, replace(update, events=[]), self.claim)  # events come apart
            cursor["update_at"] = update.timestamp
        for text in shipment.events:
            store.add_event(name, self._here(text))
        cursor["events"] += len(shipment.events)
        for game_id, kinds, game in shipment.games:
            store.add_game(name, game, kinds)
            cursor["game"] = game_id
        for request_id, result in shipment.served:
            store.acknowledge(request_id, result)
        if shipment.chunk is not None:
            self._write_chunk(shipment.chunk)

    def _write_chunk(self, chunk: FileChunk) -> None:
        """Append the chunk to its file, begun at offset 0; the whole file is renamed into
        the run's folder (the older numbered files beyond what train keeps go)."""
        folder, cursor = self.store.run_dir(self.name), self.cursor
        partial = cursor["partial"]
        if chunk.offset == 0:
            self._drop_partial()
            fd, tmp = tempfile.mkstemp(prefix=f"{PARTIAL}{chunk.name}.", dir=folder)
            self.partial = (Path(tmp), os.fdopen(fd, "wb"))
        elif partial is None or [partial[0], tuple(partial[1]), partial[2]] != [
            chunk.name,
            tuple(chunk.signature),
            chunk.offset,
        ]:
            self._drop_partial()  # not the file begun here: the node starts it again
            return
        tmp, file = self.partial
        file.write(chunk.data)
        cursor["partial"] = [chunk.name, chunk.signature, chunk.offset + len(chunk.data)]
        if not chunk.last:
            return
        file.flush()
        os.fsync(file.fileno())
        file.close()
        self.partial, cursor["partial"] = None, None
        os.replace(tmp, folder / chunk.name)
        files = {n: s for n, s in cursor["files"].items() if n == BEST}
        files[chunk.name] = chunk.signature
        if checkpoint_number(chunk.name) is None:  # best.pt: keep the newest numbered one
            files.update({n: s for n, s in cursor["files"].items() if n != BEST})
        cursor["files"] = files
        for _, old in numbered(folder)[:-KEEP_CHECKPOINTS]:
            old.unlink(missing_ok=True)

    def _end(self, ended: Ended) -> None:
        if self.name is None:
            return
        status, error = ended.status, ended.error
        if status is None and self._exists():  # it ended before it made its run there
            status = Status.KILLED if ended.code < 0 else Status.FAILED
            error = f"its process exited with {ended.code}: {self.last_line or '(no output)'}"
        if status is not None:
            self.store.set_status(self.name, status, self._here(error or "") or None, self.claim)
        if self.claim is not None:
            for request in self.store.pending_requests(self.name):
                self.store.acknowledge(request.id, "ignored: the run has ended")
        self._release()

    def lost(self, why: str, status: str = Status.KILLED) -> None:
        """The command's actor or node died, or it was refused: the run (if it exists
        here) is ``status`` with ``why``, a file arriving is dropped, the claim let go."""
        self._drop_partial()
        self._log(f"g2048lab sweep: {why}\n")
        if self.name is not None and self.claim is None and self._exists():
            with contextlib.suppress(StoreError):
                self.claim = self.store.claim(self.name)
        if self.claim is not None:
            with contextlib.suppress(StoreError):
                self.store.set_status(self.name, status, why, self.claim)
        self._release()

    def say(self, text: str) -> None:
        """Record an event of the run (once it exists here) and a line of the log."""
        self._log(f"g2048lab sweep: {text}\n")
        self.said.append(text)
        self._flush_said()

    # --- helpers ---------------------------------------------------------------------------

    def _claim(self) -> None:
        self.claim = self.store.claim(self.name)
        for stale in self.store.pending_requests(self.name):
            self.store.acknowledge(stale.id, "ignored: made before the run's current process")

    def _release(self) -> None:
        if self.claim is not None:
            self.claim.release()
            self.claim = None

    def _exists(self) -> bool:
        if self.name is None:
            return False
        try:
            self.store.get_run(self.name)
        except RunNotFound:
            return False
        return True

    def _flush_said(self) -> None:
        if self.name is None:
            self.said = []
        elif self.said and self.claim is not None:
            for text in self.said:
                self.store.add_event(self.name, text)
            self.said = []

    def _drop_partial(self) -> None:
        self.cursor["partial"] = None
        if self.partial is not None:
            tmp, file = self.partial
            file.close()
            tmp.unlink(missing_ok=True)
            self.partial = None

    def _here(self, text: str) -> str:
        for node, here in self.paths.items():
            if NODE not in node:
                text = text.replace(node, here)
        return text

    def _log(self, text: str) -> None:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            self.last_line = lines[-1]
        with open(self.log, "a", encoding="utf-8") as file:
            file.write(text)


def checkpoint_number(name: str) -> int | None:
    """``ckpt-0000012.pt`` -> 12; None for another name."""
    match = CHECKPOINT.match(name)
    return int(match.group(1)) if match else None


def numbered(folder: Path) -> list[tuple[int, Path]]:
    """The folder's numbered checkpoints, oldest first: [(iteration, path)]."""
    found = [(checkpoint_number(p.name), p) for p in folder.glob("ckpt-*.pt")]
    return sorted((n, p) for n, p in found if n is not None)


def latest_checkpoint(folder: Path) -> Path | None:
    """The run folder's newest numbered checkpoint (the one ``train --resume`` and ``eval``
    read from a folder), found by name only."""
    files = numbered(folder)
    return files[-1][1] if files else None


def id_of(game) -> int:
    return game.id


def _signature(stat: os.stat_result) -> tuple:
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _digest(config: dict) -> str:
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()


def _where(node: dict) -> str:
    from .. import __version__

    place = node["host"] + (f" ({node['ip']})" if node.get("ip") else "")
    if node.get("node_id"):
        place += f", node {node['node_id'][:12]}"
    version = node.get("version")
    if version and version != __version__:
        place += f"; g2048lab {version} there, {__version__} here"
    return f"runs on Ray node {place}"
