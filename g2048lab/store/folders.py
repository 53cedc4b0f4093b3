"""Each run's folder of checkpoint files, ``root/<run name>/``: finding it, and renaming and
deleting a run with its folder.

A run can be renamed (``rename_run``: its row and its folder) and deleted (``delete_run``: its
rows in every table and its folder), each refused while a process writes the run; each
docstring says why a kill -9 at any point leaves a usable store. A deleted run's folder waits
in ``root/.deleted-<name>-<hex>`` until it is removed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from .claims import LOCK_NAME, try_flock
from .connection import StoreConnection
from .errors import StoreError
from .names import check_run_name
from .run_info import RunInfo
from .schema import RUN_TABLES

TRASH_PREFIX = ".deleted-"  # root/.deleted-<name>-<hex>: a deleted run's folder, until removed


@dataclass(frozen=True)
class RunSize:
    """What a run takes up (``run_size``) or took up (``delete_run``). The store's file does
    not shrink when rows go: SQLite reuses their pages for new rows."""

    checkpoint_files: int  # .pt files in its folder
    folder_bytes: int  # all the files in its folder
    metric_rows: int
    rows: int  # in all the store's tables, its own row included


class RunFolders(StoreConnection):
    """RunStore's part that owns the runs' folders. It holds a run's writer flock through
    ``_lock`` and ``_locked_run``, and reads the run through ``get_run``, RunStore's."""

    def run_dir(self, name: str) -> Path:
        """The run's folder for checkpoint files, ``root/<name>``; created if missing. A move
        of that folder that a rename left half done (``rename_run``) is finished first."""
        self._run_id(name)
        self._finish_renames(name)
        folder = self.root / name
        try:
            folder.mkdir(exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create the run folder {folder}: {error.strerror}") from None
        return folder

    def rename_run(self, old: str, new: str) -> RunInfo:
        """Give a run a new name; its folder ``root/OLD`` becomes ``root/NEW``. Checkpoints
        hold no folder path, and ``train --resume NEW`` runs them under the store's name
        (not the one they were saved under). Refused with RunBusy while a process writes
        the run, StoreError if NEW is taken or not a valid name. Adds the event "renamed
        from OLD".

        Crash safety. Holding the run's writer flock (no process can claim the run
        meanwhile), it (1) renames the row, noting OLD in ``renamed_from``, in one
        transaction; (2) moves the folder; (3) clears ``renamed_from``. A crash before (1)
        commits changes nothing. After it, the store knows the run as NEW and where its
        folder may still be: the next ``RunStore`` opened on the folder, or ``run_dir`` of
        either name, finishes (2) and (3) once the flock is free (the kernel frees it when a
        process dies); while it is held, ``run_dir`` of either name refuses, so no one makes
        an empty NEW folder or takes OLD's meanwhile.
        """
        check_run_name(new)
        self.get_run(old)  # RunNotFound; a dead writer's run is marked killed
        source, target = self.root / old, self.root / new
        if self._db().execute("SELECT 1 FROM runs WHERE name = ?", (new,)).fetchone():
            raise StoreError(f"a run named {new!r} exists in {self.path}: choose another name")
        if target.exists():
            raise StoreError(f"{target} exists: move it away or choose another name")
        fd = self._lock(old, "rename")
        try:
            with self._write() as db:
                run = self._locked_run(old, "rename")
                try:
                    self._rename_row(db, run.id, old, new, moving=old)
                except sqlite3.IntegrityError:
                    raise StoreError(
                        f"a run named {new!r} exists in {self.path}: choose another name"
                    ) from None
                self._add_event(db, run.id, f"renamed from {old}")
            try:
                source.rename(target)
            except OSError as error:  # nothing moved: the run keeps its old name
                with self._write() as db:
                    self._rename_row(db, run.id, new, old, moving=None)
                    self._add_event(db, run.id, f"not renamed to {new}: {error.strerror}")
                raise StoreError(f"cannot move {source} to {target}: {error.strerror}") from None
            with self._write() as db:
                db.execute("UPDATE runs SET renamed_from = NULL WHERE id = ?", (run.id,))
        finally:
            os.close(fd)
        return self.get_run(new)

    def _rename_row(
        self, db: sqlite3.Connection, run_id: int, old: str, new: str, moving: str | None
    ) -> None:
        # a killed run's error tells how to resume it, by name
        db.execute(
            "UPDATE runs SET name = ?, renamed_from = ?,"
            " error = replace(error, '--resume ' || ?, '--resume ' || ?) WHERE id = ?",
            (new, moving, old, new, run_id),
        )

    def run_size(self, name: str) -> RunSize:
        """What the run takes up: checkpoint files and bytes in its folder, rows in the store
        (what ``delete_run`` would free)."""
        run_id = self._run_id(name)
        db = self._db()
        counts = {
            table: db.execute(
                f"SELECT count(*) FROM {table} WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            for table in RUN_TABLES
        }
        return RunSize(*_folder_size(self.root / name), counts["metrics"], sum(counts.values()) + 1)

    def delete_run(self, name: str) -> RunSize:
        """Delete the run: its rows in every table and its folder (checkpoint files, log).
        Refused with RunBusy while a process writes it. Returns what it took up. A new run
        may take the name afterwards.

        Crash safety. Holding the run's writer flock, it (1) moves the run's folder to a
        hidden trash folder, ``root/.deleted-<name>-<hex>``; (2) deletes the rows in one
        transaction; (3) removes the trash. A crash before (2) commits leaves the run in the
        store without its folder, to delete again; trash left by a crash is removed by the
        next delete or ``RunStore`` opened on the folder (not trash whose flock a live
        delete holds). If (2) fails (a full disk, a store busy too long), the folder is
        moved back and the run stays whole.
        """
        self.get_run(name)  # RunNotFound; a dead writer's run is marked killed
        fd = self._lock(name, "delete")
        try:
            self._locked_run(name, "delete")
            folder = self.root / name
            files, size = _folder_size(folder)
            trash = self.root / f"{TRASH_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
            try:
                folder.rename(trash)
            except OSError as error:
                raise StoreError(f"cannot move {folder} away: {error.strerror}") from None
            try:
                with self._write() as db:
                    run_id = self._locked_run(name, "delete").id
                    rows = {
                        table: db.execute(
                            f"DELETE FROM {table} WHERE run_id = ?", (run_id,)
                        ).rowcount
                        for table in RUN_TABLES
                    }
                    db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
                    db.execute("UPDATE trials SET run_id = NULL WHERE run_id = ?", (run_id,))
            except StoreError:
                trash.rename(folder)
                raise
            shutil.rmtree(trash, ignore_errors=True)
        finally:
            os.close(fd)
        self._empty_trash()
        return RunSize(files, size, rows["metrics"], sum(rows.values()) + 1)

    def _finish_renames(self, name: str | None = None) -> None:
        """Finish the folder moves of renames whose process died between renaming the row
        and moving the folder (``rename_run``). With ``name``: only the moves to or from
        ``root/<name>``, and StoreError if one of them is under way or cannot be finished;
        without: all that can be."""
        pending = self._db().execute(
            "SELECT id, name, renamed_from FROM runs WHERE renamed_from IS NOT NULL"
        )
        for run_id, new, old in pending.fetchall():
            if name is None:
                with suppress(StoreError):
                    self._finish_rename(run_id, old, new)
            elif name in (old, new):
                self._finish_rename(run_id, old, new)

    def _finish_rename(self, run_id: int, old: str, new: str) -> None:
        source, target = self.root / old, self.root / new
        if source.is_dir():  # else it has moved already
            fd = try_flock(source / LOCK_NAME)
            if fd is None:  # the renaming process lives: its move comes in a moment
                raise StoreError(f"run {new!r} is being renamed from {old!r}: try again")
            try:
                if target.exists():
                    raise StoreError(
                        f"run {new!r} has its files in {source}, but {target} exists too: "
                        f"move {target} away"
                    )
                source.rename(target)
            except OSError as error:
                raise StoreError(f"cannot move {source} to {target}: {error.strerror}") from None
            finally:
                os.close(fd)
        with self._write() as db:
            db.execute(
                "UPDATE runs SET renamed_from = NULL WHERE id = ? AND renamed_from = ?",
                (run_id, old),
            )

    def _empty_trash(self) -> None:
        """Remove deleted runs' folders left in the trash by a delete that did not finish
        (its process died); not those whose flock a live delete holds. One folder listing."""
        with suppress(OSError):
            for entry in os.scandir(self.root):
                if not (entry.name.startswith(TRASH_PREFIX) and entry.is_dir()):
                    continue
                with suppress(StoreError):
                    fd = try_flock(Path(entry.path) / LOCK_NAME)
                    if fd is not None:
                        shutil.rmtree(entry.path, ignore_errors=True)
                        os.close(fd)


def _folder_size(folder: Path) -> tuple[int, int]:
    """(checkpoint files, bytes of all files) in ``folder`` and below; (0, 0) if missing."""
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    return sum(p.suffix == ".pt" for p in files), sum(p.stat().st_size for p in files)
