"""The training loop: PPO on the MoE transformer, blocking or in a background thread.

``Trainer.run()`` blocks; ``start()`` runs the same loop in a daemon thread that
``pause()``, ``resume()``, ``stop()`` and ``join()`` control from any thread.
The trainer knows nothing of displays: it emits ``TrainingUpdate`` messages (at
most about twice a second, at least every 2 s while running, also in the middle
of a rollout) and per-iteration metrics to subscribers, in the style of
Stable-Baselines3's callbacks but with a typed context.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from .device import (
    memory_stats,
    ppo_sizes_for,
    resolve_preset,
    select_device,
    set_cpu_threads,
    steady_heap,
)
from .distributed import DistContext
from .env import RewardConfig, VecEnv
from .game import to_values
from .messages import TrainingUpdate
from .model import GameTransformer, ModelConfig
from .ppo import (
    PPOConfig,
    RolloutBuffer,
    RunningMeanStd,
    UpdateStats,
    compute_gae,
    learning_rate_at,
    normalize_advantages,
    ppo_update,
    sample_actions,
)
from .recording import GameRecorder
from .status import LIVE, Status
from .subscribers import Subscriber, TrainingContext, UpdateQueue

__all__ = ["Subscriber", "Trainer", "TrainerConfig", "TrainingContext", "UpdateQueue"]

MAX_ATTENTION_FLOATS = 16384  # every layer's attention in messages up to this size
MAX_FINISHED_GAMES = 256  # finished games listed in one message
# iteration rows kept in memory (``Trainer.metrics``); the run store and log.jsonl keep them all
MAX_METRIC_ROWS = 10_000


@dataclass(frozen=True)
class TrainerConfig:
    """One run's settings. ``ppo=None`` sizes the batches from the device (device.py).

    Budgets: ``total_env_steps`` and/or ``max_seconds`` (wall time spent running,
    pauses excluded); with neither the run goes on until ``stop()``.
    """

    preset: str = "auto"  # a name in model.PRESETS, or auto (device manager)
    model: ModelConfig | None = None  # overrides the preset when given
    ppo: PPOConfig | None = None
    reward: RewardConfig = field(default_factory=RewardConfig)
    device: str = "auto"  # auto | cpu | cuda[:N]
    threads: int | None = None  # torch CPU threads; None: cores - 1
    precision: str = "auto"  # auto | fp32 | bf16 (autocast); auto: bf16 on CUDA that has it
    seed: int = 0
    total_env_steps: int | None = None
    max_seconds: float | None = None
    run_id: str | None = None  # None: a fresh short id
    update_interval_s: float = 1.0  # target spacing of TrainingUpdate messages
    record_slots: int = 16  # env slots whose whole games are recorded for replay
    keep_best_games: int = 5
    keep_recent_games: int = 5

    def __post_init__(self) -> None:
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        for name in ("total_env_steps", "max_seconds"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive (or None for no limit), got {value}")
        if not 0.05 <= self.update_interval_s <= 2.0:
            raise ValueError("update_interval_s must be between 0.05 and 2 seconds")


class Trainer:
    """PPO training of a ``GameTransformer`` on ``VecEnv`` games; see the module docstring."""

    def __init__(self, config: TrainerConfig | None = None, dist: DistContext | None = None):
        """``dist``: this process's place in a torchrun group (``distributed.init_distributed``);
        None for a single process."""
        self.config = config = config or TrainerConfig()
        self.dist = dist
        self.run_id = config.run_id or uuid.uuid4().hex[:8]
        self.device = dist.device if dist else select_device(config.device)
        steady_heap()  # else a long CPU run's heap grows (device.py)
        self.threads = set_cpu_threads(config.threads) if self.device.type == "cpu" else None
        self.preset = resolve_preset(config.preset, self.device) if config.model is None else None
        self.model_config = config.model or ModelConfig.from_preset(self.preset)
        self.ppo = config.ppo or PPOConfig(**ppo_sizes_for(self.preset or "custom", self.device))
        self.autocast_dtype = self._autocast_dtype(config.precision)
        torch.manual_seed(config.seed)
        self.model = GameTransformer(self.model_config).to(self.device)
        # the module the update trains through: DDP averages gradients across ranks
        self.train_model: torch.nn.Module = self.model
        if dist:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)
            torch.manual_seed(config.seed + 7919 * dist.rank)  # each rank samples its own moves
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=self.ppo.learning_rate, eps=self.ppo.adam_eps
        )
        env_seed = config.seed + (1_000_003 * dist.rank if dist else 0)  # each rank its own games
        self.env = VecEnv(self.ppo.num_envs, seed=env_seed, reward=config.reward)
        self.buffer = RolloutBuffer.allocate(self.ppo.rollout_steps, self.ppo.num_envs, self.device)
        self.return_stats = RunningMeanStd()
        slots = min(config.record_slots, self.ppo.num_envs)
        self.recorder = GameRecorder(slots, config.keep_best_games, config.keep_recent_games)
        self.updates = UpdateQueue()
        self.subscribers: list[Subscriber] = [self.updates]
        # one row per iteration, the latest MAX_METRIC_ROWS (bounded: a run may last days)
        self.metrics: deque[dict[str, float]] = deque(maxlen=MAX_METRIC_ROWS)
        # counters (a checkpoint restores these)
        self.iteration = 0
        self.env_steps = 0
        self.episodes = 0
        self._episodes_counted = 0  # all ranks' games, at the last iteration's end
        self.best_score = 0
        self.max_tile = 0
        self.elapsed_s = 0.0
        self.minibatch_size = self.ppo.minibatch_size
        self.recent_scores: deque[int] = deque(maxlen=100)
        # thread control
        self._state = Status.IDLE
        self._lock = threading.Lock()
        self._resumed = threading.Condition(self._lock)
        self._stop_requested = False
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.error_traceback: str | None = None
        # live view
        self._obs: dict[str, np.ndarray] | None = None
        self._shown_probs = np.full(4, 0.25, dtype=np.float32)
        self._shown_value: float | None = None
        self._last_usage: torch.Tensor | None = None
        self._last_stats: UpdateStats | None = None
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
        if self._obs is None:
            self._obs, _ = self.env.reset()
        while self._next_iteration():
            rollout_start = time.perf_counter()
            if not self._rollout():
                break
            update_start = time.perf_counter()
            stats = self._update()
            self.iteration += 1
            if self.dist:
                self._reduce_counters()
            self._record_iteration(
                stats, update_start - rollout_start, time.perf_counter() - update_start
            )

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

    def _rollout(self) -> bool:
        """Play ``rollout_steps`` moves in every game into the buffer. False if stopped."""
        buf, ppo, device = self.buffer, self.ppo, self.device
        slots = self.recorder.slots
        rec = {
            "boards": np.empty((ppo.rollout_steps, slots, 4, 4), np.uint8),
            "actions": np.empty((ppo.rollout_steps, slots), np.int64),
            "probs": np.empty((ppo.rollout_steps, slots, 4), np.float32),
            "values": np.empty((ppo.rollout_steps, slots), np.float32),
            "rewards": np.empty((ppo.rollout_steps, slots), np.float32),
            "score_gains": np.empty((ppo.rollout_steps, slots), np.int64),
            "dones": np.zeros((ppo.rollout_steps, slots), np.bool_),
        }
        final_boards: dict[tuple[int, int], np.ndarray] = {}
        obs = self._obs
        self.model.eval()
        for t in range(ppo.rollout_steps):
            if not self._tick():
                return False
            boards = torch.from_numpy(obs["board"]).to(device)
            masks = torch.from_numpy(obs["action_mask"]).to(device)
            with torch.inference_mode(), self._autocast():
                out = self.model(boards, masks)
                actions, logprobs, probs = sample_actions(out.logits)
                values = out.value.float() * self.return_stats.std + self.return_stats.mean
            actions_np = actions.cpu().numpy()
            next_obs, rewards, terminated, _, info = self.env.step(actions_np)
            buf.boards[t] = boards
            buf.masks[t] = masks
            buf.actions[t] = actions
            buf.logprobs[t] = logprobs
            buf.values[t] = values
            buf.rewards[t] = torch.from_numpy(rewards).to(device)
            buf.dones[t] = torch.from_numpy(terminated).to(device)
            probs_np = probs[:slots].float().cpu().numpy()
            rec["boards"][t] = obs["board"][:slots]
            rec["actions"][t] = actions_np[:slots]
            rec["probs"][t] = probs_np
            rec["values"][t] = values[:slots].cpu().numpy()
            rec["rewards"][t] = rewards[:slots]
            rec["score_gains"][t] = info["score_gain"][:slots]
            rec["dones"][t] = terminated[:slots]
            for slot in np.flatnonzero(terminated[:slots]):
                final_boards[(t, int(slot))] = info["final_board"][slot]
            self._count_games(terminated, info)
            self.env_steps += ppo.num_envs * (self.dist.world_size if self.dist else 1)
            self._shown_probs = probs_np[0]
            self._shown_value = float(values[0])
            self._last_usage = out.expert_usage
            obs = next_obs
            self._obs = obs
        for game in self.recorder.add_rollout(
            rec["boards"],
            rec["actions"],
            rec["probs"],
            rec["values"],
            rec["rewards"],
            rec["score_gains"],
            rec["dones"],
            final_boards,
            self.env_steps,
            self.iteration,
        ):
            self._notify("on_game", game)
        return True

    def _count_games(self, terminated: np.ndarray, info: dict[str, Any]) -> None:
        if not terminated.any():
            return
        scores = info["episode"]["score"][terminated]
        tiles = info["episode"]["max_tile"][terminated]
        self._finished.extend(zip(scores.tolist(), tiles.tolist()))
        self.episodes += int(terminated.sum())
        self.recent_scores.extend(int(s) for s in scores)
        self.best_score = max(self.best_score, int(scores.max()))
        self.max_tile = max(self.max_tile, int(info["episode"]["max_tile"][terminated].max()))

    def _reduce_counters(self) -> None:
        """Games finished on every rank this iteration; best score and tile of any rank."""
        (new_games,) = self.dist.reduce([float(self.episodes - self._episodes_counted)], "sum")
        self.episodes = self._episodes_counted + int(new_games)
        self._episodes_counted = self.episodes
        best, tile = self.dist.reduce([float(self.best_score), float(self.max_tile)], "max")
        self.best_score, self.max_tile = int(best), int(tile)

    def _update(self) -> UpdateStats:
        """GAE over the rollout, then the PPO epochs."""
        buf, ppo = self.buffer, self.ppo
        progress = self._progress()
        lr = learning_rate_at(ppo, progress)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.inference_mode():
            boards = torch.from_numpy(self._obs["board"]).to(self.device)
            masks = torch.from_numpy(self._obs["action_mask"]).to(self.device)
            with self._autocast():
                last = self.model(boards, masks).value.float()
            last_values = last * self.return_stats.std + self.return_stats.mean
            advantages, returns = compute_gae(
                buf.rewards, buf.values, buf.dones, last_values, ppo.gamma, ppo.gae_lambda
            )
        if ppo.normalize_values:
            if self.dist:
                n = returns.numel()
                total, squares, count = self.dist.reduce(
                    [returns.sum().item(), returns.pow(2).sum().item(), float(n)]
                )
                mean = total / count
                self.return_stats.update_moments(mean, squares / count - mean**2, count)
            else:
                self.return_stats.update(returns)
            scale, shift = self.return_stats.std, self.return_stats.mean
        else:
            scale, shift = 1.0, 0.0
        flat_adv = advantages.reshape(-1)
        batch = {
            "boards": buf.boards.reshape(-1, 4, 4),
            "masks": buf.masks.reshape(-1, 4),
            "actions": buf.actions.reshape(-1),
            "logprobs": buf.logprobs.reshape(-1),
            "values": ((buf.values - shift) / scale).reshape(-1),
            "returns": ((returns - shift) / scale).reshape(-1),
            "advantages": normalize_advantages(flat_adv) if ppo.normalize_advantages else flat_adv,
        }
        batch = {k: v.clone() for k, v in batch.items()}  # leave inference mode's tensors
        self.model.train()
        stats = ppo_update(
            self.train_model,
            self.optimizer,
            batch,
            ppo,
            self.minibatch_size,
            on_minibatch=self._tick,
            autocast_dtype=self.autocast_dtype,
            reduce=self.dist.reduce if self.dist else None,
        )
        self.model.eval()
        self.minibatch_size = stats.minibatch_size
        self._events.extend(stats.events)
        self._last_stats = stats
        return stats

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

    def _record_iteration(self, stats: UpdateStats, rollout_s: float, update_s: float) -> None:
        memory = memory_stats(self.device)
        row = {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "time/elapsed_s": self._elapsed(),
            "time/steps_per_s": self._steps_per_second(),
            "time/rollout_s": rollout_s,
            "time/update_s": update_s,
            "rollout/score_mean": float(np.mean(self.recent_scores))
            if self.recent_scores
            else None,
            "rollout/best_score": self.best_score,
            "rollout/max_tile": self.max_tile,
            "train/loss": stats.loss,
            "train/policy_loss": stats.policy_loss,
            "train/value_loss": stats.value_loss,
            "train/entropy": stats.entropy,
            "train/aux_loss": stats.aux_loss,
            "train/approx_kl": stats.approx_kl,
            "train/clip_fraction": stats.clip_fraction,
            "train/learning_rate": self.optimizer.param_groups[0]["lr"],
            "train/minibatch_size": stats.minibatch_size,
            "train/skipped_minibatches": stats.skipped,
            "memory/gpu_gb": memory.cuda_allocated,
            "memory/rss_gb": memory.process_rss,
        }
        self.metrics.append(row)
        self._notify("on_iteration", row)

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
        stats = self._last_stats
        obs = self._obs
        board = obs["board"][0] if obs is not None else np.zeros((4, 4), np.uint8)
        attention = attention_layers = None
        if obs is not None:
            was_training = self.model.training  # messages are also sent between minibatches
            self.model.eval()
            with torch.inference_mode():
                out = self.model(
                    torch.from_numpy(board[None]).to(self.device),
                    torch.from_numpy(obs["action_mask"][:1]).to(self.device),
                    return_attention=True,
                )
            self.model.train(was_training)
            layers = out.attention[:, 0].float().cpu().numpy().round(4)  # (L, heads, 16, 16)
            attention = layers[-1].tolist()
            if layers.size <= MAX_ATTENTION_FLOATS:
                attention_layers = layers.tolist()
        usage = (
            self._last_usage if stats is None or stats.expert_usage is None else stats.expert_usage
        )
        memory = memory_stats(self.device)
        events, self._events = self._events, []
        finished, self._finished = self._finished, []
        if len(finished) > MAX_FINISHED_GAMES:  # an even sample keeps the message small
            step = len(finished) / MAX_FINISHED_GAMES
            finished = [finished[int(i * step)] for i in range(MAX_FINISHED_GAMES)]

        def maybe(value: float | None) -> float | None:
            return None if stats is None or stats.minibatches == 0 else float(value)

        return TrainingUpdate(
            run_id=self.run_id,
            iteration=self.iteration,
            episode=self.episodes,
            env_steps=self.env_steps,
            score=float(np.mean(self.recent_scores)) if self.recent_scores else None,
            max_tile=self.max_tile,
            loss=maybe(stats and stats.loss),
            policy_loss=maybe(stats and stats.policy_loss),
            value_loss=maybe(stats and stats.value_loss),
            entropy=maybe(stats and stats.entropy),
            learning_rate=float(self.optimizer.param_groups[0]["lr"]),
            actions=[float(p) for p in self._shown_probs],
            board_state=to_values(board).tolist(),
            attention_weights=attention,
            expert_usage=usage.float().cpu().numpy().round(4).tolist() if usage is not None else [],
            gpu_memory=memory.cuda_allocated,
            model_params=self.model.num_params().total / 1e6,
            steps_per_second=self._steps_per_second(),
            timestamp=time.time(),
            status=self._state.value,
            value=self._shown_value,
            aux_loss=maybe(stats and stats.aux_loss),
            best_score=self.best_score,
            elapsed_s=self._elapsed(),
            process_memory=memory.process_rss,
            minibatch_size=self.minibatch_size,
            events=events,
            finished_games=[list(game) for game in finished],
            attention_layers=attention_layers,
        )

    def _notify(self, method: str, payload: Any) -> None:
        context = self._context()
        for subscriber in list(self.subscribers):
            if getattr(subscriber, method)(payload, context) is False:
                self.stop()

    def _context(self) -> TrainingContext:
        return TrainingContext(
            self, self.run_id, self.iteration, self.env_steps, self.episodes, self._elapsed()
        )

    def _set_state(self, state: Status) -> None:
        self._state = Status(state)

    # --- checkpoints --------------------------------------------------------------------

    def note(self, event: str) -> None:
        """Add a line to the ``events`` of the next message (e.g. "checkpoint saved")."""
        self._events.append(event)

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue as this one would: configs, weights,
        optimiser, counters, RNG states and the games in play (tensors and plain containers,
        loadable with ``torch.load(weights_only=True)``)."""
        from . import __version__

        env = self.env.state_dict()
        rng = {"torch": torch.get_rng_state(), "env": env.pop("rng")}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "g2048lab_version": __version__,
            "torch_version": str(torch.__version__),
            "device": str(self.device),
            "world_size": self.dist.world_size if self.dist else 1,
            "saved_at": time.time(),
            "run_id": self.run_id,
            "preset": self.preset,
            "seed": self.config.seed,
            "budget": {
                "total_env_steps": self.config.total_env_steps,
                "max_seconds": self.config.max_seconds,
            },
            "model_config": asdict(self.model_config),
            "ppo_config": asdict(self.ppo),
            "reward_config": asdict(self.config.reward),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "iteration": self.iteration,
            "counters": {
                "env_steps": self.env_steps,
                "episodes": self.episodes,
                "best_score": self.best_score,
                "max_tile": self.max_tile,
                "elapsed_s": self._elapsed(),
                "minibatch_size": self.minibatch_size,
            },
            "recent_scores": list(self.recent_scores),
            "return_stats": asdict(self.return_stats),
            "rng": rng,
            "env": {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in env.items()},
            "obs": {k: torch.from_numpy(v.copy()) for k, v in self._obs.items()}
            if self._obs
            else None,
            "metric_summary": self.metrics[-1] if self.metrics else {},
        }

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        """Continue from ``state_dict()``'s output (a loaded checkpoint)."""
        from .checkpoint import CheckpointError

        try:
            self.model.load_state_dict(payload["model"])
        except RuntimeError:
            raise CheckpointError(
                f"the checkpoint's model ({_describe(payload['model_config'])}) does not fit this "
                f"trainer's ({_describe(asdict(self.model_config))}); resume with "
                "Trainer.from_checkpoint, which builds the saved architecture"
            ) from None
        self.optimizer.load_state_dict(payload["optimizer"])
        self.run_id = payload["run_id"]
        self.iteration = payload["iteration"]
        counters = payload["counters"]
        self.env_steps = counters["env_steps"]
        self.episodes = self._episodes_counted = counters["episodes"]
        self.best_score = counters["best_score"]
        self.max_tile = counters["max_tile"]
        self.elapsed_s = counters["elapsed_s"]
        self.minibatch_size = counters["minibatch_size"]
        self.recent_scores.extend(payload["recent_scores"])
        self.return_stats = RunningMeanStd(**payload["return_stats"])
        self.metrics.clear()  # the history before this point is in the run store and log
        if self.dist is not None and not self.dist.is_main:
            # the file holds one process's games and RNG: other ranks play their own
            torch.manual_seed(self.config.seed + 7919 * self.dist.rank + self.iteration)
            return
        torch.set_rng_state(payload["rng"]["torch"])
        if "cuda" in payload["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(payload["rng"]["cuda"], self.device)
        env = {k: v.numpy() for k, v in payload["env"].items()}
        self.env.load_state_dict({**env, "rng": payload["rng"]["env"]})
        if payload["obs"] is not None:
            self._obs = {k: v.numpy().copy() for k, v in payload["obs"].items()}

    @classmethod
    def from_checkpoint(cls, path, dist: DistContext | None = None, **overrides) -> Trainer:
        """A trainer that continues the run saved at ``path`` (a file, or a run folder for its
        latest file) toward the saved budget. ``overrides`` replace TrainerConfig fields: a new
        budget (for the whole run: ``max_seconds`` counts the time already spent), device,
        threads.
        """
        from .checkpoint import CheckpointError, load_checkpoint

        payload = load_checkpoint(path)
        try:
            config = TrainerConfig(
                preset=payload["preset"] or "auto",
                model=ModelConfig(**payload["model_config"]),
                ppo=PPOConfig(**payload["ppo_config"]),
                reward=RewardConfig(**payload["reward_config"]),
                seed=payload["seed"],
                run_id=payload["run_id"],
                **payload.get("budget", {}),
            )
        except (TypeError, ValueError, KeyError) as error:
            raise CheckpointError(
                f"{path} holds a config this g2048lab cannot read: {error}"
            ) from None
        trainer = cls(replace(config, **overrides), dist=dist)
        trainer.load_state_dict(payload)
        return trainer

    # --- precision ---------------------------------------------------------------------

    def _autocast_dtype(self, precision: str) -> torch.dtype | None:
        if precision == "bf16":
            return torch.bfloat16
        if precision == "auto" and self.device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None

    def _autocast(self):
        return torch.autocast(
            self.device.type,
            dtype=self.autocast_dtype or torch.bfloat16,
            enabled=self.autocast_dtype is not None,
        )


def _describe(model_config: dict) -> str:
    keys = ("d_model", "n_heads", "n_layers", "n_experts", "top_k", "d_expert")
    return ", ".join(f"{k}={model_config.get(k)}" for k in keys)
