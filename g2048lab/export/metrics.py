"""A run's metric rows as a CSV file, or as TensorBoard event files beside other runs'.

Metric rows are the store's (``RunStore.metrics``): one dict per iteration with
``iteration``, ``env_steps`` and namespaced scalars (``train/loss``,
``rollout/score_mean``, ``time/elapsed_s``, ...). TensorBoard keeps the namespaces as
tags, so its charts group the way the dashboard's do.
"""

from __future__ import annotations

import csv
import io
import json
import math
import secrets
import shutil
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

from ..store import RunInfo
from .files import check_folder_target, what_is_at

__all__ = ["Scalar", "hparams", "metrics_csv", "tensorboard_scalars", "write_tensorboard"]

STEP_KEY = "env_steps"  # TensorBoard's x axis; rows without it use their iteration
ELAPSED_KEY = "time/elapsed_s"  # seconds since the run started
TENSORBOARD_MISSING = (
    'TensorBoard export needs the tensorboard package: pip install "g2048lab[tensorboard]"'
)


def metrics_csv(rows: list[dict]) -> str:
    """CSV text of metric rows; the columns are every key, in order of first appearance.

    ``metrics_csv([{"iteration": 1, "loss": 0.5}]) -> "iteration,loss\\r\\n1,0.5\\r\\n"``
    """
    columns = list(dict.fromkeys(key for row in rows for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns)
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


@dataclass(frozen=True)
class Scalar:
    """One point of one TensorBoard chart."""

    tag: str  # the metric's key, namespace kept: "train/loss"
    value: float
    step: int  # env steps when the row was recorded
    walltime: float  # Unix s


def tensorboard_scalars(rows: list[dict], created_at: float) -> list[Scalar]:
    """Every numeric value of every row as a ``Scalar``; None, text and booleans are left out,
    and so is ``env_steps`` (it is the step).

    The walltime is ``created_at`` (the run's start, Unix s) plus the row's
    ``time/elapsed_s``, or ``created_at`` for a row without one.

    ``[{"iteration": 1, "env_steps": 64, "train/loss": 0.5, "time/elapsed_s": 2.0}], 100.0
    -> iteration 1, train/loss 0.5, time/elapsed_s 2.0, each at step 64 and walltime 102.0``
    """
    scalars = []
    for row in rows:
        step = int(row.get(STEP_KEY, row["iteration"]))
        elapsed = row.get(ELAPSED_KEY)
        walltime = created_at + (elapsed if _is_number(elapsed) else 0.0)
        scalars.extend(
            Scalar(tag, float(value), step, walltime)
            for tag, value in row.items()
            if tag != STEP_KEY and _is_number(value)
        )
    return scalars


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def write_tensorboard(logdir: str | Path, run: RunInfo, rows: list[dict]) -> Path:
    """Write ``rows`` (the run's metric rows) as TensorBoard event files in
    ``logdir/<run name>``, so runs exported into one ``logdir`` show side by side
    (``tensorboard --logdir LOGDIR``); returns that folder.

    Besides the scalars, the run's config is the text "config" (a JSON code block), and its
    flat settings are hparams with the run's best score and max tile as their metrics (the
    HParams tab compares the runs of a ``logdir``). The folder is written beside its place
    and renamed in; an earlier export there (a folder of event files only) is replaced,
    anything else (other files, a link, a special file) is left alone with a ValueError.
    ``logdir`` is made if its own folder exists; a special file there is refused.

    Needs the ``tensorboard`` package (``torch.utils.tensorboard`` writes the events); without
    it, a ValueError says how to install it.
    """
    summary_writer = _summary_writer()
    logdir = check_folder_target(logdir, "--tensorboard")
    target = logdir / run.name
    _check_replaceable(target)
    logdir.mkdir(exist_ok=True)
    staging = logdir / f".{run.name}.{secrets.token_hex(4)}.tmp"
    staging.mkdir()  # with the usual permissions, as the renamed folder keeps them
    try:
        writer = summary_writer(str(staging))
        for scalar in tensorboard_scalars(rows, run.created_at):
            writer.add_scalar(scalar.tag, scalar.value, scalar.step, walltime=scalar.walltime)
        config = json.dumps(run.config, indent=2, sort_keys=True)
        writer.add_text("config", f"```json\n{config}\n```", walltime=run.created_at)
        writer.add_hparams(
            hparams(run.config),
            {"hparam/best_score": run.best_score, "hparam/max_tile": run.max_tile},
            run_name=".",  # beside the scalars, not in a folder of its own
        )
        writer.close()
        _replace_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def hparams(config: dict, prefix: str = "") -> dict[str, float | str | bool]:
    """A run config flattened to the values TensorBoard's hparams take; other values as text.

    ``{"seed": 0, "ppo": {"gamma": 0.99, "value_clip": None}}
    -> {"seed": 0, "ppo.gamma": 0.99, "ppo.value_clip": "None"}``
    """
    flat: dict[str, float | str | bool] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(hparams(value, f"{name}."))
        elif isinstance(value, (bool, str)) or (_is_number(value) and math.isfinite(value)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def _summary_writer():
    try:
        # checked first: torch caches its own import of it, so a later loss would go unseen
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError(TENSORBOARD_MISSING) from None
    return SummaryWriter


def _check_replaceable(folder: Path) -> None:
    """ValueError unless ``folder`` is absent or a folder (not a link to one) that holds only
    TensorBoard event files."""
    found = what_is_at(folder)
    if found is None:
        return
    if found != "a folder":
        raise ValueError(
            f"{folder} is {found}: move it away or choose another --tensorboard folder"
        )
    for path in folder.iterdir():
        if not (path.is_file() and path.name.startswith("events.out.tfevents.")):
            raise ValueError(
                f"{folder} holds more than an earlier export's event files ({path.name}): "
                "move it away or choose another --tensorboard folder"
            )


def _replace_folder(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``, replacing an earlier export there."""
    _check_replaceable(target)  # again: writing took a while, and a rename replaces anything
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        new.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        new.rename(target)
