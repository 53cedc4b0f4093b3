"""Step through a recorded game: the board, the move taken, the policy, value and reward.

Everything happens on the main thread: the slider's ``observe`` callback redraws, and the
``Play`` widget moves the slider in the browser (``jslink``), so no thread is needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import ipywidgets as widgets

from .. import games as game_rules
from ..engine.rules import to_values
from ..recording import GameRecord
from ..store import GameSummary, RunStore, StoreError
from .board import GameView, empty_board
from .downloads import game_link
from .layout import ROOT_CLASS, button, style_widget, toolbar

__all__ = ["ReplayViewer", "game_label"]


def game_label(kind: str, score: int, max_tile: int, moves: int) -> str:
    """``game_label("best", 12345, 1024, 812) -> "best: 12,345 (1024) · 812 moves"``"""
    return f"{kind}: {score:,} ({max_tile}) · {moves:,} moves"


class ReplayViewer:
    """Replay recorded games move by move.

    Args:
        games: a ``RunStore`` (or its folder), a ``Trainer`` or its ``GameRecorder`` (the
            best and most recent games it kept), or a sequence of ``GameRecord``.
        run: the run's name in the store; None picks the run written most recently.
        interval_ms: milliseconds per move while playing.

    The run's game (its config's ``game``; 4x4 for a run from before games) names the moves
    and shapes the empty board; a recorded game's boards are drawn in their own shape.
    """

    def __init__(
        self,
        games: RunStore | str | Path | object | Sequence[GameRecord],
        run: str | None = None,
        *,
        interval_ms: int = 400,
    ):
        self.store: RunStore | None = None
        self.rules = game_rules.get()  # the game played: its moves and board shape
        if isinstance(games, (RunStore, str, Path)):
            self.store = games if isinstance(games, RunStore) else RunStore(games, create=False)
            if run is None:
                latest = self.store.latest_run()
                if latest is None:
                    raise StoreError(f"no runs in {self.store.path} yet: nothing to replay")
                run = latest.name
            info = self.store.get_run(run)  # RunNotFound names the runs there
            self.run = info.name
            self.rules = _run_game(info.config)
        else:
            self.run = run
            self.rules = getattr(games, "game", self.rules)  # a Trainer's game
            games = getattr(games, "recorder", games)  # a Trainer: its recorder
        self._games_source = games
        self._loaded: dict[int, GameRecord] = {}
        self._choices: list[Callable[[], GameRecord]] = []
        self.game: GameRecord | None = None

        self.picker = widgets.Dropdown(
            description="game",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="auto", min_width="0", flex="1 1 260px"),
        )
        self.play = widgets.Play(interval=interval_ms, min=0, max=0, step=1, description="play")
        self.slider = widgets.IntSlider(
            min=0,
            max=0,
            description="move",
            style={"description_width": "initial"},
            layout=widgets.Layout(flex="1 1 240px", min_width="0"),
        )
        self.link = widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.reload = button("refresh list", "read the run's kept games again")
        self.reload.layout.display = None if self.store is not None else "none"
        self.save = button("game as HTML", "make a link to this game as one page that plays it")
        self.save_link = widgets.HTML()
        self.save.on_click(lambda _: self.prepare_html())
        self.view = GameView(self.rules)
        self.picker.observe(lambda _: self._pick(), "value")
        self.slider.observe(lambda _: self._draw(), "value")
        self.reload.on_click(lambda _: self.refresh_games())
        self.root = widgets.VBox(
            [
                style_widget(),
                toolbar(self.picker, self.reload),
                toolbar(self.play, self.slider),
                self.view,
                toolbar(self.save, self.save_link),
            ],
            layout=widgets.Layout(width="100%"),
        )
        self.root.add_class(ROOT_CLASS)
        self.refresh_games()

    def _repr_mimebundle_(self, **kwargs):
        return {**self.root._repr_mimebundle_(**kwargs), "text/plain": "g2048lab ReplayViewer"}

    # --- games ----------------------------------------------------------------------------

    def refresh_games(self) -> None:
        """Read the list of games again (a live run keeps replacing its recent ones)."""
        labels: list[str] = []
        self._choices = []
        if self.store is not None:
            for summary in _ordered(self.store.games(self.run)):
                kind = " & ".join(k for k in ("best", "recent") if k in summary.kinds)
                labels.append(game_label(kind, summary.score, summary.max_tile, summary.length))
                self._choices.append(lambda game_id=summary.id: self._load(game_id))
        else:
            for kind, game in self._records():
                labels.append(game_label(kind, game.score, game.max_tile, game.length))
                self._choices.append(lambda game=game: game)
        self.picker.options = [(label, i) for i, label in enumerate(labels)]
        if not labels:
            self.game = None
            self._show_empty("no recorded games yet")
        elif self.picker.value == 0:  # the first game again: no change event
            self._pick()
        else:
            self.picker.value = 0  # observe calls _pick

    def _records(self) -> list[tuple[str, GameRecord]]:
        games = self._games_source
        if hasattr(games, "best") and hasattr(games, "recent"):  # a GameRecorder
            best = [("best", game) for game in games.best]
            recent = [("recent", game) for game in reversed(games.recent)]
            return best + recent
        return [(f"game {i + 1}", game) for i, game in enumerate(games)]

    def _load(self, game_id: int) -> GameRecord:
        if game_id not in self._loaded:
            self._loaded[game_id] = self.store.load_game(game_id)
        return self._loaded[game_id]

    def _pick(self) -> None:
        index = self.picker.value
        if index is None:
            return
        try:
            self.game = self._choices[index]()
        except StoreError as error:  # pruned since the list was read
            self._show_empty(f"{error}; refresh the list")
            return
        self.save_link.value = ""  # a link to the game shown before
        with self.slider.hold_sync(), self.play.hold_sync():
            self.play.value = self.slider.value = 0
            self.play.max = self.slider.max = self.game.length
        self._draw()

    def prepare_html(self) -> str:
        """Fill the download link with the shown game as a standalone page; returns the link."""
        if self.game is None:
            self.save_link.value = "no game to save"
        else:
            self.save_link.value = game_link(self.game, self.run or "game")
        return self.save_link.value

    # --- one step -------------------------------------------------------------------------

    def _show_empty(self, caption: str) -> None:
        rules = self.rules
        self.view.show(empty_board(rules), [0.0] * rules.actions, caption=caption, game=rules)

    def show(self, step: int) -> None:
        """Show position ``step`` (0: the start; the game's length: the final board)."""
        self.slider.value = step  # observe redraws

    def _draw(self) -> None:
        game, step = self.game, self.slider.value
        if game is None:
            return
        board = to_values(game.boards[min(step, game.length)]).tolist()
        score = int(game.score_gains[:step].sum())
        if step >= game.length:
            caption = (
                f"game over after {game.length:,} moves · score {game.score:,} · "
                f"max tile {game.max_tile:,}"
            )
            self.view.show(board, [0.0] * self.rules.actions, caption=caption, game=self.rules)
            return
        action = int(game.actions[step])
        arrow, name = self.rules.move_arrows[action], self.rules.move_names[action]
        value = float(game.values[step])  # NaN: the player has no value estimate
        caption = (
            f"move {step + 1:,} of {game.length:,}: {arrow} {name.upper()} · "
            + (f"value {value:,.2f} · " if math.isfinite(value) else "")
            + f"reward {float(game.rewards[step]):.3f} · "
            f"score {score:,} → {score + int(game.score_gains[step]):,}"
        )
        self.view.show(board, game.probs[step].tolist(), action, caption, self.rules)


def _run_game(config: dict) -> game_rules.Game:
    """The game a run played, by its config; a game no longer registered (one a test or a
    notebook added): the family's 4x4 moves, the boards still drawn in their own shape."""
    try:
        return game_rules.get(config.get("game", game_rules.DEFAULT))
    except game_rules.UnknownGame:
        return game_rules.get()


def _ordered(summaries: list[GameSummary]) -> list[GameSummary]:
    """Best games by score, then the recent-only ones, newest first."""
    best = [s for s in summaries if "best" in s.kinds]
    recent = sorted(
        (s for s in summaries if "best" not in s.kinds), key=lambda s: s.timestamp, reverse=True
    )
    return best + recent
