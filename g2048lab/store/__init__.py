"""The run store: every run in one SQLite database, written by a trainer, read by many viewers.

``RunStore(root)`` keeps ``root/runs.sqlite`` and, beside it, one folder of
checkpoint files per run (``root/<run name>/``). The database holds, per run:

- the run: name, status, config, device, times (Unix s), error, progress counters;
- metrics: one row per PPO iteration (the trainer's ``on_iteration`` rows);
- training updates: the latest in full, and a thinned history (``put_update``);
- recorded games: the best and the most recent few, for replay;
- control requests (pause, resume, stop, checkpoint) that viewers leave and the
  training process serves and acknowledges;
- events: what happened to the run, in words (checkpoints, resumes, take-overs, renames);
- its writer: the one process allowed to write the run (``claim``);
- tags and a note, a person's labels to find and compare runs by (``set_tags``, ``set_note``).

Readers open a store with ``RunStore(root, create=False)``: a missing folder is a
StoreError, and a folder without ``runs.sqlite`` reads as an empty store until a writer
makes one there; nothing is created.

The modules, each with one job:

- ``schema``: the database file's name, tables and migrations (``SCHEMA_VERSION``);
- ``errors``: StoreError and its kinds, and what a failed SQLite call means;
- ``names``: the checks of run names, tags, notes and fixed choices;
- ``run_info``: ``RunInfo``, one run as read from its row;
- ``connection``: per-thread connections, write transactions, WAL, migrating on open;
- ``claims``: one writer per run (``claim``, ``RunClaim``), and telling dead writers;
- ``folders``: run folders, renames and deletes that a kill -9 cannot break;
- ``requests``: control requests from viewers to a run's training process;
- ``run_records``: metrics rows, training updates and recorded games;
- ``run_store``: ``RunStore``, made of the parts above, and the runs themselves;
- ``recovery``: ``check_store`` and ``recover_store`` for a damaged store;
- ``recorder``: ``RunRecorder``, the subscriber that writes a run (the trainer knows
  nothing of the store).
"""

from .claims import LOCK_NAME, RunClaim
from .errors import DiskFull, RunBusy, RunNotFound, StoreDamaged, StoreError
from .folders import RunSize
from .names import STATUSES, check_run_name, check_tags
from .recorder import RunRecorder
from .recovery import RECOVERED_NAME, Recovery, StoreCheck, check_store, recover_store
from .requests import ACTIONS, ControlRequest
from .run_info import RunInfo, Writer
from .run_records import GAME_KINDS, GameSummary
from .run_store import RESERVE_NAME, RunStore
from .schema import DATABASE_NAME, SCHEMA_VERSION

__all__ = [
    "ACTIONS",
    "DATABASE_NAME",
    "GAME_KINDS",
    "LOCK_NAME",
    "RECOVERED_NAME",
    "RESERVE_NAME",
    "SCHEMA_VERSION",
    "STATUSES",
    "ControlRequest",
    "DiskFull",
    "GameSummary",
    "Recovery",
    "RunBusy",
    "RunClaim",
    "RunInfo",
    "RunNotFound",
    "RunRecorder",
    "RunSize",
    "RunStore",
    "StoreCheck",
    "StoreDamaged",
    "StoreError",
    "Writer",
    "check_run_name",
    "check_store",
    "check_tags",
    "recover_store",
]
