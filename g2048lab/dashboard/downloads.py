"""Files the browser downloads without a server round trip: the metric rows as CSV, a game
as a page that plays it back (``metrics_csv`` and ``game_html`` live in ``g2048lab.export``,
beside the command-line exports)."""

from __future__ import annotations

import base64
import html

from ..export import game_html, game_title
from ..export.metrics import metrics_csv
from ..recording import GameRecord

__all__ = ["download_link", "game_link", "metrics_csv"]


def download_link(text: str, filename: str, label: str, mime: str = "text/csv") -> str:
    """An ``<a download>`` holding ``text`` as a base64 data URI: it works alike in JupyterLab
    and Voila, since the browser already has the bytes."""
    data = base64.b64encode(text.encode()).decode("ascii")
    return (
        f'<a download="{html.escape(filename)}" href="data:{mime};base64,{data}" '
        'style="display:inline-block;padding:12px 8px">'
        f"{html.escape(label)}</a>"
    )


def game_link(record: GameRecord, run: str, label: str = "") -> str:
    """A download link of ``record`` as one self-contained HTML page that plays it back."""
    text = game_html(record, game_title(run, record))
    filename = f"{run}-game-{record.score}.html"
    label = label or f"⬇ {filename} ({len(text) / 1000:,.0f} kB)"
    return download_link(text, filename, label, mime="text/html")
