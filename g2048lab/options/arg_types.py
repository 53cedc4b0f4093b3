"""Argument types that refuse bad values in words (argparse prints them, exit 2)."""

from __future__ import annotations

import argparse
import math

from ..settings import MAX_SEED

DEFAULT_RUNS_DIR = "checkpoints"


def positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def seed_number(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(
            f"a seed must be a non-negative integer (0, 1, 2, ...) up to 2**63 - 1, got {value}"
        )
    return value


def run_name(text: str) -> str:
    from ..store import check_run_name  # light: no torch

    try:
        return check_run_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def game_name(text: str) -> str:
    """A game ``games.get`` knows (``2048-5x5``); an unknown one lists those there are."""
    from .. import games

    try:
        return games.get(text).name
    except games.UnknownGame as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def port_number(text: str) -> int:
    value = _integer(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 1 to 65535, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (minutes, seconds): "abc", "0", "nan" and "inf" are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value
