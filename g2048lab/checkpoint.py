"""Checkpoint files: written atomically, read without executing pickled code.

A checkpoint is one ``torch.save`` file holding plain containers and tensors
(``Trainer.state_dict()``: weights, optimiser, RNG states, configs, counters,
versions). ``save_checkpoint`` writes a temporary file beside the target, fsyncs
it and renames it over the target, so a crash leaves either the old file or the
new one, never half a file. ``load_checkpoint`` uses ``torch.load(weights_only=True)``,
checks every field a reader uses (``RUN_FIELDS``, then the learner's own: its configs
build, its weights fit) and turns every way a file can be wrong into one ``CheckpointError`` line.

Damage is detected: PyTorch stores CRCs in its zip but does not check them, so a flipped
byte in a weight would load silently. ``save_checkpoint`` adds ``checksum``, the SHA-256
of the payload's content (``content_digest``: every tensor's bytes, dtype and shape, and
every other value, in order), and ``load_checkpoint`` recomputes it over what it read.
Hashing what the reader gets, not the file's bytes, keeps the checksum inside the one file
(no sidecar to lose when a file is copied) and needs no knowledge of torch's zip layout.
Files written before checksums have none and load unchecked, as before.

``CheckpointManager`` keeps a run folder's files: ``ckpt-<iteration>.pt`` (the
last K) and ``best.pt``. ``Checkpointer`` is the trainer subscriber that saves
every N games and/or M minutes, on request, and when the run ends.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import shutil
import tempfile
import time
import types
import typing
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from .meminfo import available_bytes
from .subscribers import Subscriber, TrainingContext

__all__ = [
    "CheckpointError",
    "CheckpointManager",
    "Checkpointer",
    "RUN_FIELDS",
    "FORMAT",
    "FORMAT_VERSION",
    "content_digest",
    "read_checkpoint",
    "save_checkpoint",
]

FORMAT = "g2048lab-checkpoint"
FORMAT_VERSION = 1  # a checksum is an optional field: older readers ignore it, so still 1
CHECKSUM = "sha256"  # 1.7 GB/s with the SHA CPU extensions (x86 since ~2017, ARMv8)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why and what to do, in one line."""


def save_checkpoint(
    payload: dict[str, Any], path: str | Path, make_room: Callable[[int], None] | None = None
) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file, fsync, rename).

    The file is serialised in memory first, so that a full disk is an ``OSError`` of the
    write (torch's own writer reports it as an opaque position mismatch); either way the
    error is a ``CheckpointError`` saying what to do, and no temporary file is left.
    ``make_room(nbytes)``, if given, is called with the file's size before it is written
    (``CheckpointManager`` frees space there).
    """
    path = Path(path)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    payload["checksum"] = content_digest(payload)  # a loaded payload's old one is replaced
    data = io.BytesIO()
    torch.save(payload, data)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if make_room is not None:
            make_room(len(data.getbuffer()))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as file:
            file.write(data.getbuffer())
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise CheckpointError(
            f"cannot write the checkpoint {path} ({len(data.getbuffer()) / 1e6:.1f} MB): "
            f"{error.strerror or error}; free some space or choose another --runs-dir, then "
            "continue the run with --resume"
        ) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform can open a folder; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` and check the run's fields; raise
    ``CheckpointError`` if it is missing, truncated, corrupt, damaged (its checksum does not
    match), foreign or from a newer g2048lab. The learner's own fields are checked one floor
    up, by ``learners.loading.load_checkpoint``, which ``eval``, ``play``, ``train --resume``
    and ``--teacher`` all read through."""
    path = Path(path)
    if path.is_dir():
        latest = CheckpointManager(path).latest()
        if latest is None:
            raise CheckpointError(f"no checkpoint files in {path}")
        path = latest
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol: the error says enough
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or corrupt: {_reason(error)}); "
            f"{_earlier(path)}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a g2048lab checkpoint")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer g2048lab (format {payload['format_version']}); "
            "upgrade g2048lab to read it"
        )
    if "checksum" in payload and not _intact(payload):
        raise CheckpointError(
            f"{path} is damaged: its content does not match the checksum saved in it "
            f"(a disk, copy or transfer changed it); {_earlier(path)}"
        )
    bad = field_error(path)
    check_fields(payload, RUN_FIELDS, bad)
    try:
        torch.Generator().set_state(payload["rng"]["torch"].cpu())
    except RuntimeError:
        raise bad("rng.torch", "is not a torch generator state") from None
    return payload


def content_digest(payload: Mapping[str, Any]) -> str:
    """``"sha256:<hex>"`` of everything in ``payload`` but its ``checksum``: each tensor's
    dtype, shape and bytes, each other value's type and text, in the dicts' order (which
    ``torch.save`` keeps), so that two payloads have one digest only if they load the same."""
    digest = hashlib.new(CHECKSUM)
    _feed(digest, {k: v for k, v in payload.items() if k != "checksum"})
    return f"{CHECKSUM}:{digest.hexdigest()}"


def _intact(payload: dict[str, Any]) -> bool:
    try:
        return payload["checksum"] == content_digest(payload)
    except TypeError:  # a value save_checkpoint cannot have written
        return False


def _feed(digest: Any, value: Any) -> None:
    """Add ``value`` to ``digest`` unambiguously: a tag, then a length or a text, then items."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)  # no copy for a saved CPU weight
        digest.update(f"T{tensor.dtype}{tuple(value.shape)}{tensor.numel()}:".encode())
        digest.update(tensor.view(torch.uint8).numpy())  # hashlib releases the GIL here
    elif isinstance(value, Mapping):
        digest.update(f"D{len(value)}:".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, (str, bytes)):
        data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        digest.update(f"{type(value).__name__}{len(data)}:".encode())
        digest.update(data)
    elif value is None or isinstance(value, (bool, int, float, torch.dtype, torch.device)):
        text = f"{type(value).__name__}={value!r}".encode()  # repr(float) round-trips exactly
        digest.update(f"V{len(text)}:".encode() + text)
    else:
        raise TypeError(f"a checkpoint holds plain containers and tensors, not {type(value)}")


def _earlier(path: Path) -> str:
    """What to do instead of loading ``path``: its run's other checkpoints, newest first."""
    saved = reversed(CheckpointManager(path.parent).saved())
    others = [p.name for p in saved if p.name != path.name]
    if path.name != "best.pt" and (path.parent / "best.pt").is_file():
        others.append("best.pt")
    if not others:
        return "use another checkpoint of the run (none is beside it) or a copy made before"
    return f"use another checkpoint of the run: {', '.join(others[:3])} in {path.parent}"


def _reason(error: Exception, limit: int = 120) -> str:
    """The first line of ``error``'s message without terminal colour codes (its type if it
    has none); a longer one is cut after its last sentence, or else its last whole word,
    within ``limit`` characters, and ends in ``...``.

    ``"PytorchStreamReader failed reading zip archive: failed finding central directory. This
    is an internal miniz error. If you are seeing this error, ..." -> "PytorchStreamReader
    failed reading zip archive: failed finding central directory. ..."``
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    if not text:
        return type(error).__name__
    line = text.splitlines()[0].strip()
    if len(line) <= limit:
        return line
    room = line[: limit - 4]
    if ". " in room:  # whole sentences
        return room[: room.rfind(". ") + 1] + " ..."
    # a word longer than the room (a path, say) is kept whole: never cut inside a word
    end = room.rfind(" ") if " " in room else line.find(" ")
    return line if end < 0 else line[:end].rstrip(" ,;:") + "..."


# --- what a checkpoint must hold -------------------------------------------------------

DAMAGED = "the file is damaged or not a training checkpoint: use another checkpoint of the run"


@dataclass(frozen=True)
class Kind:
    """What one field must hold: ``description`` completes "not ..." in an error line."""

    description: str
    accepts: Callable[[Any], bool]
    required: bool = True


def optional(kind: Kind) -> Kind:
    return dataclasses.replace(kind, required=False)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_tensors(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, torch.Tensor) for v in value.values())


DICT = Kind("a dict", lambda v: isinstance(v, dict))
DICT_OR_NONE = Kind("a dict or None", lambda v: v is None or isinstance(v, dict))
TEXT = Kind("a string", lambda v: isinstance(v, str))
TEXT_OR_NONE = Kind("a string or None", lambda v: v is None or isinstance(v, str))
COUNT = Kind("a whole number >= 0", lambda v: _is_int(v) and v >= 0)
POSITIVE = Kind("a whole number >= 1", lambda v: _is_int(v) and v >= 1)
NUMBER = Kind("a number", _is_number)
DURATION = Kind("a number >= 0", lambda v: _is_number(v) and v >= 0)
LIMIT = Kind("a number > 0 or None", lambda v: v is None or (_is_number(v) and v > 0))
NUMBERS = Kind("a list of numbers", lambda v: isinstance(v, list) and all(map(_is_number, v)))
LIST = Kind("a list", lambda v: isinstance(v, list))
TENSOR = Kind("a tensor", lambda v: isinstance(v, torch.Tensor))
BYTES = Kind("a uint8 tensor", lambda v: isinstance(v, torch.Tensor) and v.dtype == torch.uint8)
TENSORS = Kind("a dict of tensors", _is_tensors)

RUN_FIELDS: dict[str, Kind] = {
    "learner": optional(TEXT),  # files older than the learners have none: "ppo"
    "run_id": TEXT,
    "seed": COUNT,
    "game": optional(TEXT),  # games.Game.name; absent in files from before games: 2048-4x4
    "budget": optional(DICT),
    "budget.total_env_steps": optional(LIMIT),
    "budget.max_seconds": optional(LIMIT),
    "iteration": COUNT,
    "counters": DICT,
    "counters.env_steps": COUNT,
    "counters.episodes": COUNT,
    "counters.best_score": NUMBER,
    "counters.max_tile": COUNT,
    "counters.elapsed_s": DURATION,
    "recent_scores": NUMBERS,
    "rng": DICT,
    "rng.torch": BYTES,
    "best_score_of_file": optional(NUMBER),  # only in best.pt
}
"""Every field of the run's part of a checkpoint that a reader uses, a dotted name per
nesting level, parents first. The learner named by ``learner`` checks its own fields
(``Learner.check_payload``, with ``check_fields``). Other fields (versions, device,
``metric_summary``, older files' ``metrics``) are neither required nor refused."""

_ABSENT = object()  # a field not in the file
_SKIPPED = object()  # a field under an absent optional field or a None

Bad = Callable[[str, str], Exception]


def learner_name(payload: dict[str, Any]) -> str:
    """The learner that wrote a checkpoint ("ppo" for files from before learners)."""
    return payload.get("learner") or "ppo"


def field_error(path: str | Path) -> Bad:
    """The ``bad(field, problem)`` that field checks of the file at ``path`` raise."""

    def bad(name: str, problem: str) -> CheckpointError:
        return CheckpointError(f"{path}: field {name!r} {problem}; {DAMAGED}")

    return bad


def check_fields(payload: dict[str, Any], fields: dict[str, Kind], bad: Bad) -> None:
    """Raise ``bad(name, problem)`` for the first field of ``fields`` (dotted names, parents
    first) that is missing or of the wrong kind."""
    for name, kind in fields.items():
        value = lookup(payload, name)
        if value is _SKIPPED or (value is _ABSENT and not kind.required):
            continue
        if value is _ABSENT:
            raise bad(name, "is missing")
        if not kind.accepts(value):
            raise bad(name, f"is {show(value)}, not {kind.description}")


def check_weights(model: torch.nn.Module, saved: dict[str, torch.Tensor], bad: Bad) -> None:
    """The saved weights fit ``model`` (built on the meta device, see ``SkipInit``)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    shapes = {k: tuple(v.shape) for k, v in saved.items()}
    for key in [*expected, *(k for k in shapes if k not in expected)]:
        if expected.get(key) != shapes.get(key):
            found = f"is {shapes[key]}" if key in shapes else "is missing"
            wanted = f"needs {expected[key]}" if key in expected else "has no such weight"
            raise bad("model", f"does not fit model_config: {key!r} {found}, the config {wanted}")


class SkipInit(TorchFunctionMode):
    """Leaves ``torch.nn.init`` undone: only the shapes are wanted, and ``normal_`` on the
    meta device imports torch._dynamo, seconds that ``g2048lab eval`` would otherwise wait."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init":
            return kwargs.get("tensor", args[0] if args else None)
        return func(*args, **kwargs)


def lookup(payload: dict[str, Any], name: str) -> Any:
    value: Any = payload
    for key in name.split("."):
        if not isinstance(value, dict):
            return _SKIPPED
        value = value.get(key, _ABSENT)
    return value


def show(value: Any) -> str:
    """``-1``, ``None``, ``a str``, ``a torch.float32 tensor of shape (5,)``."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    return f"a {type(value).__name__}"


def build(cls: type, settings: dict[str, Any], name: str, bad: Callable) -> Any:
    """``cls(**settings)``, each value of its field's type (a dataclass does not check)."""
    all_hints = typing.get_type_hints(cls)
    hints = {field.name: all_hints[field.name] for field in dataclasses.fields(cls)}
    for key, value in settings.items():
        if key not in hints:
            raise bad(f"{name}.{key}", f"is not a {cls.__name__} setting")
        if not _fits(value, hints[key]):
            raise bad(f"{name}.{key}", f"is {show(value)}, not {_type_name(hints[key])}")
    try:
        return cls(**settings)
    except ValueError as error:
        raise bad(name, f"is not a valid {cls.__name__} ({error})") from None


def _options(hint: Any) -> tuple[type, ...]:
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    return typing.get_args(hint) if union else (hint,)


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of type ``hint``; a hint other than int, float, bool, str and
    their unions with None is left to the dataclass to check."""
    if not set(_options(hint)) <= {int, float, bool, str, type(None)}:
        return True
    for option in _options(hint):
        if option is float and _is_number(value) or option is int and _is_int(value):
            return True
        if option in (bool, str, type(None)) and isinstance(value, option):
            return True
    return False


def _type_name(hint: Any) -> str:
    return " or ".join("None" if t is type(None) else t.__name__ for t in _options(hint))


def check_optimizer(state: dict[str, Any], shapes: list[tuple[int, ...]], bad: Callable) -> None:
    """The Adam state matches the model: one entry per parameter, moments of its shape."""
    groups = state["param_groups"]
    if not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
        raise bad("optimizer.param_groups", "is not a list of parameter groups")
    ids = [i for group in groups for i in group["params"]]
    if not all(map(_is_int, ids)):
        raise bad("optimizer.param_groups", "names parameters by other than their number")
    if len(ids) != len(shapes):
        raise bad("optimizer", f"holds {len(ids)} parameters, the model {len(shapes)}")
    shape_of = dict(zip(ids, shapes))
    for i, moments in state["state"].items():
        if i not in shape_of or not _is_tensors(moments):
            raise bad(f"optimizer.state.{i}", "does not belong to a model parameter")
        for key, tensor in moments.items():
            if tensor.dim() > 0 and tuple(tensor.shape) != shape_of[i]:
                found = f"is {tuple(tensor.shape)}, its parameter {shape_of[i]}"
                raise bad(f"optimizer.state.{i}.{key}", found)


class CheckpointManager:
    """The checkpoint files of one run folder: the last ``keep_last`` and the best, fewer
    where the disk cannot hold them: before a file is written, the oldest numbered ones
    (never the latest) are deleted while the free space would fall below the new file's
    size plus ``RESERVE`` (an n-tuple network with coherence and stages writes gigabytes)."""

    RESERVE = 256 * 2**20
    """Bytes left free on the disk after a checkpoint is written, where old ones can go."""

    PATTERN = re.compile(r"ckpt-(\d+)\.pt$")

    def __init__(self, folder: str | Path, keep_last: int = 3):
        self.folder = Path(folder)
        self.keep_last = keep_last
        self._best: float | None = None  # score of best.pt, read from the file once

    def saved(self) -> list[Path]:
        """Numbered checkpoints, oldest first."""
        if not self.folder.is_dir():
            return []
        found = [
            (int(m.group(1)), p) for p in self.folder.iterdir() if (m := self.PATTERN.match(p.name))
        ]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        saved = self.saved()
        return saved[-1] if saved else None

    @property
    def best_path(self) -> Path:
        return self.folder / "best.pt"

    def save(self, payload: dict[str, Any], score: float | None = None) -> Path:
        """Write ``ckpt-<iteration>.pt``; also ``best.pt`` when ``score`` beats the best so far.

        Older numbered files beyond ``keep_last`` are deleted after the new one is safe.
        """
        for stale in self.folder.glob(".*.tmp") if self.folder.is_dir() else []:
            stale.unlink(missing_ok=True)  # left by a writer that was killed mid-write
        path = save_checkpoint(
            payload, self.folder / f"ckpt-{payload['iteration']:07d}.pt", self._make_room
        )
        if score is not None and score > self._best_score():
            best = {**payload, "best_score_of_file": score}
            save_checkpoint(best, self.best_path, self._make_room)
            self._best = score
        for old in self.saved()[: -self.keep_last]:
            old.unlink(missing_ok=True)
        return path

    def _make_room(self, nbytes: int) -> None:
        """Delete the oldest numbered checkpoints, never the latest, while the disk's free
        space is under ``nbytes + RESERVE``; what cannot be freed is left to the write
        (which then fails as a full disk does, in one line)."""
        old = self.saved()[:-1]
        while old and shutil.disk_usage(self.folder).free < nbytes + self.RESERVE:
            old.pop(0).unlink(missing_ok=True)

    def _best_score(self) -> float:
        if self._best is None:
            self._best = float("-inf")
            if self.best_path.is_file():
                try:
                    payload = read_checkpoint(self.best_path)
                    self._best = float(payload.get("best_score_of_file", float("-inf")))
                except CheckpointError:
                    pass  # a broken best.pt is replaced by the next good one
        return self._best


class Checkpointer(Subscriber):
    """Saves the trainer's state every ``every_episodes`` games and/or ``every_minutes``,
    when ``request()`` is called, and when the run ends (stop, budget, failure).

    The state is taken in the training thread at the end of an iteration, so a checkpoint
    always holds a consistent state; a request is served within one iteration. Training
    then goes on while a thread of its own writes the file (``background``; hashing,
    serialising and syncing a gigabyte n-tuple network takes seconds): the state is
    copied first (``snapshot``), one write at a time, and the one at the run's end is
    waited for. Where memory cannot hold the copy, the write happens in place, training
    waiting. A write that failed (a full disk) fails the run at the next iteration, in one
    line, as a write in place would. The score used for ``best.pt`` is the mean score of
    recent games.
    """

    def __init__(
        self,
        manager: CheckpointManager,
        every_episodes: int | None = None,
        every_minutes: float | None = 10.0,
        background: bool = True,
    ):
        self.manager = manager
        self.every_episodes = every_episodes
        self.every_minutes = every_minutes
        self.background = background
        self.last_path: Path | None = None
        self._requested = False
        self._last_episodes = 0
        self._last_time = time.monotonic()
        self._writer: ThreadPoolExecutor | None = None
        self._writing: Future | None = None

    def request(self) -> str:
        """Ask for a checkpoint at the end of the current iteration (thread-safe)."""
        self._requested = True
        return "a checkpoint will be saved at the end of the current iteration"

    def on_iteration(self, metrics: dict, context: TrainingContext) -> None:
        self._finish(wait=False)  # a failed write fails the run here
        due_games = (
            self.every_episodes and context.episodes - self._last_episodes >= self.every_episodes
        )
        due_time = (
            self.every_minutes and time.monotonic() - self._last_time >= 60 * self.every_minutes
        )
        if self._requested or due_games or due_time:
            self.save(context)

    def on_end(self, context: TrainingContext) -> None:
        try:
            if context.iteration > 0 or context.env_steps > 0:
                self.save(context, wait=True)
            self._finish(wait=True)
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None

    def save(self, context: TrainingContext, wait: bool = False) -> Path | None:
        """Take the run's state and write it (in the background unless ``wait``); the
        file's path once written, None while it is being written."""
        run = context.run
        self._finish(wait=True)  # one write at a time
        self._requested = False
        self._last_episodes = context.episodes
        self._last_time = time.monotonic()
        payload = run.checkpoint_payload()
        score = run.recent_mean_score
        if not (self.background and _can_copy(payload)):
            self._saved(run, self.manager.save(payload, score))
            return self.last_path
        payload = snapshot(payload)
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, "checkpoint-writer")
        # the writer tells the run itself, before its future is done: a wait returns with
        # ``last_path`` and the run's count already updated
        self._writing = self._writer.submit(
            lambda: self._saved(run, self.manager.save(payload, score))
        )
        if wait:
            self._finish(wait=True)
            return self.last_path
        return None

    def _saved(self, run, path: Path) -> Path:
        self.last_path = path
        run.checkpoint_saved(path)
        return path

    def _finish(self, wait: bool) -> None:
        """Collect the background write if it is done (or ``wait`` for it); re-raise its
        error here, in the training thread."""
        writing = self._writing
        if writing is None or not (wait or writing.done()):
            return
        self._writing = None
        writing.result()  # CheckpointError for a full disk


def snapshot(value: Any) -> Any:
    """A copy of a payload (tensors and plain containers, as ``content_digest`` takes them)
    that training can no longer change: every tensor cloned, containers rebuilt; the other
    values are immutable."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(snapshot(v) for v in value)
    return value


def _tensor_bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def _can_copy(payload: dict[str, Any]) -> bool:
    """Whether memory holds a copy of the payload's tensors beside the serialised file
    (``save_checkpoint`` builds it in memory) with 10% to spare."""
    available = available_bytes()
    return available is None or 2.2 * _tensor_bytes(payload) < available
