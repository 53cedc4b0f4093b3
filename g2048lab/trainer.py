"""A training run: a learner (learners/) driven in a loop, blocking or in a background thread.

``Trainer.run()`` blocks; ``start()`` runs the same loop in a daemon thread that
``pause()``, ``resume()``, ``stop()`` and ``join()`` control from any thread.
The run owns what every algorithm shares: states, budgets, pause/resume/stop, message
cadence, subscribers, counters, recorded games and the checkpoint's run fields; the
learner (``TrainerConfig.learner``, PPO on the MoE transformer by default) owns its
algorithm and its settings (``TrainerConfig.learner_config``). The trainer knows nothing
of displays: it emits ``TrainingUpdate`` messages (at most about twice a second, at least
every 2 s while running, also in the middle of an iteration) and per-iteration metrics to
subscribers, in the style of Stable-Baselines3's callbacks but with a typed context and a
narrow run handle.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from . import games, learners
from .device import check_threads, memory_stats, select_device, set_cpu_threads
from .distributed import DistContext
from .engine.rules import to_values
from .learners import Learner, LearnerSetup
from .messages import TrainingUpdate
from .recording import GameRecord, GameRecorder
from .settings import MAX_SEED, check_settings, setting
from .status import LIVE, Status
from .subscribers import RunHandle, Subscriber, TrainingContext, UpdateQueue

__all__ = ["Subscriber", "Trainer", "TrainerConfig", "TrainingContext", "UpdateQueue"]

MAX_FINISHED_GAMES = 256  # finished games listed in one message
# iteration rows kept in memory (``Trainer.metrics``); the run store and log.jsonl keep them all
MAX_METRIC_ROWS = 10_000


@dataclass(frozen=True)
class TrainerConfig:
    """One run's settings: the run's own fields, and its learner's settings.

    ``learner`` names the algorithm (``learners.names()``); ``learner_config`` holds its
    settings, an instance of its ``config_class`` (the PPO learner's
    ``learners.ppo.ppo_config.PPOLearnerConfig``, the n-tuple learner's ``NTupleConfig``);
    None: its defaults. ``game`` names the game played (``games.names()``). Budgets:
    ``total_env_steps`` and/or ``max_seconds`` (wall time spent running, pauses excluded);
    with neither the run goes on until ``stop()``. A learner ends its iteration where the
    budget ends if it can (n-tuple, within a move); PPO finishes the rollout it is in, to
    learn from it whole.
    """

    learner: str = "ppo"
    learner_config: Any = None  # the learner's config_class instance; None: its defaults
    game: str = games.DEFAULT  # a name games.get knows: 2048-4x4, 2048-5x5, ...
    device: str = "auto"  # auto | cpu | cuda[:N]
    threads: int | None = None  # torch CPU threads, 1 .. the usable cores; None: cores - 1
    seed: int = setting(0, ge=0, le=MAX_SEED)
    total_env_steps: int | None = setting(None, ge=1)
    max_seconds: float | None = setting(None, gt=0)
    run_id: str | None = None  # None: a fresh short id
    update_interval_s: float = setting(1.0, ge=0.05, le=2.0)  # spacing of TrainingUpdate messages
    record_slots: int = setting(16, ge=0)  # env slots whose whole games are recorded for replay
    keep_best_games: int = setting(5, ge=0)
    keep_recent_games: int = setting(5, ge=0)

    def __post_init__(self) -> None:
        check_settings(self)
        check_threads(self.threads)
        try:
            games.get(self.game)
        except games.UnknownGame as error:
            raise ValueError(str(error)) from None
        # an unknown name fails here, listing the known ones
        wanted = learners.get(self.learner).config_class
        given = self.learner_config
        if given is not None and not isinstance(given, wanted):
            raise ValueError(
                f"the {self.learner} learner's settings are a {wanted.__name__}, got "
                f"{type(given).__name__} as learner_config"
            )


class Trainer:
    """A training run of one learner; see the module docstring."""

    def __init__(
        self,
        config: TrainerConfig | None = None,
        dist: DistContext | None = None,
        resumed_at: int = 0,
    ):
        """``dist``: this process's place in a torchrun group (``distributed.init_distributed``);
        None for a single process. ``resumed_at``: the env steps a resumed run has played
        (``from_checkpoint`` passes its file's), so that its learner builds only what the rest
        of the run needs (no teacher whose weight has annealed to 0)."""
        self.config = config = config or TrainerConfig()
        self.dist = dist
        self.run_id = config.run_id or uuid.uuid4().hex[:8]
        self.game = games.get(config.game)
        learner_class = learners.get(config.learner)
        if dist is not None and not learner_class.distributed:
            raise ValueError(f"the {config.learner} learner does not train under torchrun")
        self.device = dist.device if dist else select_device(config.device)
        self.threads = set_cpu_threads(config.threads) if self.device.type == "cpu" else None
        setup = LearnerSetup(
            self.device, config.seed, dist, self.threads, env_steps=resumed_at, game=self.game
        )
        self.learner: Learner = learner_class(config, setup)
        slots = min(config.record_slots, self.learner.parallel_games)
        self.recorder = GameRecorder(slots, config.keep_best_games, config.keep_recent_games)
        self.updates = UpdateQueue()
        self.subscribers: list[Subscriber] = [self.updates]
        self.handle = RunHandle(self)
        # one row per iteration, the latest MAX_METRIC_ROWS (bounded: a run may last days)
        self.metrics: deque[dict[str, float]] = deque(maxlen=MAX_METRIC_ROWS)
        self.checkpoint_row: dict | None = None  # a resumed run's last row before it resumed
        # counters (a checkpoint restores these)
        self.iteration = 0
        self.env_steps = 0
        self.episodes = 0
        self._episodes_counted = 0  # all ranks' games, at the last iteration's end
        self.best_score = 0
        self.max_tile = 0
        self.elapsed_s = 0.0
        self.recent_scores: deque[int] = deque(maxlen=100)
        self.recent_tiles: deque[int] = deque(maxlen=100)  # max tile of the same games
        # thread control
        self._state = Status.IDLE
        self._lock = threading.Lock()
        self._resumed = threading.Condition(self._lock)
        self._stop_requested = False
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.error_traceback: str | None = None
        # live view
        self._events: list[str] = []
        self._finished: list[tuple[int, int]] = []  # (score, max tile) since the last message
        self._last_emit = 0.0
        self.emit_seconds = 0.0  # wall time spent building and sending messages
        self._rate_window: deque[tuple[float, int]] = deque(maxlen=64)
        self._active_since: float | None = None

    # --- control, from any thread -----------------------------------------------------

    @property
    def state(self) -> Status:
        """The run's ``Status``: idle, running, pausing, paused, stopping, then finished,
        stopped or failed."""
        return self._state

    def subscribe(self, subscriber: Subscriber) -> Subscriber:
        """Add a subscriber (before or during a run); returns it."""
        self.subscribers.append(subscriber)
        return subscriber

    def start(self) -> Trainer:
        """Run the training loop in a daemon thread; returns at once."""
        with self._lock:
            if self._state != Status.IDLE or self._thread is not None:
                raise RuntimeError(f"this trainer has already run (state {self._state})")
            self._thread = threading.Thread(
                target=self._run_guarded, name="g2048lab-trainer", daemon=True
            )
        self._thread.start()
        return self

    def pause(self) -> None:
        """Ask for a pause: the state is "pausing" until the loop has finished the current
        env step or minibatch, then "paused" (no env step or update happens any more).
        Distributed runs pause between iterations."""
        with self._lock:
            if self._state == Status.RUNNING:
                self._set_state(Status.PAUSING)

    def resume(self) -> None:
        with self._lock:
            if self._state in (Status.PAUSING, Status.PAUSED):
                self._set_state(Status.RUNNING)
                self._resumed.notify_all()

    def stop(self) -> None:
        """Finish the current step and end the run cleanly (also when paused); the run ends
        "stopped" (or "finished" if its budget was spent meanwhile)."""
        with self._lock:
            self._stop_requested = True
            if self._state in LIVE:
                self._set_state(Status.STOPPING)
            self._resumed.notify_all()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread; re-raise its exception if the run failed."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"the trainer is still {self._state} after {timeout} s")
        if self.error is not None:
            raise self.error

    def run(self) -> Trainer:
        """Train until the budget is spent or ``stop()``; blocks; raises what the loop raised."""
        with self._lock:
            if self._state != Status.IDLE:
                raise RuntimeError(f"this trainer has already run (state {self._state})")
        self._run_guarded()
        if self.error is not None:
            raise self.error
        return self

    # --- the loop ----------------------------------------------------------------------

    def _run_guarded(self) -> None:
        with self._lock:
            if not self._stop_requested:
                self._set_state(Status.RUNNING)
        try:
            self._loop()
            with self._lock:
                stopped = self._stop_requested and not self._budget_spent()
                self._set_state(Status.STOPPED if stopped else Status.FINISHED)
        except BaseException as error:  # kept for join(); the thread must not die silently
            if self.dist is not None and isinstance(error, RuntimeError):
                # most often a collective that failed because another rank died or hung
                wrapped = RuntimeError(
                    f"rank {self.dist.rank} of {self.dist.world_size} stopped: {error}; when one "
                    "rank fails, the others stop at their next collective"
                )
                wrapped.__cause__ = error
                error = wrapped
            self._fail(error)
        finally:
            self._accumulate_time()
            try:
                self._emit(force=True)
            except Exception as error:  # e.g. a full disk under the run store
                self._fail(error)
            for subscriber in list(self.subscribers):
                try:  # every subscriber hears of the end, and a failure here fails the run
                    subscriber.on_end(self._context())  # (the final checkpoint, say)
                except Exception as error:
                    self._fail(error)

    def _fail(self, error: BaseException) -> None:
        """Record the run's first error (later ones follow from it) and mark it failed."""
        if self.error is None:
            self.error = error
            self.error_traceback = traceback.format_exc()
        with self._lock:
            self._set_state(Status.FAILED)

    def _loop(self) -> None:
        self._active_since = time.perf_counter()
        while self._next_iteration():
            start = time.perf_counter()
            row = self.learner.iterate(self)
            if row is None:  # a tick said stop
                break
            self.iteration += 1
            if self.dist:
                self._reduce_counters()
            self._record_iteration(row, time.perf_counter() - start)

    def _next_iteration(self) -> bool:
        """Whether to run another iteration. Distributed: rank 0 decides for every rank, and
        pause and stop take effect here, between iterations (ranks must stay in step)."""
        if self.dist is None:
            return not self._budget_spent() and self._tick()
        while True:
            decision = "run"
            if self.dist.is_main:
                if self._budget_spent() or self._stop_requested:
                    decision = "stop"
                elif self._state in (Status.PAUSING, Status.PAUSED):
                    decision = "pause"
            decision = self.dist.broadcast(decision)
            if decision != "pause":
                return decision == "run"
            if self.dist.is_main:  # a short wait, so the next broadcast is well inside the timeout
                self._accumulate_time()
                self._emit(force=True)
                with self._lock:
                    if self._state == Status.PAUSING:  # every rank has stopped stepping
                        self._set_state(Status.PAUSED)
                    if self._state == Status.PAUSED:
                        self._resumed.wait(timeout=1.0)
                if self._state != Status.PAUSED:
                    self._active_since = time.perf_counter()

    def _tick(self) -> bool:
        """Between steps: honour pause and stop, emit a message when due. False: stop."""
        if self.dist is not None:  # pause and stop wait for the iteration's end
            if self.dist.is_main:
                self._emit()
            return True
        if self._state in (Status.PAUSING, Status.PAUSED):
            self._accumulate_time()
            with self._lock:  # the loop has stopped stepping: now it is paused
                if self._state == Status.PAUSING:
                    self._set_state(Status.PAUSED)
            # a heartbeat every second while paused: viewers see the run is alive, and
            # subscribers (the run store's control requests) get the chance to resume it
            while self._state == Status.PAUSED:
                self._emit(force=True)
                with self._lock:
                    if self._state == Status.PAUSED:
                        self._resumed.wait(timeout=1.0)
            self._active_since = time.perf_counter()
        if self._stop_requested:
            return False
        self._emit()
        return True

    # --- the learner's hooks (learners.RunHooks) -------------------------------------------

    def tick(self) -> bool:
        """Between a learner's small steps: honour pause and stop, emit when due."""
        return self._tick()

    def pausing(self) -> bool:
        return self._state in (Status.PAUSING, Status.PAUSED)

    def progress(self) -> float:
        return self._progress()

    def steps_left(self) -> int | None:
        total = self.config.total_env_steps
        return None if total is None else max(0, total - self.env_steps)

    def played(self, steps: int, scores: np.ndarray, tiles: np.ndarray) -> None:
        if len(scores):
            self._finished.extend(zip(scores.tolist(), tiles.tolist()))
            self.episodes += len(scores)
            self.recent_scores.extend(int(s) for s in scores)
            self.recent_tiles.extend(int(t) for t in tiles)
            self.best_score = max(self.best_score, int(scores.max()))
            self.max_tile = max(self.max_tile, int(tiles.max()))
        self.env_steps += steps * (self.dist.world_size if self.dist else 1)

    def recorded(self, games: list[GameRecord]) -> None:
        for game in games:
            self._notify("on_game", game)

    def position(self) -> tuple[int, int]:
        return self.env_steps, self.iteration

    def _reduce_counters(self) -> None:
        """Games finished on every rank this iteration; best score and tile of any rank."""
        (new_games,) = self.dist.reduce([float(self.episodes - self._episodes_counted)], "sum")
        self.episodes = self._episodes_counted + int(new_games)
        self._episodes_counted = self.episodes
        best, tile = self.dist.reduce([float(self.best_score), float(self.max_tile)], "max")
        self.best_score, self.max_tile = int(best), int(tile)

    # --- budget, time, messages --------------------------------------------------------

    def _budget_spent(self) -> bool:
        c = self.config
        if c.total_env_steps is not None and self.env_steps >= c.total_env_steps:
            return True
        return c.max_seconds is not None and self._elapsed() >= c.max_seconds

    def _progress(self) -> float:
        c = self.config
        parts = [0.0]
        if c.total_env_steps:
            parts.append(self.env_steps / c.total_env_steps)
        if c.max_seconds:
            parts.append(self._elapsed() / c.max_seconds)
        return max(parts)

    def _elapsed(self) -> float:
        running = time.perf_counter() - self._active_since if self._active_since else 0.0
        return self.elapsed_s + running

    def _accumulate_time(self) -> None:
        if self._active_since is not None:
            self.elapsed_s += time.perf_counter() - self._active_since
            self._active_since = None

    def _steps_per_second(self) -> float:
        now = self._elapsed()
        self._rate_window.append((now, self.env_steps))
        while len(self._rate_window) > 2 and now - self._rate_window[0][0] > 10.0:
            self._rate_window.popleft()
        (t0, s0), (t1, s1) = self._rate_window[0], self._rate_window[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else 0.0

    def _record_iteration(self, learned: dict[str, float | None], iteration_s: float) -> None:
        memory = memory_stats(self.device)
        row = {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "time/elapsed_s": self._elapsed(),
            "time/steps_per_s": self._steps_per_second(),
            "time/iteration_s": iteration_s,
            "rollout/score_mean": float(np.mean(self.recent_scores))
            if self.recent_scores
            else None,
            "rollout/best_score": self.best_score,
            "rollout/max_tile": self.max_tile,
            **self._reach_shares(),
            **learned,
            "memory/gpu_gb": memory.cuda_allocated,
            "memory/rss_gb": memory.process_rss,
        }
        self.metrics.append(row)
        self._notify("on_iteration", row)

    def _reach_shares(self) -> dict[str, float | None]:
        """Share of the recent games (the same as the mean score's) that reached each of the
        game's ``reach_tiles`` (1024 and 2048 on 4x4); None before the first game (or after
        a resume, until games finish)."""
        tiles = np.asarray(self.recent_tiles)
        return {
            f"rollout/reach_{tile}": float(np.mean(tiles >= tile)) if tiles.size else None
            for tile in self.game.reach_tiles
        }

    def _emit(self, force: bool = False) -> None:
        """Send a TrainingUpdate if one is due (``update_interval_s``) or forced."""
        now = time.perf_counter()
        if not force and now - self._last_emit < self.config.update_interval_s:
            return
        self._last_emit = now
        self._notify("on_update", self.snapshot())
        self.emit_seconds += time.perf_counter() - now

    def snapshot(self) -> TrainingUpdate:
        """The run's state as a TrainingUpdate (what subscribers get)."""
        view = self.learner.view()
        memory = memory_stats(self.device)
        events, self._events = self._events, []
        finished, self._finished = self._finished, []
        if len(finished) > MAX_FINISHED_GAMES:  # an even sample keeps the message small
            step = len(finished) / MAX_FINISHED_GAMES
            finished = [finished[int(i * step)] for i in range(MAX_FINISHED_GAMES)]
        losses = view.losses
        return TrainingUpdate(
            run_id=self.run_id,
            iteration=self.iteration,
            episode=self.episodes,
            env_steps=self.env_steps,
            score=float(np.mean(self.recent_scores)) if self.recent_scores else None,
            max_tile=self.max_tile,
            loss=losses.get("loss"),
            policy_loss=losses.get("policy_loss"),
            value_loss=losses.get("value_loss"),
            entropy=losses.get("entropy"),
            learning_rate=view.learning_rate,
            actions=view.actions,
            board_state=to_values(view.board).tolist(),
            attention_weights=view.attention,
            expert_usage=view.expert_usage,
            gpu_memory=memory.cuda_allocated,
            model_params=view.model_params,
            steps_per_second=self._steps_per_second(),
            timestamp=time.time(),
            status=self._state.value,
            value=view.value,
            aux_loss=losses.get("aux_loss"),
            best_score=self.best_score,
            elapsed_s=self._elapsed(),
            process_memory=memory.process_rss,
            minibatch_size=view.minibatch_size,
            events=events,
            finished_games=[list(game) for game in finished],
            attention_layers=view.attention_layers,
            learner=self.learner.name,
            move_values=view.move_values,
            insights=view.insights,
        )

    def _notify(self, method: str, payload: Any) -> None:
        context = self._context()
        for subscriber in list(self.subscribers):
            if getattr(subscriber, method)(payload, context) is False:
                self.stop()

    def _context(self) -> TrainingContext:
        return TrainingContext(
            self.handle, self.run_id, self.iteration, self.env_steps, self.episodes, self._elapsed()
        )

    def _set_state(self, state: Status) -> None:
        self._state = Status(state)

    # --- checkpoints --------------------------------------------------------------------

    def note(self, event: str) -> None:
        """Add a line to the ``events`` of the next message (e.g. "checkpoint saved")."""
        self._events.append(event)

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue as this one would: the run's fields
        (``checkpoint.RUN_FIELDS``) and the learner's (``Learner.state_dict``, merged one
        level deep), tensors and plain containers, loadable with
        ``torch.load(weights_only=True)``."""
        from . import __version__

        payload = {
            "g2048lab_version": __version__,
            "torch_version": str(torch.__version__),
            "device": str(self.device),
            "world_size": self.dist.world_size if self.dist else 1,
            "saved_at": time.time(),
            "learner": self.learner.name,
            "game": self.game.name,
            "run_id": self.run_id,
            "seed": self.config.seed,
            "budget": {
                "total_env_steps": self.config.total_env_steps,
                "max_seconds": self.config.max_seconds,
            },
            "iteration": self.iteration,
            "counters": {
                "env_steps": self.env_steps,
                "episodes": self.episodes,
                "best_score": self.best_score,
                "max_tile": self.max_tile,
                "elapsed_s": self._elapsed(),
            },
            "recent_scores": list(self.recent_scores),
            "rng": {"torch": torch.get_rng_state()},
            "metric_summary": self.metrics[-1] if self.metrics else {},
        }
        for key, value in self.learner.state_dict().items():
            if isinstance(value, dict) and isinstance(payload.get(key), dict):
                clash = payload[key].keys() & value.keys()
                if clash:
                    raise RuntimeError(f"the learner's {key}.{clash.pop()} clashes with the run's")
                payload[key] = {**payload[key], **value}
            elif key in payload:
                raise RuntimeError(f"the learner's checkpoint field {key!r} clashes with the run's")
            else:
                payload[key] = value
        return payload

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        """Continue from ``state_dict()``'s output (a loaded checkpoint)."""
        from .checkpoint import CheckpointError, learner_name

        if learner_name(payload) != self.learner.name:
            raise CheckpointError(
                f"the checkpoint is of a {learner_name(payload)} run, this trainer's learner is "
                f"{self.learner.name}; resume with Trainer.from_checkpoint"
            )
        if saved_game(payload) != self.game.name:
            raise CheckpointError(
                f"the checkpoint is of a run of {saved_game(payload)}, this trainer plays "
                f"{self.game.name}; resume with Trainer.from_checkpoint"
            )
        self.learner.load_state_dict(payload)
        self.run_id = payload["run_id"]
        self.iteration = payload["iteration"]
        counters = payload["counters"]
        self.env_steps = counters["env_steps"]
        self.episodes = self._episodes_counted = counters["episodes"]
        self.best_score = counters["best_score"]
        self.max_tile = counters["max_tile"]
        self.elapsed_s = counters["elapsed_s"]
        self.recent_scores.extend(payload["recent_scores"])
        self.metrics.clear()  # the history before this point is in the run store and log
        # but for the checkpoint's own row, which a resume records again (``RunStore.rewind``)
        self.checkpoint_row = dict(payload.get("metric_summary") or {}) or None
        if self.dist is None or self.dist.is_main:  # other ranks draw their own moves
            torch.set_rng_state(payload["rng"]["torch"])

    @classmethod
    def from_checkpoint(
        cls, path, dist: DistContext | None = None, teacher_source: str | None = None, **overrides
    ) -> Trainer:
        """A trainer that continues the run saved at ``path`` (a file, or a run folder for its
        latest file) toward the saved budget, on the saved game. ``overrides`` replace
        TrainerConfig fields: a new budget (for the whole run: ``max_seconds`` counts the time
        already spent), device, threads; a ``game`` other than the run's is a ValueError.
        ``teacher_source``: where a kickstarted run's teacher is now, if it moved
        (``Learner.config_with_teacher``); the run's later checkpoints keep the new place.
        """
        from .checkpoint import CheckpointError, learner_name
        from .learners.loading import load_checkpoint

        payload = load_checkpoint(path)
        name = learner_name(payload)
        learner_class = learners.get(name)
        game = saved_game(payload)
        if overrides.get("game", game) != game:
            raise ValueError(
                f"{path} is a run of {game}; a resumed run keeps its game: drop --game "
                f"{overrides['game']}, or start a new run"
            )
        try:
            config = TrainerConfig(
                learner=name,
                learner_config=learner_class.config_from_payload(payload),
                game=game,
                seed=payload["seed"],
                run_id=payload["run_id"],
                **payload.get("budget", {}),
            )
        except (TypeError, ValueError, KeyError) as error:
            raise CheckpointError(
                f"{path} holds a config this g2048lab cannot read: {error}"
            ) from None
        if teacher_source is not None:
            settings = learner_class.config_with_teacher(config.learner_config, teacher_source)
            config = replace(config, learner_config=settings)
        resumed_at = payload["counters"]["env_steps"]
        trainer = cls(replace(config, **overrides), dist=dist, resumed_at=resumed_at)
        trainer.load_state_dict(payload)
        return trainer


def saved_game(payload: dict[str, Any]) -> str:
    """The game a checkpoint's run played (2048 on 4x4 for files from before games)."""
    return payload.get("game") or games.DEFAULT
