"""Metric rows as a CSV file the browser downloads without a server round trip."""

from __future__ import annotations

import base64
import csv
import html
import io

__all__ = ["download_link", "metrics_csv"]


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


def download_link(text: str, filename: str, label: str) -> str:
    """An ``<a download>`` holding ``text`` as a base64 data URI: it works alike in JupyterLab
    and Voila, since the browser already has the bytes."""
    data = base64.b64encode(text.encode()).decode("ascii")
    return (
        f'<a download="{html.escape(filename)}" href="data:text/csv;base64,{data}" '
        'style="display:inline-block;padding:12px 8px">'
        f"{html.escape(label)}</a>"
    )
