"""Writing an exported file whole or not at all, and only ever a regular file.

An export goes to a temporary file beside its target, then is renamed over it: a crash
leaves the old file or the new one, never half of one. A rename replaces whatever is at the
target, so the target is checked first, and again just before the rename: only nothing or
a regular file may be there. A special file (``/dev/full``, ``/dev/null``, a named pipe, a
socket, a device) or a folder is refused with one line and left as it was.

A symbolic link at the target is refused too, not written through: "replace the link" and
"write where it points" are both surprises for someone, and following links is how a
program writing as root is tricked into overwriting a file it did not mean to (``/dev/stdout``
is a link as well). The message names the link's target, so the user can give that path.
Links in the folders above the target are followed as usual.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

__all__ = ["check_folder_target", "check_target", "what_is_at", "write_atomic"]

KINDS = {  # stat's file types, in words
    stat.S_ISDIR: "a folder",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISFIFO: "a named pipe (FIFO)",
    stat.S_ISSOCK: "a socket",
}


def what_is_at(path: Path) -> str | None:
    """None if nothing is at ``path``, ``"a regular file"``, or what else is there in words:
    ``"a symbolic link to /dev/null"``, ``"a character device"``, ``"a folder"``..."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISLNK(mode):
        return f"a symbolic link to {os.readlink(path)}"
    return next((kind for is_kind, kind in KINDS.items() if is_kind(mode)), "a special file")


def check_target(path: str | Path) -> Path:
    """``path`` if an export may be written there: its folder exists, and at ``path`` is
    nothing or a regular file; else ValueError saying what is there and what to do (one line).
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(
            f"cannot write {path}: the folder {folder} does not exist; create it first "
            "or choose another path"
        )
    found = what_is_at(path)
    if found not in (None, "a regular file"):
        raise ValueError(
            f"cannot write {path}: it is {found}, and exports replace only regular files; "
            "choose a file's path"
        )
    return path


def check_folder_target(path: str | Path, flag: str) -> Path:
    """``path`` if exported files may go into it: nothing there (it will be made, so its
    folder must exist) or a folder (a link to one is followed); else ValueError naming
    ``flag`` (one line)."""
    path = Path(path)
    if path.is_dir():
        return path
    found = what_is_at(path)
    if found is None and not path.parent.is_dir():
        raise ValueError(
            f"cannot write {path}: the folder {path.parent} does not exist; create it first "
            f"or choose another {flag} folder"
        )
    if found is not None:
        raise ValueError(f"cannot write into {path}: it is {found}; choose another {flag} folder")
    return path


def write_atomic(path: str | Path, data: bytes | str) -> int:
    """Write ``data`` (str as UTF-8) to ``path``; returns its size in bytes.

    The bytes go to a temporary file in the same folder, fsynced and renamed over ``path``
    (which must be absent or a regular file, see the module docstring), so a crash leaves
    the old file or the new one, never half of one. The file gets the permissions
    ``open(path, "w")`` would give it (0666 less the umask).
    """
    path = check_target(path)
    payload = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        check_target(path)  # again: writing took a while, and a rename replaces anything
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(payload)
