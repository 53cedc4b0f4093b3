"""The runs list as data and HTML, without a widget: rows, filters, sorting, the table and
the table of config fields that differ between runs.

``run_rows(store)`` reads every run and its last metric row in two queries; the rest are
pure functions of those rows, so the notebook's ``RunsBrowser``, the phone app's home screen
and ``bench/runs_view.py`` share them.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from .. import games
from ..store import RunInfo, RunStore
from .header import BADGE_COLOURS, format_duration

__all__ = [
    "SORTS",
    "RunRow",
    "config_diff_html",
    "filter_rows",
    "run_row",
    "run_rows",
    "runs_table_html",
    "sort_rows",
]

# sort choice -> (label, key of a RunRow, largest first); missing values sort last
SORTS = {
    "created": ("newest first", "created_at", True),
    "updated": ("last written", "updated_at", True),
    "score": ("recent mean score", "recent_score", True),
    "best": ("best score", "best_score", True),
    "steps": ("env steps", "env_steps", True),
    "name": ("name", "name", False),
}


@dataclass(frozen=True)
class RunRow:
    """One run as the list shows it."""

    name: str
    learner: str
    preset: str | None
    status: str
    env_steps: int
    wall_s: float | None  # time spent training, pauses excluded
    best_score: int
    recent_score: float | None  # mean of the recent games at the last metric row
    best_tile: int
    tags: tuple[str, ...]
    note: str
    created_at: float  # Unix s
    updated_at: float  # Unix s
    game: str = games.DEFAULT  # the game's name ("2048-5x5"); a run from before games: 4x4


def run_row(run: RunInfo, last_metrics: dict | None) -> RunRow:
    """The row of ``run``, whose last metric row is ``last_metrics`` (None before any)."""
    last = last_metrics or {}
    return RunRow(
        name=run.name,
        learner=run.learner,
        preset=run.config.get("preset"),
        status=run.status,
        env_steps=run.env_steps,
        wall_s=last.get("time/elapsed_s"),
        best_score=run.best_score,
        recent_score=last.get("rollout/score_mean"),
        best_tile=run.max_tile,
        tags=tuple(run.tags),
        note=run.note,
        created_at=run.created_at,
        updated_at=run.updated_at,
        game=run.config.get("game", games.DEFAULT),
    )


def run_rows(store: RunStore) -> list[RunRow]:
    """Every run in ``store``, newest first."""
    last = store.last_metrics()
    return [run_row(run, last.get(run.name)) for run in store.list_runs()]


def filter_rows(
    rows: Iterable[RunRow],
    status: str | None = None,
    learner: str | None = None,
    tag: str | None = None,
) -> list[RunRow]:
    """The rows that match every filter given (None: any)."""
    return [
        row
        for row in rows
        if (status is None or row.status == status)
        and (learner is None or row.learner == learner)
        and (tag is None or tag in row.tags)
    ]


def sort_rows(rows: Iterable[RunRow], sort: str = "created") -> list[RunRow]:
    """Rows in the order of ``sort`` (a key of SORTS); runs without the value go last."""
    _, field, descending = SORTS[sort]
    present = [row for row in rows if getattr(row, field) is not None]
    missing = [row for row in rows if getattr(row, field) is None]
    return sorted(present, key=lambda row: getattr(row, field), reverse=descending) + missing


_COLUMNS = (
    "run",
    "game",
    "learner",
    "status",
    "env steps",
    "wall time",
    "best score",
    "recent mean",
    "best tile",
    "tags",
    "created",
)


def runs_table_html(
    rows: Sequence[RunRow],
    selected: Iterable[str] = (),
    link: str | None = None,
    now: float | None = None,
) -> str:
    """The runs as an HTML table; on a narrow screen each run becomes a card (CSS only).

    ``link``: a URL template with ``{name}`` (say ``"?run={name}"``) that each run's name
    links to; None: no links. ``selected`` runs are marked."""
    now = time.time() if now is None else now
    chosen = set(selected)
    head = "".join(f"<th>{column}</th>" for column in _COLUMNS)
    body = []
    for row in rows:
        name = html.escape(row.name)
        if link is not None:
            href = html.escape(link.format(name=quote(row.name)))
            name = f'<a class="g2048lab-run-link" href="{href}">{name}</a>'
        colour = BADGE_COLOURS.get(row.status, "#555")
        status = (
            f'<span class="g2048lab-status" data-status="{html.escape(row.status)}" '
            f'style="background:{colour}">{html.escape(row.status)}</span>'
        )
        learner = html.escape(row.learner + (f" · {row.preset}" if row.preset else ""))
        tags = " ".join(f'<span class="g2048lab-tag">{html.escape(t)}</span>' for t in row.tags)
        cells = (
            name,
            html.escape(row.game),
            learner,
            status,
            f"{row.env_steps:,}",
            format_duration(row.wall_s),
            f"{row.best_score:,}",
            "–" if row.recent_score is None else f"{row.recent_score:,.0f}",
            f"{row.best_tile:,}",
            tags,
            _ago(now - row.created_at),
        )
        tds = "".join(
            f'<td data-label="{column}">{cell}</td>' for column, cell in zip(_COLUMNS, cells)
        )
        mark = ' class="g2048lab-selected"' if row.name in chosen else ""
        note = f' title="{html.escape(row.note)}"' if row.note else ""
        body.append(f'<tr data-run="{html.escape(row.name)}"{mark}{note}>{tds}</tr>')
    if not body:
        return '<div class="g2048lab-runs-empty">No runs match.</div>'
    return (
        f'{TABLE_STYLE}<table class="g2048lab-runs"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def config_diff_html(diff: dict[str, dict[str, object]], names: Sequence[str]) -> str:
    """The config fields that differ between runs: one row per field, one column per run."""
    if len(names) < 2:
        return ""
    if not diff:
        return '<div class="g2048lab-diff">The selected runs have the same config.</div>'
    head = "".join(f"<th>{html.escape(name)}</th>" for name in names)
    rows = "".join(
        f"<tr><td>{html.escape(field)}</td>"
        + "".join(f"<td>{html.escape(_value(values.get(name)))}</td>" for name in names)
        + "</tr>"
        for field, values in diff.items()
    )
    return (
        f'<div class="g2048lab-diff"><table class="g2048lab-runs g2048lab-config-diff">'
        f"<thead><tr><th>config field</th>{head}</tr></thead><tbody>{rows}</tbody></table>"
        "</div>"
    )


def _value(value: object) -> str:
    return "–" if value is None else str(value)


def _ago(seconds: float) -> str:
    """``_ago(30) -> "under 1 min ago"``, ``_ago(100) -> "2 min ago"``: no seconds, so the
    table of an idle store changes at most once a minute (each change is sent to the page)."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "under 1 min ago"


# A table on a laptop; on a phone (under 600 px) every run a card of label: value lines,
# so nothing scrolls sideways.
TABLE_STYLE = """<style>
.g2048lab-runs { border-collapse: collapse; width: 100%; font-size: 0.95em; }
.g2048lab-runs th, .g2048lab-runs td { padding: 6px 8px; border-bottom: 1px solid #e5e0d8;
  text-align: left; vertical-align: top; overflow-wrap: anywhere; }
.g2048lab-runs tr.g2048lab-selected { background: #fdf3e3; }
.g2048lab-runs .g2048lab-status { color: #fff; border-radius: 10px; padding: 1px 8px; }
.g2048lab-runs .g2048lab-tag { background: #eee4da; border-radius: 8px; padding: 1px 6px; }
.g2048lab-runs a.g2048lab-run-link { font-weight: 700; display: inline-block;
  min-height: 32px; padding: 6px 0; }
.g2048lab-diff { overflow-x: auto; max-width: 100%; }
@media (max-width: 600px) {
  .g2048lab-runs:not(.g2048lab-config-diff) thead { display: none; }
  .g2048lab-runs:not(.g2048lab-config-diff) tr { display: block; padding: 6px 0;
    border-bottom: 1px solid #d8d0c4; }
  .g2048lab-runs:not(.g2048lab-config-diff) td { display: inline-block; border: none;
    padding: 2px 8px 2px 0; }
  .g2048lab-runs:not(.g2048lab-config-diff) td[data-label]::before {
    content: attr(data-label) ": "; color: #8f7a66; }
  .g2048lab-runs:not(.g2048lab-config-diff) td[data-label="run"] { display: block; }
  .g2048lab-runs:not(.g2048lab-config-diff) td[data-label="run"]::before { content: ""; }
}
</style>"""
