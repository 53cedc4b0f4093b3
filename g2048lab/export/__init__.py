"""A run out of the workbench: its metrics for spreadsheets and TensorBoard, a recorded game
as one file that plays it back (``g2048lab export``).

    from g2048lab.export import game_gif, game_html, metrics_csv
    game_html(record, "my-run")    # a standalone page (str): board, policy, value, controls
    game_gif(record)               # an animated GIF (bytes); needs Pillow
    metrics_csv(store.metrics("my-run"))

One module per job: ``metrics`` (CSV, TensorBoard events), ``games`` (which game, and what
both game exports show), ``game_html``, ``game_gif``, ``files`` (atomic writes).
"""

from .files import write_atomic
from .game_gif import game_gif
from .game_html import game_html
from .games import game_title, load_game, pick_game
from .metrics import metrics_csv, write_tensorboard

__all__ = [
    "game_gif",
    "game_html",
    "game_title",
    "load_game",
    "metrics_csv",
    "pick_game",
    "write_atomic",
    "write_tensorboard",
]
