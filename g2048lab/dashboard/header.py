"""The dashboard's header line: run, status badge, game, device, size, progress and time."""

from __future__ import annotations

import html
import math

__all__ = ["format_duration", "header_html"]

BADGE_COLOURS = {
    "idle": "#8f7a66",
    "running": "#2e7d32",
    "pausing": "#ef6c00",
    "paused": "#ef6c00",
    "stopping": "#ef6c00",
    "finished": "#1565c0",
    "stopped": "#1565c0",
    "failed": "#c62828",
    "killed": "#c62828",
    "deleted": "#555",  # not statuses: a view's run has left the store (sources.Gone)
    "renamed": "#555",
}


def format_duration(seconds: float | None) -> str:
    """``format_duration(3723) -> "1:02:03"``, ``format_duration(59.6) -> "0:00:59"``;
    None -> "–"."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    total = int(max(0.0, seconds))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def header_html(
    name: str,
    status: str,
    *,
    error: str | None = None,
    game: str = "",
    device: str = "",
    params_m: float | None = None,
    env_steps: int | None = None,
    steps_per_s: float | None = None,
    elapsed_s: float | None = None,
    remaining_s: float | None = None,
    silent_s: float | None = None,
    gone: str = "",
) -> str:
    """The header as HTML; every text from the run is escaped except ``gone``, HTML that
    says the run has left the store (shown instead of its facts). ``game``: the name of
    the game the run plays ("2048-5x5"), the first fact."""
    colour = BADGE_COLOURS.get(status, "#555")
    badge = (
        f'<span class="g2048lab-status" data-status="{html.escape(status)}" '
        f'style="background:{colour};color:#fff;border-radius:10px;padding:2px 10px">'
        f"{html.escape(status)}</span>"
    )
    facts = [f'<span class="g2048lab-game">{html.escape(game)}</span>'] if game else []
    if device:
        facts.append(html.escape(device))
    if params_m is not None:
        facts.append(f"{params_m:.2f} M parameters")
    if env_steps is not None:
        facts.append(f"{env_steps:,} env steps")
    if steps_per_s is not None:
        facts.append(f"{steps_per_s:,.0f} steps/s")
    facts.append(f"elapsed {format_duration(elapsed_s)}")
    if remaining_s is not None:
        facts.append(f"remaining {format_duration(remaining_s)}")
    lines = [
        '<div style="display:flex;flex-wrap:wrap;align-items:center;gap:8px">'
        f'<b style="font-size:1.2em">{html.escape(name)}</b>{badge}</div>',
        f'<div class="g2048lab-gone" style="font-weight:700">{gone}</div>'
        if gone
        else f'<div class="g2048lab-facts">{" · ".join(facts)}</div>',
    ]
    if silent_s is not None and silent_s > 0:
        lines.append(
            f'<div class="g2048lab-silent" style="color:#ef6c00">no news from the training '
            f"process for {format_duration(silent_s)}: it may have been killed</div>"
        )
    if error:
        lines.append(
            '<pre class="g2048lab-error" style="color:#c62828;white-space:pre-wrap;margin:4px 0">'
            f"{html.escape(error)}</pre>"
        )
    return f'<div class="g2048lab-header">{"".join(lines)}</div>'
