"""Command-line flags generated from config dataclasses, as CleanRL does with tyro.

``add_config_flags(parser, "ppo", PPOConfig)`` adds ``--ppo.learning-rate`` and one flag
per field, its help the field's comment and default; ``overrides(args, "ppo", PPOConfig)``
gives the fields that were set, parsed to their types and checked against the field's
range (settings.py), so that ``--ppo.clip-coef -1`` is the ValueError "--ppo.clip-coef must
be > 0, got -1" (one line, exit 2, from cli.main) before anything is built. A value of the
wrong type is one line from argparse; what only the whole dataclass can judge (d_model
divisible by n_heads) is one line from its ``__post_init__``.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import typing
from typing import Any

from ..settings import problem, type_options

__all__ = ["add_config_flags", "overrides"]

_COMMENT = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+)$")


def field_docs(cls: type) -> dict[str, str]:
    """{field: its trailing comment} from the class's source (empty where there is none)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    return {m.group(1): m.group(2).strip() for m in map(_COMMENT.match, source.splitlines()) if m}


def add_config_flags(
    parser: argparse.ArgumentParser, prefix: str, cls: type, skip: tuple[str, ...] = ()
) -> None:
    """One ``--PREFIX.FIELD-NAME VALUE`` flag per field of the dataclass ``cls``, but for
    those in ``skip`` and those set from elsewhere (``setting(..., flag=False)``)."""
    group = parser.add_argument_group(
        f"{prefix} settings ({cls.__name__}; a flag left out keeps the preset's value or the "
        "default shown)"
    )
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip or not field.metadata.get("flag", True):
            continue
        kind = hints[field.name]
        default = field.default if field.default is not dataclasses.MISSING else None
        doc = docs.get(field.name, "")
        group.add_argument(
            f"--{prefix}.{field.name.replace('_', '-')}",
            dest=f"{prefix}.{field.name}",
            type=_parser_for(kind),
            default=None,
            metavar=_type_name(kind).upper().replace(" ", ""),
            help=f"{doc}{'; ' if doc else ''}default {default}",
        )


def overrides(args: argparse.Namespace, prefix: str, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` set on the command line under ``--PREFIX.``; ValueError naming
    the flag for a value outside the field's range."""
    found = {}
    for field in dataclasses.fields(cls):
        value = getattr(args, f"{prefix}.{field.name}", None)
        if value is None:
            continue
        value = None if value is _NONE else value
        wrong = problem(cls, field.name, value)
        if wrong:
            raise ValueError(f"--{prefix}.{field.name.replace('_', '-')} {wrong}")
        found[field.name] = value
    return found


_NONE = object()  # "none" given for an optional field


def _type_name(kind: Any) -> str:
    return "|".join("none" if t is type(None) else t.__name__ for t in type_options(kind))


def _parser_for(kind: Any):
    """A function of the flag's text -> value, raising ArgumentTypeError in words."""
    options = type_options(kind)

    def parse(text: str):
        if type(None) in options and text.lower() == "none":
            return _NONE
        for option in options:
            if option is bool:
                if text.lower() in ("true", "yes", "1", "on"):
                    return True
                if text.lower() in ("false", "no", "0", "off"):
                    return False
            elif option in (int, float, str):
                try:
                    return option(text)
                except ValueError:
                    continue
        raise argparse.ArgumentTypeError(f"must be {_type_name(kind)}, got {text!r}")

    return parse
