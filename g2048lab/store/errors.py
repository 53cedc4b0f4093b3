"""The store's errors, and what a failed SQLite call means for the store.

Every public method of RunStore raises StoreError, never sqlite3's errors
(``store_errors_only``), and tells a full disk (``DiskFull``: nothing stored is lost; free
space and try again) from a damaged store (``StoreDamaged``: ``check_store`` says what is
damaged, ``recover_store`` copies what can be read into a new store).
"""

from __future__ import annotations

import errno
import functools
import inspect
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from .schema import BUSY_TIMEOUT_S


class StoreError(ValueError):
    """A run store that cannot be used as asked; the message says why and what to do."""


class RunNotFound(StoreError):
    """No run of that name in the store; the message names some that exist."""


class RunBusy(StoreError):
    """Another live process writes the run; the message names it and what to do."""


class DiskFull(StoreError):
    """The disk holding the store is full: what failed was not written, and nothing
    stored before is lost."""


class StoreDamaged(StoreError):
    """Part of the store's file is damaged; the message names it and what to do."""


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# SQLite says "disk I/O error", not "database or disk is full", where it cannot grow its
# shared-memory file (-shm): on a disk with less room than this, that is a full disk
_FULL_BELOW_BYTES = 1 << 20


def store_error(error: sqlite3.Error | OSError, path: Path, doing: str) -> StoreError:
    """``error``, met while ``doing`` ("open", "read", "write to", "create") the store at
    ``path``, as one line saying what happened and what to do: DiskFull, StoreDamaged, or a
    plain StoreError (busy, no permission, anything else)."""
    code = getattr(error, "sqlite_errorcode", None)
    kind = None if code is None else code & 0xFF  # the primary code of an extended one
    detail = (error.strerror or str(error)) if isinstance(error, OSError) else str(error)
    check = f"g2048lab runs check --runs-dir {path.parent}"
    if kind == sqlite3.SQLITE_CORRUPT:
        return StoreDamaged(
            f"the run store {path} is damaged ({detail}): {check} says what is damaged "
            "and how to save the rest"
        )
    if kind == sqlite3.SQLITE_NOTADB:
        return StoreDamaged(
            f"{path} is not a usable run store ({detail}): its first page is damaged or it "
            f"is another kind of file; {check} says more"
        )
    full = kind == sqlite3.SQLITE_FULL or getattr(error, "errno", None) in NO_SPACE
    if full or (kind == sqlite3.SQLITE_IOERR and _disk_full(path.parent)):
        return DiskFull(
            f"cannot {doing} the run store {path}: the disk is full ({detail}); nothing "
            "stored is lost: free some space on that disk and try again"
        )
    if kind == sqlite3.SQLITE_IOERR:
        return StoreError(
            f"cannot {doing} the run store {path}: a disk I/O error "
            f"({error.sqlite_errorname}) on a disk with room; the store is likely intact: "
            f"check the disk (dmesg) and try again; if it persists, run {check}"
        )
    if kind in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreError(
            f"cannot {doing} the run store {path}: other processes held it for over "
            f"{BUSY_TIMEOUT_S:.0f} s ({detail}); try again"
        )
    if kind in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM):
        return StoreError(
            f"cannot {doing} the run store {path} ({detail}): check that you may read "
            f"and write {path.parent}"
        )
    return StoreError(f"cannot {doing} the run store {path}: {detail}")


def _disk_full(folder: Path) -> bool:
    """Whether the disk holding ``folder`` has (almost) no room or no inodes left."""
    try:
        disk = os.statvfs(folder)
    except OSError:
        return False
    no_inodes = disk.f_files > 0 and disk.f_favail == 0  # some file systems count none
    return disk.f_bavail * disk.f_frsize < _FULL_BELOW_BYTES or no_inodes


def store_errors_only(cls: type) -> type:
    """Make the constructor and every public method of ``cls``, its own or its bases',
    raise ``store_error`` where sqlite3 raised. Damage is met where a damaged page is read:
    in any query."""

    def translating(method: Callable) -> Callable:
        @functools.wraps(method)
        def translated(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except sqlite3.Error as error:
                raise store_error(error, self.path, "read") from None

        return translated

    names = {name for base in cls.__mro__ if base is not object for name in vars(base)}
    for name in sorted(names):
        member = inspect.getattr_static(cls, name)  # the one that cls's instances call
        if callable(member) and (name == "__init__" or not name.startswith("_")):
            setattr(cls, name, translating(member))
    return cls
