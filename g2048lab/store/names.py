"""What a run may be called and labelled with, and the check of each word a caller gives:
run names (also the names of their folders), tags, notes, and a choice among fixed words
(a status, a control action, a kind of game).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..status import Status
from .errors import StoreError

STATUSES = tuple(Status)
NOTE_LIMIT = 2000  # characters
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_TAG = re.compile(r"[A-Za-z0-9_.:-]{1,32}")


def check_run_name(name: str) -> str:
    """``name`` if it can name a run (and a folder); else StoreError saying what can."""
    if not _NAME.fullmatch(name):
        what = "an empty run name" if not name else f"run name {name!r}"
        raise StoreError(
            f"{what} is not allowed: use up to 64 letters, digits, - and _, "
            "starting with a letter or digit"
        )
    return name


def check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """``tags`` deduplicated and sorted, if each can be a tag; else StoreError saying what can.

    ``["b", "a", "b"] -> ("a", "b")``
    """
    if isinstance(tags, str):
        raise StoreError(f"tags are a list of tags, not the one string {tags!r}")
    tags = list(tags)
    for tag in tags:
        if not isinstance(tag, str) or not _TAG.fullmatch(tag):
            raise StoreError(
                f"tag {tag!r} is not allowed: use 1 to 32 letters, digits, -, _, . and :"
            )
    return tuple(sorted(set(tags)))


def check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise StoreError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")
