"""Responsive layout: panels that wrap into one column under about 600 px, big tap targets.

Panels sit in a flex box that wraps (``flex: 1 1 380px; min-width: 0``): two side by
side need at least 760 px, so a phone gets one column and a laptop two or more. A small
``<style>`` (in an HTML widget, so it works in JupyterLab and Voilà alike) makes buttons
and sliders easy to tap and lets plots shrink with their panel.
"""

from __future__ import annotations

import ipywidgets as widgets

__all__ = [
    "PHONE_WIDTH",
    "ROOT_CLASS",
    "STYLE",
    "button",
    "panel",
    "panels",
    "style_widget",
    "toolbar",
]

ROOT_CLASS = "g2048lab-dashboard"
PHONE_WIDTH = 600  # CSS px: narrower pages are phones (compact labels, fewer chart points)
STYLE = f"""
<style>
.{ROOT_CLASS} {{ box-sizing: border-box; width: 100%; max-width: 100%; }}
.{ROOT_CLASS} .g2048lab-panel {{ min-width: 0; }}
.{ROOT_CLASS} .g2048lab-row {{ gap: 6px; }}
.{ROOT_CLASS} .g2048lab-panel > * {{ max-width: 100%; }}
.{ROOT_CLASS} .jupyter-button {{ min-height: 44px; }}
.{ROOT_CLASS} .widget-slider, .{ROOT_CLASS} .widget-dropdown {{ min-height: 44px; }}
.{ROOT_CLASS} .js-plotly-plot, .{ROOT_CLASS} .plot-container {{ width: 100% !important; }}
.{ROOT_CLASS} .g2048lab-facts, .{ROOT_CLASS} .g2048lab-notes {{ color: #555; }}
@media (max-width: {PHONE_WIDTH}px) {{
  .{ROOT_CLASS} .widget-label {{ min-width: 0; }}
}}
</style>
"""


def style_widget() -> widgets.HTML:
    return widgets.HTML(STYLE, layout=widgets.Layout(display="contents"))


def panel(title: str, *children: widgets.Widget) -> widgets.VBox:
    """A titled panel that takes at least 380 px when there is room, else the full width."""
    heading = widgets.HTML(f"<b>{title}</b>")
    box = widgets.VBox(
        [heading, *children],
        layout=widgets.Layout(flex="1 1 380px", min_width="0", padding="4px"),
    )
    box.add_class("g2048lab-panel")
    return box


def panels(*children: widgets.Widget) -> widgets.Box:
    """Panels side by side while they fit, wrapping into one column on a narrow screen."""
    return widgets.Box(
        list(children),
        layout=widgets.Layout(
            display="flex", flex_flow="row wrap", align_items="flex-start", width="100%"
        ),
    )


def toolbar(*children: widgets.Widget) -> widgets.Box:
    """Controls in a row that wraps on a narrow screen."""
    box = widgets.Box(
        list(children),
        layout=widgets.Layout(display="flex", flex_flow="row wrap", align_items="center"),
    )
    box.add_class("g2048lab-row")
    return box


def button(description: str, tooltip: str = "") -> widgets.Button:
    """A button easy to tap. No icon: icons come from Font Awesome, which Voila's page loads
    from a CDN that a phone offline (or a closed network) cannot reach."""
    return widgets.Button(
        description=description,
        tooltip=tooltip,
        layout=widgets.Layout(width="auto", min_width="88px", min_height="44px"),
    )
