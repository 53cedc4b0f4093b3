"""``sweep start --ray ADDRESS``: the sweep's trials on a Ray cluster (``RayLauncher``).

Each trial is a Ray actor (``relay.TrialNode``: ``num_cpus`` its ``--threads``, never
restarted by Ray) that runs ``g2048lab train`` in a temporary folder of the node Ray put it
on. Nodes share no file system: the driver pulls what the trial's local store gains once per
poll and writes it into the one run store here as the run's one writer (``relay.RunMirror``),
so the runs browser shows a remote trial live, and evaluation, replay and export read its
checkpoints and games here. An evaluation (``--eval-games``) is an actor too, given the
checkpoint it evaluates.

Faults. A node that dies takes its actors with it: Ray reports the actor dead, the run here is
marked killed and the driver queues the trial again; it resumes on another node from the last
checkpoint that reached this machine (the file travels with the new actor, the run here is
rewound to it), so a dead node costs the work since that checkpoint. A driver that dies takes
its actors with it (Ray ends the actors an owner made): ``sweep resume`` resumes them likewise.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ..status import Status
from ..store import RunStore, StoreError
from .relay import NODE, RunMirror, TrialNode, latest_checkpoint
from .spec import flag_value
from .sweep_store import SweepStore, Trial

__all__ = ["RayLauncher", "check_ray"]

CONNECT_TIMEOUT_S = 5.0  # to reach the cluster's address before Ray's own, much longer, wait
KILL_WAIT_S = 2.0
BURST_S = 0.5  # of one poll spent on shipments the node has ready at once
# how a trial's process trains, which its resumed process keeps (its --threads, --teacher too)
KEPT_ON_RESUME = (
    "--device",
    "--checkpoint-minutes",
    "--checkpoint-games",
)  # for an actor to end its command and remove its folder before ray.kill


def check_ray(address: str | None = None) -> None:
    """ValueError in one line if Ray cannot be imported, or (``address``: HOST:PORT) if
    nothing answers there."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ValueError('--ray needs Ray: pip install "g2048lab[ray]"') from None
    if address is None:
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and the like: Ray finds the cluster itself
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        why = error.strerror or type(error).__name__
        raise ValueError(
            f"--ray {address}: no Ray cluster answers there ({why}); start one with "
            "`ray start --head` and give its address, HEAD:6379"
        ) from None


@dataclass
class _Handle:
    """A command the launcher started: its actor, what writes it here, its outcome."""

    mirror: RunMirror
    actor: object | None = None  # None: refused before an actor was made
    pull: object | None = None  # the ObjectRef of the shipment being prepared
    code: int | None = None
    killed: bool = False


class RayLauncher:
    """The driver's ``Launcher`` for trials on the Ray cluster at ``address`` (HEAD:6379);
    connects at once (ValueError in one line when it cannot)."""

    def __init__(self, address: str):
        check_ray(address)
        import ray

        self.ray, self.address = ray, address
        self.connected = not ray.is_initialized()
        if self.connected:
            try:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise ValueError(f"--ray {address}: {_last_line(error)}") from None
        self.actor_class = ray.remote(TrialNode)
        self.handles: list[_Handle] = []
        self.stores: dict[str, RunStore] = {}
        self.blobs: dict[tuple, object] = {}  # (path, size, mtime): ObjectRef of its bytes

    # --- the Launcher protocol -----------------------------------------------------------

    def start(self, trial: Trial, argv: list[str], log: Path) -> _Handle:
        if argv[0] == "eval":
            return self._start_eval(argv, log)
        runs_dir = flag_value(argv, "--runs-dir")
        store = self._store(runs_dir)
        flags = argv[1:] if "--resume" not in argv else self._trial_flags(store, trial)
        threads = int(flag_value(flags, "--threads") or 1)
        paths = {f"{NODE}/runs": runs_dir}
        files: dict[str, Path] = {}
        if "--resume" in argv:
            name = flag_value(argv, "--resume")
            command = ["train", "--threads", str(threads)]
            for flag in KEPT_ON_RESUME:
                if (value := flag_value(flags, flag)) is not None:
                    command += [flag, value]
        else:
            name = flag_value(argv, "--run-name")
            command = ["train", *_without(argv[1:], "--runs-dir", "--quiet")]
        handle = _Handle(RunMirror(store, name, log, paths))
        if (refused := self._refusal(threads)) is not None:
            handle.mirror.lost(refused, Status.FAILED)
            handle.code = 2
            return handle
        teacher = flag_value(flags, "--teacher")
        if teacher is not None and (shipped := _teacher_file(teacher, runs_dir)) is not None:
            source, relative, file = shipped
            files[relative] = file
            node_teacher = f"{NODE}/{relative.rsplit('/', 1)[0] if source.is_dir() else relative}"
            command = [*_without(command, "--teacher"), "--teacher", node_teacher]
            handle.mirror.paths[node_teacher] = str(source)
        if "--resume" in argv:
            try:
                checkpoint = handle.mirror.resume()  # claims the run and rewinds it here
            except StoreError as error:  # another process writes it, say: not this trial's
                handle.mirror.lost(f"cannot resume it: {error}", Status.FAILED)
                handle.code = 2
                return handle
            files[f"resume/{checkpoint.name}"] = checkpoint
            command += ["--resume", f"{NODE}/resume/{checkpoint.name}"]
        command += ["--runs-dir", f"{NODE}/runs", "--quiet"]
        return self._launch(handle, command, name, files, threads)

    def poll(self, handle: _Handle) -> int | None:
        """Write the shipment that has arrived, if any, and ask for the next; while the node
        says it has more (a file in chunks, the last of an ended command), go on for up to
        ``BURST_S``."""
        if handle.code is not None:
            return handle.code
        if handle.killed:
            return self._lost(handle, "killed by the sweep's driver", Status.KILLED, -9)
        if handle.pull is None:
            self._ask(handle)
        deadline, wait = time.monotonic() + BURST_S, 0.0  # no wait for a shipment not ready
        while True:
            ready, _ = self.ray.wait([handle.pull], timeout=wait)
            if not ready:
                return None
            ref, handle.pull = handle.pull, None
            code, more = self._receive(handle, ref)
            if code is not None or handle.pull is None:
                return code
            wait = deadline - time.monotonic()
            if not more or wait <= 0:
                return None

    def _receive(self, handle: _Handle, ref) -> tuple[int | None, bool]:
        """Write one shipment; (the exit code once the command has ended, whether the node
        has more at once). The next pull is asked for unless the command has ended."""
        ray = self.ray
        try:
            shipment = ray.get(ref)
        except (ray.exceptions.ActorUnavailableError, ray.exceptions.ObjectLostError):
            # maybe back soon, or the shipment was lost with its node: pulls are repeatable,
            # and an actor whose node died ends as ActorDiedError
            self._ask(handle)
            return None, False
        except ray.exceptions.RayActorError as error:
            if error.actor_init_failed:
                why = f"its Ray actor could not start: {_last_line(error)}"
                return self._lost(handle, why, Status.FAILED, 1), False
            why = f"its Ray node or actor died ({_last_line(error)})"
            return self._lost(handle, why, Status.KILLED, -9), False
        except ray.exceptions.RayError as error:  # the relay itself failed on the node
            self._end_actor(handle)
            why = f"its relay failed: {_last_line(error)}"
            return self._lost(handle, why, Status.FAILED, 1), False
        try:
            ended = handle.mirror.apply(shipment)
        except StoreError as error:
            self._end_actor(handle)
            return self._lost(handle, f"cannot record it here: {error}", Status.FAILED, 1), False
        if ended is not None:
            ray.kill(handle.actor, no_restart=True)  # its command and folder are gone already
            return self._done(handle, ended.code), False
        self._ask(handle)
        return None, shipment.more

    def _ask(self, handle: _Handle) -> None:
        handle.pull = handle.actor.pull.remote(handle.mirror.cursor, handle.mirror.requests())

    def stop(self, handle: _Handle) -> None:
        if handle.actor is not None and handle.code is None:
            handle.actor.stop.remote()

    def kill(self, handle: _Handle) -> None:
        if handle.actor is not None and handle.code is None and not handle.killed:
            self._end_actor(handle)
            handle.killed = True

    def close(self) -> None:
        """End what is still running (each by its handle), then disconnect."""
        for handle in list(self.handles):
            self.kill(handle)
            self.poll(handle)
        if self.connected and self.ray.is_initialized():
            self.ray.shutdown()

    def capacity(self, threads: int) -> int:
        """Trials of ``threads`` threads the cluster's live nodes hold at once."""
        cpus = sum(node["Resources"].get("CPU", 0) for node in self._nodes())
        return max(1, int(cpus) // max(1, threads))

    # --- helpers -------------------------------------------------------------------------

    def _start_eval(self, argv: list[str], log: Path) -> _Handle:
        folder = Path(argv[1])
        node_folder = f"{NODE}/eval/{folder.name}"
        handle = _Handle(RunMirror(None, None, log, {node_folder: str(folder)}))
        checkpoint = latest_checkpoint(folder)
        if checkpoint is None:
            handle.mirror.lost(f"no checkpoint in {folder} to evaluate")
            handle.code = 2
            return handle
        files = {f"eval/{folder.name}/{checkpoint.name}": checkpoint}
        return self._launch(handle, ["eval", node_folder, *argv[2:]], None, files, 1)

    def _launch(self, handle, command, name, files: dict[str, Path], threads: int) -> _Handle:
        blobs = [
            self._blob(path, keep=relative.startswith("teacher/"))
            for relative, path in files.items()
        ]
        handle.actor = self.actor_class.options(
            num_cpus=threads, max_restarts=0, max_task_retries=0, scheduling_strategy="SPREAD"
        ).remote(command, name, list(files), *blobs)
        self.handles.append(handle)
        return handle

    def _blob(self, path: Path, keep: bool):
        """The file's bytes in Ray's object store; ``keep``: put once while the file is
        unchanged (a teacher every trial shares travels to each node once), else freed
        once the actor has them."""
        if not keep:
            return self.ray.put(path.read_bytes())
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in self.blobs:
            self.blobs[key] = self.ray.put(path.read_bytes())
        return self.blobs[key]

    def _refusal(self, threads: int) -> str | None:
        most = max((node["Resources"].get("CPU", 0) for node in self._nodes()), default=0)
        if threads > most:
            return (
                f"no live node of the Ray cluster at {self.address} has {threads} CPUs (the "
                f"largest has {most:g}): give the trials --threads {int(most) or 1} or add nodes"
            )
        return None

    def _nodes(self) -> list[dict]:
        return [node for node in self.ray.nodes() if node.get("Alive")]

    def _end_actor(self, handle: _Handle) -> None:
        """End the actor's command and folder (briefly waited for), then the actor."""
        ray = self.ray
        with contextlib.suppress(ray.exceptions.RayError):
            ray.wait([handle.actor.end.remote()], timeout=KILL_WAIT_S)
            ray.kill(handle.actor, no_restart=True)

    def _lost(self, handle: _Handle, why: str, status: str, code: int) -> int:
        handle.mirror.lost(why, status)
        return self._done(handle, code)

    def _done(self, handle: _Handle, code: int) -> int:
        handle.code, handle.pull = code, None
        if handle in self.handles:
            self.handles.remove(handle)
        return code

    def _store(self, runs_dir: str) -> RunStore:
        if runs_dir not in self.stores:
            self.stores[runs_dir] = RunStore(runs_dir)
        return self.stores[runs_dir]

    def _trial_flags(self, store: RunStore, trial: Trial) -> list[str]:
        """A resumed trial's own train flags (its threads, its teacher), from its sweep."""
        from .spec import train_argv

        spec = SweepStore(store).get_sweep(trial.sweep).spec
        return train_argv(spec, trial.setting, trial.seed)


def _teacher_file(teacher: str, runs_dir: str) -> tuple[Path, str, Path] | None:
    """``--teacher`` as train finds it (a checkpoint file, a run folder, a run's name) ->
    (where it is here, its path in the node's folder, the file to send); None if missing
    (train on the node then says so)."""
    source = Path(teacher)
    if not source.exists():
        source = Path(runs_dir) / teacher
    if source.is_file():
        return source.resolve(), f"teacher/{source.name}", source
    if source.is_dir() and (latest := latest_checkpoint(source)) is not None:
        return source.resolve(), f"teacher/{source.name}/{latest.name}", latest
    return None


def _without(argv: list[str], *flags: str) -> list[str]:
    """``argv`` without ``flags`` and their values (``--quiet`` has none)."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item in flags:
            skip = item != "--quiet"
        elif not any(item.startswith(flag + "=") for flag in flags):
            kept.append(item)
    return kept


def _last_line(error: BaseException) -> str:
    """The last line of an error's text that says something (Ray's carry a traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:300]
