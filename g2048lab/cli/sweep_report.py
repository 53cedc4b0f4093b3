"""``g2048lab sweep report``: a sweep's groups with intervals, in the terminal (80 columns),
as JSON, or as one self-contained HTML page with its plots."""

from __future__ import annotations

import argparse
import json
import sys

from ..store import RunStore
from ..sweeps.report import decimals, describe, sweep_report

__all__ = ["cmd_report", "print_report"]


def cmd_report(args: argparse.Namespace) -> int:
    """``g2048lab sweep report NAME [--metric M] [--json] [--html FILE]``."""
    from ..export.files import check_target, write_atomic

    if args.html is not None:
        check_target(args.html)  # before the work; write_atomic checks again
    runs = RunStore(args.runs_dir, create=False)
    report = sweep_report(runs, args.name, args.metric, pairs="all" if args.json else "auto")
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    if args.html is not None:
        from ..dashboard.sweep_figures import report_figures, report_page

        page = report_page(report, report_figures(report, runs, args.name))
        size = write_atomic(args.html, page)
        said = f"wrote {args.html}: the report with its two plots, {size / 1e6:.1f} MB"
        print(said, file=sys.stderr if args.json else sys.stdout)
    return 0


def print_report(report: dict) -> None:
    """The groups table, then P(A > B) for the pairs, in the terminal's width (80 columns
    fit; numbers are never cut, settings fold)."""
    from rich.console import Console

    console = Console()
    for line in describe(report):
        console.print(line, highlight=False)
    console.print(groups_table(report))
    if report["pairs"]:
        console.print(pairs_table(report))
    if report["paired"] == "best":
        console.print(
            f"{len(report['groups'])} groups: P(A > B) of the best group (highest mean) "
            "against each other; --json gives every pair",
            highlight=False,
        )


def groups_table(report: dict):
    from rich.table import Table

    digits = decimals([v for g in report["groups"] for v in g["values"]])
    rows = []
    for number, group in enumerate(report["groups"]):
        setting = "\n".join(f"{k}={v}" for k, v in group["group"].items()) or "(seeds only)"
        others = {s: n for s, n in group["states"].items() if s != "finished"}
        if others:
            setting += "\n" + ", ".join(f"{n} {s}" for s, n in others.items())
        cells = [
            _estimate(group[s], group[f"{s}_ci"], group["n"], digits)
            for s in ("mean", "iqm", "median")
        ]
        rows.append([str(number), setting, str(group["n"]), *cells])
    title = f"final {report['metric']} by group ({report['confidence']:.0%} intervals)"
    table = Table(title=title)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("setting", overflow="fold")
    headers = ("n", "mean", "IQM", "median")
    for i, header in enumerate(headers, 2):
        widest = max((len(line) for row in rows for line in row[i].split("\n")), default=0)
        table.add_column(header, justify="right", width=max(widest, len(header)), no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def pairs_table(report: dict):
    from rich.table import Table

    title = f"P(A > B) with its {report['confidence']:.0%} interval"
    table = Table(title=title)
    for header in ("A", "B", "P(A > B)", "interval"):
        table.add_column(header, justify="right", no_wrap=True)
    for pair in report["pairs"]:
        ci = pair["ci"]
        interval = f"{ci[0]:.2f}–{ci[1]:.2f}" if ci else "- (a group of one run)"
        table.add_row(str(pair["a"]), str(pair["b"]), f"{pair['p_improvement']:.2f}", interval)
    return table


def _estimate(value: float | None, ci: list | None, n: int, digits: int) -> str:
    """``1,234`` over ``1,100–1,300``; ``(one run)`` under a lone run's value; ``-`` for none."""
    if value is None:
        return "-"
    text = f"{value:,.{digits}f}"
    if ci is None:
        return f"{text}\n(one run)" if n == 1 else text
    return f"{text}\n{ci[0]:,.{digits}f}–{ci[1]:,.{digits}f}"
