"""One run as the store knows it (``RunInfo``, with its ``Writer``), read from a row of the
``runs`` table (``RUN_COLUMNS``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

RUN_COLUMNS = (
    "id, name, status, config, device, created_at, updated_at, error, "
    "iteration, env_steps, episodes, best_score, max_tile, "
    "rewinds, tags, note, writer_pid, writer_host, writer_since, writer_token"
)  # writer_token last: _checked reads it as row[-1]


@dataclass(frozen=True)
class Writer:
    """The process that writes a run."""

    pid: int
    host: str
    since: float  # Unix s, when it claimed the run

    def __str__(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid} on {self.host} since {since}"


@dataclass(frozen=True)
class RunInfo:
    """One run as the store knows it. Times are Unix seconds."""

    id: int
    name: str
    status: str  # one of STATUSES (names.py)
    config: dict
    device: str
    created_at: float
    updated_at: float  # the last write about the run: a live run's is seconds old
    error: str | None  # why a failed run failed
    iteration: int  # PPO updates done
    env_steps: int  # moves played, all envs
    episodes: int  # games finished
    best_score: int
    max_tile: int
    rewinds: int = 0  # times it was resumed from a checkpoint, forgetting what came after
    writer: Writer | None = None  # the live process writing it, if any
    tags: tuple[str, ...] = ()  # sorted
    note: str = ""

    @property
    def learner(self) -> str:
        """The learner that trains it (runs from before learners: "ppo")."""
        return self.config.get("learner", "ppo")

    @classmethod
    def from_row(cls, row: tuple) -> RunInfo:
        """The run of a ``runs`` row read as ``SELECT {RUN_COLUMNS}``."""
        values = list(row[:14])
        values[3] = json.loads(values[3])  # config
        tags, note, pid, host, since, _token = row[14:]
        writer = Writer(pid, host, since) if pid is not None else None
        return cls(*values, writer=writer, tags=tuple(json.loads(tags)), note=note)
