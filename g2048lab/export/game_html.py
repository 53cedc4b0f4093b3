"""A recorded game as one self-contained HTML page that plays it back.

The page needs nothing from the network: inline CSS, a small inline script, and the game
as JSON in a ``<script type="application/json">`` element (``<``, ``>`` and ``&``
escaped, so no value can close it). It shows the board in the original game's colours,
the move probabilities in ``Action`` order with the move taken highlighted, the value
estimate, the score so far and "move k of L", with play/pause, step back/forward, a
slider and a speed choice (keys: ← →, space). It fits a 390 px phone screen. The board
has the recorded boards' shape (R, C): R rows of C tiles, the font scaled to the tiles.
"""

from __future__ import annotations

import html
import json
import math

from ..engine.rules import MAX_EXPONENT, Action
from ..palette import ARROWS, tile_colors
from ..recording import GameRecord
from .games import has_policy, score_before

__all__ = ["game_data", "game_html"]

DIGITS = "0123456789abcdefghijklmnopqrstuv"  # one base-32 character per exponent 0..31
SPEEDS = (2, 5, 10, 20, 50)  # moves per second to choose from
DEFAULT_SPEED = 5


def game_data(record: GameRecord) -> dict:
    """What the page's script reads, as plain JSON-ready values.

    boards: (L + 1) strings of R * C base-32 digits, the exponents row by row
    (``[[1, 0, 0, 11], ...] -> "100b..."``); actions (L,); probs (L, 4) rounded to
    0.0001; policy: whether they are a policy's (``has_policy``; if not, the page shows
    no percentages); values (L,), None where the player has no estimate; score (L + 1,) the
    score before each move, then the final one; colors: [background, text] per exponent.
    """
    top = max(17, int(record.boards.max(initial=0)))
    return {
        "boards": ["".join(DIGITS[e] for e in board.ravel()) for board in record.boards],
        "actions": record.actions.tolist(),
        "probs": [[round(float(p), 4) for p in row] for row in record.probs],
        "policy": has_policy(record),
        "values": [round(float(v), 4) if math.isfinite(v) else None for v in record.values],
        "score": score_before(record).tolist(),
        "colors": [list(tile_colors(2**e if e else 0)) for e in range(min(top, MAX_EXPONENT) + 1)],
    }


def game_html(record: GameRecord, title: str, note: str = "") -> str:
    """The whole page for ``record``; ``title`` heads it and ``note`` (the run's note, say)
    follows it, both plain text, escaped here."""
    facts = game_data(record)
    rows, cols = record.boards.shape[1:]
    data = json.dumps(facts, separators=(",", ":"), allow_nan=False)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    bars = "".join(
        f'<div class="bar" data-action="{action.name}"><span class="name">{ARROWS[action]} '
        f'{action.name.lower()}</span><span class="track"><span class="fill"></span></span>'
        '<span class="pct"></span></div>'
        for action in Action
    )
    speeds = "".join(
        f'<option value="{s}"{" selected" if s == DEFAULT_SPEED else ""}>{s} moves/s</option>'
        for s in SPEEDS
    )
    meta = f"2048 on {rows}x{cols} · {record.length:,} moves"
    if record.env_steps:  # a game played outside training has none
        meta += f" · played at {record.env_steps:,} training env steps"
    return _PAGE.format(
        title=html.escape(title),
        meta=html.escape(meta),
        note=f'<p class="note">{html.escape(note)}</p>' if note else "",
        tiles='<div class="tile"></div>' * (rows * cols),
        board_style=_board_style(rows, cols),
        heading="policy" if facts["policy"] else "move taken (this player gives no probabilities)",
        bars=bars,
        length=record.length,
        speeds=speeds,
        css=_CSS,
        data=data,
        script=_SCRIPT,
    )


def _board_style(rows: int, cols: int) -> str:
    """The inline style of an (R, C) board: its grid, its aspect ratio, a tall board no
    taller than a square one, and ``--k``, the tiles' font scale (1 on 4x4)."""
    width = round(100 * min(1, cols / rows))
    return (
        f"grid-template-columns:repeat({cols},1fr);grid-template-rows:repeat({rows},1fr);"
        f"aspect-ratio:{cols}/{rows};width:{width}%;--k:{4 / cols:.4g}"
    )


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<main>
<h1>{title}</h1>
<p class="meta">{meta}</p>
{note}
<div class="board" id="board" style="{board_style}">{tiles}</div>
<div class="stats"><span id="move"></span><span>score <b id="score"></b></span>
<span>value <b id="value"></b></span></div>
<div class="heading">{heading}</div>
<div class="bars" id="bars">{bars}</div>
<div class="controls">
<button id="back" type="button" aria-label="step back">◀</button>
<button id="play" type="button">▶ play</button>
<button id="forward" type="button" aria-label="step forward">▶▏</button>
<select id="speed" aria-label="speed">{speeds}</select>
<input id="slider" type="range" min="0" max="{length}" value="0" aria-label="move">
</div>
<noscript><p>This page needs JavaScript to play the game back.</p></noscript>
</main>
<script id="game-data" type="application/json">{data}</script>
<script>{script}</script>
</body>
</html>
"""

_CSS = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:#faf8ef;color:#776e65;
font-family:"Clear Sans","Helvetica Neue",Arial,sans-serif}
main{max-width:460px;margin:0 auto;padding:12px}
h1{font-size:1.2rem;margin:0;overflow-wrap:anywhere}
.meta{margin:2px 0 10px;font-size:.85rem}
.note{margin:0 0 10px;white-space:pre-wrap;overflow-wrap:anywhere}
.board{display:grid;gap:calc(3% * var(--k));padding:calc(3% * var(--k));background:#bbada0;
border-radius:8px;container-type:inline-size}
.tile{display:flex;align-items:center;justify-content:center;min-width:0;border-radius:4px;
font-weight:700;background:#cdc1b4;font-size:32px;font-size:calc(13cqw * var(--k))}
.tile[data-digits="3"]{font-size:28px;font-size:calc(11cqw * var(--k))}
.tile[data-digits="4"]{font-size:22px;font-size:calc(8.5cqw * var(--k))}
.tile[data-digits="5"]{font-size:18px;font-size:calc(7cqw * var(--k))}
.tile[data-digits="6"],.tile[data-digits="7"]{font-size:14px;font-size:calc(5.5cqw * var(--k))}
.stats{display:flex;flex-wrap:wrap;gap:4px 16px;margin:10px 0 6px;
font-variant-numeric:tabular-nums}
.heading{font-size:.85rem;margin-bottom:4px}
.bars{display:grid;gap:4px;font-variant-numeric:tabular-nums}
.bar{display:flex;align-items:center;gap:6px}
.bar .name{flex:0 0 4.5em}
.bar .track{flex:1 1 auto;min-width:0;height:14px;background:#eee4da;border-radius:3px}
.bar .fill{display:block;width:0;height:100%;background:#8f7a66;border-radius:3px}
.bar .pct{flex:0 0 3.5em;text-align:right}
.bar.chosen{font-weight:700}
.bar.chosen .fill{background:#f67c5f}
.controls{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin-top:12px}
button,select{font:inherit;min-height:44px;padding:0 14px;border:0;border-radius:6px;
background:#8f7a66;color:#f9f6f2}
#play{flex:1 1 auto}
input[type=range]{flex:1 1 100%;width:100%;min-height:44px;margin:0;accent-color:#8f7a66}
"""

_SCRIPT = """
(() => {
  const data = JSON.parse(document.getElementById("game-data").textContent);
  const $ = (id) => document.getElementById(id);
  const length = data.actions.length;
  const tiles = Array.from(document.querySelectorAll("#board .tile"));
  const bars = Array.from(document.querySelectorAll("#bars .bar"));
  const number = (n) => n.toLocaleString("en-US");
  let step = 0;
  let timer = null;

  function draw() {
    const board = data.boards[step];
    tiles.forEach((tile, i) => {
      const exponent = parseInt(board[i], 32);
      const value = exponent ? 2 ** exponent : 0;
      const [background, text] = data.colors[Math.min(exponent, data.colors.length - 1)];
      tile.textContent = value ? String(value) : "";
      tile.dataset.digits = String(String(value).length);
      tile.style.background = background;
      tile.style.color = text;
    });
    const over = step >= length;
    $("move").textContent = over
      ? "game over after " + number(length) + " moves"
      : "move " + number(step + 1) + " of " + number(length);
    $("score").textContent = number(data.score[step]);
    const value = over ? null : data.values[step];
    $("value").textContent = value === null ? "–" : value.toFixed(2);
    bars.forEach((bar, action) => {
      const p = over ? 0 : data.probs[step][action];
      bar.querySelector(".fill").style.width = (100 * p).toFixed(1) + "%";
      const shown = !over && data.policy;
      bar.querySelector(".pct").textContent = shown ? (100 * p).toFixed(1) + "%" : "";
      bar.classList.toggle("chosen", !over && data.actions[step] === action);
    });
    $("slider").value = String(step);
  }

  function go(to) {
    step = Math.max(0, Math.min(length, to));
    draw();
  }

  function pause() {
    clearInterval(timer);
    timer = null;
    $("play").textContent = "▶ play";
  }

  function play() {
    if (step >= length) go(0);
    clearInterval(timer);
    timer = setInterval(() => (step >= length ? pause() : go(step + 1)),
                        1000 / Number($("speed").value));
    $("play").textContent = "❚❚ pause";
  }

  $("play").addEventListener("click", () => (timer ? pause() : play()));
  $("back").addEventListener("click", () => { pause(); go(step - 1); });
  $("forward").addEventListener("click", () => { pause(); go(step + 1); });
  $("slider").addEventListener("input", (e) => { pause(); go(Number(e.target.value)); });
  $("speed").addEventListener("change", () => { if (timer) play(); });
  document.addEventListener("keydown", (e) => {
    // the slider and the speed list take the arrows, a focused button takes space
    if (e.target.closest("input, select") || (e.key === " " && e.target.closest("button"))) {
      return;
    }
    if (e.key === "ArrowLeft") { pause(); go(step - 1); }
    else if (e.key === "ArrowRight") { pause(); go(step + 1); }
    else if (e.key === " ") { e.preventDefault(); timer ? pause() : play(); }
  });
  draw();
})();
"""
