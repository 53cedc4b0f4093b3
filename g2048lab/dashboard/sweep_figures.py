"""A sweep report drawn: a parallel-coordinates plot (settings -> final metric, a line per
finished run) and a performance profile (Agarwal et al. 2021: per group, the share of runs
whose final metric exceeds tau, over tau), as Plotly figures for a notebook
(the last expression of a cell) and as one self-contained HTML page with the report's tables.

Pure functions of the report (``report.sweep_report``) and the sweep's spec; plotly is
imported when a figure is drawn.
"""

from __future__ import annotations

import html
import math

from ..store import RunStore
from ..sweeps.report import decimals, describe
from ..sweeps.sweep_store import SweepStore

__all__ = ["parallel_coordinates", "performance_profile", "report_figures", "report_page"]

PROFILE_POINTS = 200  # tau values between the lowest and highest final metric


def report_figures(report: dict, runs: RunStore, name: str):
    """(parallel-coordinates figure, performance-profile figure) of sweep ``name``'s
    ``report``; each a ``plotly.graph_objects.Figure``."""
    spec = SweepStore(runs).get_sweep(name).spec
    return parallel_coordinates(report, spec), performance_profile(report)


def parallel_coordinates(report: dict, spec):
    """One axis per swept flag, then the metric; one line per finished run, coloured by its
    final metric. A grid flag's values are ticks in their order (numeric order when they
    are numbers); a drawn (--random) flag is a number axis, log10 of it for a log range.
    A seeds-only sweep has one axis of groups."""
    import plotly.graph_objects as go

    groups = report["groups"]
    per_run = [(g["group"], v) for g in groups for v in g["values"]]
    ranges = {r.flag: r for r in spec.random}
    dimensions = []
    first = groups[0]["group"] if groups else {}
    for flag in dict.fromkeys([*first, *spec.flags]):  # as the user gave them (specs sort)
        texts = [setting.get(flag, "") for setting, _ in per_run]
        if flag in ranges:
            log = ranges[flag].log
            numbers = [_number(t) for t in texts]
            values = [math.log10(x) if log and x > 0 else x for x in numbers]
            dimensions.append({"label": f"log10 {flag}" if log else flag, "values": values})
        else:
            ticks = _tick_order(spec.grid.get(flag, []), texts)
            dimensions.append(_categorical(flag, ticks, [ticks.index(t) for t in texts]))
    if not dimensions:  # seeds only: the groups are the only setting
        numbers = [i for i, g in enumerate(groups) for _ in g["values"]]
        dimensions.append(_categorical("group", [str(i) for i in range(len(groups))], numbers))
    finals = [v for _, v in per_run]
    dimensions.append({"label": report["metric"], "values": finals})
    line = {"color": finals, "colorscale": "Viridis", "showscale": bool(finals)}
    figure = go.Figure(go.Parcoords(line=line, dimensions=dimensions))
    figure.update_layout(
        title=f"Settings and final {report['metric']} (one line per finished run)",
        template="plotly_white",
        margin={"l": 80, "r": 80, "t": 110, "b": 40},  # axis labels sit above the plot
    )
    return figure


def performance_profile(report: dict):
    """Per group, the share of its finished runs whose final metric is above tau, a step
    line over tau (score distribution, Agarwal et al. 2021): a curve above another's
    everywhere is a group that does better at every level."""
    import numpy as np
    import plotly.graph_objects as go

    groups = report["groups"]
    finals = [v for g in groups for v in g["values"]]
    figure = go.Figure()
    if finals:
        low, high = min(finals), max(finals)
        pad = 0.05 * (high - low) or 0.05 * abs(high) or 1.0
        taus = np.unique(np.concatenate([np.linspace(low - pad, high + pad, PROFILE_POINTS),
                                         finals]))  # fmt: skip  # every step drawn where it is
        for number, group in enumerate(groups):
            if not group["values"]:
                continue
            values = np.asarray(group["values"])  # (n,)
            share = (values[None, :] > taus[:, None]).mean(axis=1)  # (taus,)
            figure.add_trace(
                go.Scatter(
                    x=taus,
                    y=share,
                    mode="lines",
                    line_shape="hv",
                    name=f"{number}: {setting_text(group['group'])} (n={group['n']})",
                )
            )
    figure.update_layout(
        title=f"Performance profile: share of runs with final {report['metric']} above tau",
        xaxis_title=f"tau ({report['metric']})",
        yaxis={"title": "share of runs above tau", "range": [-0.02, 1.02]},
        template="plotly_white",
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0},
    )
    return figure


def report_page(report: dict, figures) -> str:
    """One self-contained HTML page (plotly.js inline, about 4.5 MB): what the numbers are,
    the groups and pairs tables, then ``figures``."""

    digits = decimals([v for g in report["groups"] for v in g["values"]])
    rows = []
    for number, group in enumerate(report["groups"]):
        cells = [
            str(number),
            html.escape(setting_text(group["group"])),
            str(group["n"]),
            *(_cell(group[s], group[f"{s}_ci"], digits) for s in ("mean", "iqm", "median")),
            html.escape(", ".join(f"{n} {s}" for s, n in group["states"].items())),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    headers = ("#", "setting", "n", "mean", "IQM", "median", "trials")
    groups = _table(f"Final {report['metric']} by group", headers, rows)
    pair_rows = [
        f"<tr><td>{p['a']}</td><td>{p['b']}</td><td>{p['p_improvement']:.2f}</td>"
        f"<td>{_interval(p['ci'], 2)}</td></tr>"
        for p in report["pairs"]
    ]
    which = "the best group against each other" if report["paired"] == "best" else "every pair"
    pairs = _table(f"P(A > B), {which}", ("A", "B", "P(A > B)", "interval"), pair_rows)
    parts = [fig.to_html(full_html=False, include_plotlyjs=i == 0) for i, fig in enumerate(figures)]
    title = html.escape(f"Sweep {report['sweep']}: {report['metric']}")
    about = "".join(f"<p>{html.escape(line)}</p>" for line in describe(report))
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1>{about}{groups}{pairs}"
        f"{''.join(parts)}</body></html>\n"
    )


def setting_text(setting: dict) -> str:
    """``{"a": "1", "b": "x"} -> "a=1, b=x"``; ``{}`` (seeds only) -> ``"(seeds only)"``."""
    return ", ".join(f"{k}={v}" for k, v in setting.items()) or "(seeds only)"


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;max-width:70em}"
    "table{border-collapse:collapse;margin:1em 0}caption{text-align:left;font-weight:bold}"
    "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}"
    "td:nth-child(2),th:nth-child(2){text-align:left}small{color:#666}"
)


def _table(caption: str, headers, rows: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    return f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{''.join(rows)}</table>"


def _cell(value: float | None, ci: list | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}<br><small>{_interval(ci, digits)}</small>"


def _interval(ci: list | None, digits: int) -> str:
    return f"{ci[0]:,.{digits}f}–{ci[1]:,.{digits}f}" if ci else "no interval (one run)"


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _tick_order(listed: list[str], seen: list[str]) -> list[str]:
    """A grid flag's values as axis ticks: numeric order if all are numbers, else as
    listed; any value seen but not listed goes last."""
    ticks = list(dict.fromkeys([*listed, *seen]))
    if ticks and all(not math.isnan(_number(t)) for t in ticks):
        ticks.sort(key=_number)
    return ticks


def _categorical(label: str, ticks: list[str], indices: list[int]) -> dict:
    return {
        "label": label,
        "values": indices,
        "tickvals": list(range(len(ticks))),
        "ticktext": ticks,
        "range": [0, max(len(ticks) - 1, 1)],
    }
