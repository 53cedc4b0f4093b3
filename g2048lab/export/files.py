"""Writing an exported file whole or not at all: a temporary file beside it, then a rename."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["check_folder", "write_atomic"]


def check_folder(path: str | Path) -> Path:
    """``path`` if its folder exists; else ValueError saying to create it (one line)."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(
            f"cannot write {path}: the folder {folder} does not exist; create it first "
            "or choose another path"
        )
    return path


def write_atomic(path: str | Path, data: bytes | str) -> int:
    """Write ``data`` (str as UTF-8) to ``path``; returns its size in bytes.

    The bytes go to a temporary file in the same folder, fsynced and renamed over ``path``,
    so a crash leaves the old file or the new one, never half of one. The file gets the
    permissions ``open(path, "w")`` would give it (0666 less the umask).
    """
    path = check_folder(path)
    payload = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(payload)
