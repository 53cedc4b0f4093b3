"""What a PPO rollout hands the learner, and the actor thread that plays one while the
learner learns from the last.

``Rollout`` is one filled ``RolloutBuffer`` with what its update needs besides (the value
of the boards after its last move, the teacher's weight when it was played) and what the
run is told of it afterwards (the moves played, the games that ended, the slots recorded
for replay). Whoever plays a rollout, the run hears of it only through ``report``, on the
run's own thread: a run's hooks are not thread-safe.

``Actor`` runs a rollout on a thread of its own (an actor and a learner, as in IMPALA or
Ape-X, with one actor and a lag of one policy version): on a 2-core CPU the rollout, ~20%
of an iteration and mostly Python and small tensors, runs beside the update instead of
before it. Torch operations and the numba env release the GIL, so both cores work.

``pending_state`` and ``pending_rollout``: a rollout played but not yet learned from (the
actor ran one ahead), as a checkpoint's tensors and back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from ..base import RunHooks
from .algorithm import RolloutBuffer

__all__ = ["PENDING_SHAPES", "Actor", "Rollout", "pending_rollout", "pending_state"]

# an overlapped run's rollout not yet learned from: per-step shape of each tensor ((T, N,
# *shape); ``last_values`` is (N,))
PENDING_SHAPES: dict[str, tuple[int, ...] | str] = {
    "boards": "board",
    "masks": (4,),
    "actions": (),
    "logprobs": (),
    "values": (),
    "rewards": (),
    "dones": (),
    "teacher_probs": (4,),
    "teacher_values": (),
    "last_values": (),
}


@dataclass(eq=False)  # compared by identity: it holds tensors
class Rollout:
    """One rollout of T moves in N games. ``buffer`` holds the first ``steps`` moves (all
    T unless stopped early); ``last_values`` (N,) the value, in return units, of the boards
    after the last move, read by the policy that played them; ``distill_coef`` the
    teacher's weight while it was played (its teacher probabilities are filled when > 0)."""

    buffer: RolloutBuffer
    distill_coef: float = 0.0
    value_coef: float = 0.0  # the teacher's value weight (its values are filled when > 0)
    steps: int = 0  # moves played per game
    last_values: Tensor | None = None  # (N,) float32, return units; None if stopped early
    # what the run hears, in order: (moves, scores (G,), tiles (G,)) per step
    played: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)
    recording: dict[str, np.ndarray] = field(default_factory=dict)  # (T, slots, ...) each
    final_boards: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    extra: dict[str, float | None] = field(default_factory=dict)  # metrics of its games

    @property
    def complete(self) -> bool:
        return self.last_values is not None

    def report(self, hooks: RunHooks) -> None:
        """Tell the run: the moves and finished games, then the games recorded for replay."""
        for moves, scores, tiles in self.played:
            hooks.played(moves, scores, tiles)
        if self.steps:
            rec = {name: array[: self.steps] for name, array in self.recording.items()}
            hooks.recorded(
                hooks.recorder.add_rollout(
                    rec["boards"],
                    rec["actions"],
                    rec["probs"],
                    rec["values"],
                    rec["rewards"],
                    rec["score_gains"],
                    rec["dones"],
                    self.final_boards,
                    *hooks.position(),
                )
            )


class Actor:
    """``play(keep_going)`` on a thread of its own: ``start``, then ``wait`` on the run's
    thread. ``keep_going()`` is False once the actor was told to stop, and waits while the
    run's thread is in one of its ticks (``tick``): a paused run plays no move."""

    def __init__(self, play: Callable[[Callable[[], bool]], Rollout]):
        self._play = play
        self._stop = threading.Event()
        self._free = threading.Event()  # clear while the run's thread ticks
        self._free.set()
        self._parked = threading.Event()  # set while the actor waits for _free, or is done
        self._result: Rollout | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="g2048lab-actor", daemon=True)

    def start(self) -> Actor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._free.set()

    def tick(self, tick: Callable[[], bool], pausing: Callable[[], bool]) -> bool:
        """The run's ``tick()`` (pause, stop, messages), the actor held meanwhile at its next
        move; when ``pausing()``, the tick waits for the actor's move in flight, so that the
        run reports itself paused only once no move can land. False: stop."""
        self._free.clear()
        try:
            if pausing():
                while not self._parked.wait(0.01) and self._thread.is_alive():
                    pass
            going = tick()
        finally:
            self._free.set()
        if not going:
            self.stop()
        return going

    def wait(
        self, tick: Callable[[], bool], pausing: Callable[[], bool], poll_s: float = 0.05
    ) -> Rollout:
        """The rollout, once played; ``tick`` runs every ``poll_s`` meanwhile, as in
        ``Actor.tick``. The actor's exception, if it raised, is raised here."""
        while self._thread.is_alive():
            self._thread.join(poll_s)
            if self._thread.is_alive() and not self._stop.is_set():
                self.tick(tick, pausing)
        if self._error is not None:
            raise self._error
        return self._result

    def _keep_going(self) -> bool:
        if not self._free.is_set():
            self._parked.set()
            self._free.wait()
            self._parked.clear()
        return not self._stop.is_set()

    def _run(self) -> None:
        try:
            self._result = self._play(self._keep_going)
        except BaseException as error:  # raised again on the run's thread, in wait()
            self._error = error
        finally:
            self._parked.set()


def pending_state(rollout: Rollout | None) -> dict[str, Any] | None:
    """An overlapped run's rollout not yet learned from, as checkpoint tensors."""
    if rollout is None:
        return None
    buf = rollout.buffer
    state = {
        name: getattr(buf, name).clone()
        for name in PENDING_SHAPES
        if name != "last_values" and getattr(buf, name) is not None
    }
    state["last_values"] = rollout.last_values.clone()
    state["distill_coef"] = rollout.distill_coef
    state["value_coef"] = rollout.value_coef
    return state


def pending_rollout(state: dict[str, Any] | None, buffer: RolloutBuffer) -> Rollout | None:
    """``pending_state`` read back into ``buffer``."""
    if state is None:
        return None
    for name in PENDING_SHAPES:
        if name != "last_values" and getattr(buffer, name) is not None and name in state:
            getattr(buffer, name).copy_(state[name])
    # learned from only where both the file and this run's buffer hold it (a teacher
    # annealed to 0 since is not loaded: what it gave is not learned from)
    teaches = "teacher_probs" in state and buffer.teacher_probs is not None
    values = "teacher_values" in state and buffer.teacher_values is not None
    coef = float(state["distill_coef"]) if teaches else 0.0
    value_coef = float(state.get("value_coef", 0.0)) if values else 0.0
    rollout = Rollout(buffer, coef, value_coef, steps=buffer.actions.shape[0])
    rollout.last_values = state["last_values"].to(buffer.values.device)
    return rollout
