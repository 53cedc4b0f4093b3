"""The first learner: PPO on the Mixture-of-Experts ``GameTransformer`` (``--learner ppo``).

Each iteration plays ``rollout_steps`` moves in ``num_envs`` parallel games (a tick per
move), then learns from them with GAE and the PPO epochs (a tick per minibatch). Runs
under torchrun (DDP), halves its minibatch on out-of-memory, uses bf16 autocast on CUDA.
Its settings are a ``PPOLearnerConfig`` (ppo_config.py), the run's ``learner_config``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from ... import games
from ...device import check_fits, ppo_sizes_for, resolve_preset
from ...engine.env import RewardConfig, VecEnv
from ...model import PRESETS, GameTransformer, ModelConfig
from ...model.memory import ppo_training_bytes
from .. import register
from ..base import Learner, LearnerSetup, LearnerView, RunHooks
from .agent import TransformerAgent
from .algorithm import (
    MIN_MINIBATCH,
    PPOConfig,
    RolloutBuffer,
    RunningMeanStd,
    UpdateStats,
    action_logprobs,
    compute_gae,
    learning_rate_at,
    normalize_advantages,
    ppo_update,
    sample_actions,
)
from .kickstart import (
    TeacherConfig,
    check_teacher_value_units,
    load_teacher,
    repoint_teacher,
    run_teacher,
    teacher_value_targets,
    teacher_value_weight,
    teacher_weight,
)
from .ppo_config import FLAGS, PPOLearnerConfig, config_from_flags, config_from_payload
from .rollout import PENDING_SHAPES, Actor, Rollout, pending_rollout, pending_state
from .starts import StartConfig, StartStates, start_shares, teacher_starts
from .update_threads import UpdateThreads

__all__ = ["PPOLearner"]

MAX_ATTENTION_FLOATS = 16384  # every layer's attention in messages up to this size

# the games in play, one row per env slot: per-game shape of each tensor ("board": the
# board's (rows, cols), which the model's config records)
GAME_SHAPES: dict[str, tuple[int, ...] | str] = {
    "env.boards": "board",
    "env.action_mask": (4,),
    "env.score": (),
    "env.length": (),
    "env.max_exponent": (),
    "obs.board": "board",
    "obs.action_mask": (4,),
}

SETTINGS = {
    "model_config": ModelConfig,
    "ppo_config": PPOConfig,
    "reward_config": RewardConfig,
    "return_stats": RunningMeanStd,
    "teacher_config": TeacherConfig,
    "start_config": StartConfig,
}
"""Fields that hold a dataclass's fields; a missing one takes its default."""


def _fields(ck) -> dict:
    """The PPO learner's checkpoint fields (checkpoint.RUN_FIELDS has the run's)."""
    return {
        "preset": ck.TEXT_OR_NONE,
        "model_config": ck.DICT,
        "ppo_config": ck.DICT,
        "reward_config": ck.DICT,
        "model": ck.TENSORS,
        "optimizer": ck.DICT,
        "optimizer.state": ck.DICT,
        "optimizer.param_groups": ck.LIST,
        "counters.minibatch_size": ck.POSITIVE,
        "return_stats": ck.DICT,
        "teacher_config": ck.optional(ck.DICT_OR_NONE),  # absent before kickstarting existed
        "rng.cuda": ck.optional(ck.BYTES),  # only in files saved on a GPU
        "rng.actor": ck.optional(ck.BYTES),  # only with --ppo.overlap
        "pending": ck.optional(ck.DICT_OR_NONE),  # --ppo.overlap: the rollout not learned yet
        "start_config": ck.optional(ck.DICT),  # absent before start states existed
        "starts": ck.optional(ck.DICT),  # with --start.*: snapshots, buffer, codes, generator
        "rng.env": ck.DICT,
        "env": ck.DICT,
        "obs": ck.DICT_OR_NONE,  # None before the first rollout
        **{name: ck.TENSOR for name in GAME_SHAPES},
    }


@register
class PPOLearner(Learner):
    """PPO on the MoE transformer; see the module docstring."""

    name = "ppo"
    config_class = PPOLearnerConfig
    flags = FLAGS
    presets = (*PRESETS, "auto")
    distributed = True
    kickstarts = True
    metrics = {
        "train/loss": "PPO's total loss, mean over the update's minibatches",
        "train/policy_loss": "clipped surrogate policy loss",
        "train/value_loss": "value loss, in units of the returns' running std",
        "train/entropy": "policy entropy, nats",
        "train/aux_loss": "MoE load-balancing loss (1.0 when balanced)",
        "train/approx_kl": "approximate KL between the rollout's and the updated policy",
        "train/clip_fraction": "share of samples whose policy ratio was clipped",
        "train/learning_rate": "Adam's learning rate",
        "train/minibatch_size": "samples per minibatch, after any out-of-memory halving",
        "train/skipped_minibatches": "minibatches skipped for a non-finite loss or gradient",
        "train/rollout_s": "wall time of the iteration's rollout, seconds",
        "train/update_s": "wall time of the iteration's update (GAE and the epochs), seconds",
        "teacher/weight": "the distillation loss's weight now (kickstart.py), with a teacher",
        "teacher/distill_loss": "KL(teacher || student) over the update's boards, nats",
        "teacher/agreement": "share of the update's boards where the student's best move "
        "is the teacher's",
        "teacher/value_weight": "the value regression's weight now (kickstart.py), with a "
        "teacher's values",
        "teacher/value_loss": "0.5 * mean squared error of the value head to the teacher's "
        "value, in units of the returns' running std",
        "start/own_share": "share of new training games begun from the restart buffer",
        "start/teacher_share": "share of new training games begun from a teacher's board now",
        "start/buffer_boards": "boards in the restart buffer (its own longer games' endings)",
        "start/restarted_games": "training games that ended this iteration having begun away "
        "from the normal start (not in the rollout/ metrics)",
        "start/restart_score_mean": "mean final score of those games, their start's score included",
        "start/restart_2048": "share of those games that reached 2048",
    }

    def __init__(self, config, setup: LearnerSetup):
        super().__init__(config, setup)
        settings: PPOLearnerConfig = self.settings
        self.device = device = setup.device
        dist = setup.dist
        preset = resolve_preset(settings.preset, device)
        self.game = game = setup.game
        board = {"rows": game.rows, "cols": game.cols}  # the model reads the game's board
        self.model_config = replace(settings.model or ModelConfig.from_preset(preset), **board)
        # a preset's name as long as the model is that preset's (a resumed run's is)
        if self.model_config.vocab_size <= game.max_exponent:
            raise ValueError(
                f"--model.vocab-size {self.model_config.vocab_size} is too small for "
                f"{game.name}: its tiles reach 2**{game.max_exponent}; use at least "
                f"{game.max_exponent + 1}"
            )
        named = PRESETS.get(preset)
        self.preset = preset if named and self.model_config == replace(named, **board) else None
        self.ppo = settings.ppo or PPOConfig(**ppo_sizes_for(preset, device))
        _check_memory(self.model_config, self.ppo, device)
        self.autocast_dtype = _autocast_dtype(settings.precision, device)
        torch.manual_seed(setup.seed)
        self.model = GameTransformer(self.model_config).to(device)
        # the module the update trains through: DDP averages gradients across ranks
        self.train_model: torch.nn.Module = self.model
        if dist:
            ids = [device.index] if device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)
            torch.manual_seed(setup.seed + 7919 * dist.rank)  # each rank samples its own moves
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=self.ppo.learning_rate, eps=self.ppo.adam_eps
        )
        env_seed = setup.seed + (1_000_003 * dist.rank if dist else 0)  # each rank its own games
        self._world = dist.world_size if dist else 1
        # under torchrun every rank must update in step: the rollout stays before the update
        self.overlap = self.ppo.overlap and dist is None
        self.env = VecEnv(self.ppo.num_envs, seed=env_seed, reward=settings.reward, game=game)
        check_teacher_value_units(settings.teacher, settings.reward, self.ppo.gamma)
        # none once its weights have annealed to 0: a resumed student needs no teacher then
        self.teacher = run_teacher(settings.teacher, device, setup.env_steps)
        self.starts = self._start_states(settings.start, env_seed)
        # overlapped: the actor fills one buffer while the update reads the other
        self.buffers = [
            RolloutBuffer.allocate(
                self.ppo.rollout_steps,
                self.ppo.num_envs,
                device,
                teacher=self.teacher is not None,
                board=game.shape,
                teacher_values=self.teacher is not None and self.settings.teacher.value_weight > 0,
            )
            for _ in range(2 if self.overlap else 1)
        ]
        self._pending: Rollout | None = None  # overlapped: played, not yet learned from
        self.actor_model: GameTransformer | None = None  # overlapped: the actor's copy
        self._actor_rng: torch.Generator | None = None  # overlapped: the actor's sampling
        if self.overlap:
            self.actor_model = GameTransformer(self.model_config).to(device)
            self.actor_model.load_state_dict(self.model.state_dict())
            self._actor_rng = torch.Generator(device).manual_seed(setup.seed + 104_729)
        self._recorded_slots = 0
        self.update_threads = _update_threads(self.ppo, device, dist, setup.threads)
        self._threads = None  # the update's worker threads, with more than one
        if self.update_threads > 1:
            self._threads = UpdateThreads(self.model, self.update_threads)
        self._distill_coef = 0.0  # this iteration's teacher weight
        self._value_distill_coef = 0.0  # this iteration's teacher value weight
        self.return_stats = RunningMeanStd()
        self.minibatch_size = self.ppo.minibatch_size
        self._obs: dict[str, np.ndarray] | None = None
        self._shown_probs = np.full(4, 0.25, dtype=np.float32)
        self._shown_value: float | None = None
        self._last_usage: torch.Tensor | None = None
        self._last_stats: UpdateStats | None = None

    @property
    def parallel_games(self) -> int:
        return self.ppo.num_envs

    def describe(self) -> str:
        params = self.model.num_params()
        text = (
            f"ppo: preset {self.preset or 'custom'} ({params.total / 1e6:.2f} M parameters, "
            f"{params.active / 1e6:.2f} M active), {self.ppo.num_envs} games"
        )
        if self.teacher is not None:
            t = self.settings.teacher
            text += (
                f"; taught by {self.teacher.describe()} (weight {t.weight:g}"
                + (f", value weight {t.value_weight:g}" if t.value_weight else "")
                + f" falling to 0 over {t.anneal_steps:,} env steps)"
            )
        elif self.settings.teacher is not None:
            text += "; its teacher's weight is 0 from here on, so the teacher is not loaded"
        start = self.settings.start
        if start.own_share > 0:
            text += f"; {start.own_share:.0%} of new games begin from its own longer games' boards"
        if start.teacher_share > 0:
            text += (
                f"; {start.teacher_share:.0%} from the teacher's boards, falling to 0 over "
                f"{start.teacher_anneal_steps:,} env steps"
            )
        if self.overlap:
            text += "; the next rollout plays beside the update (actor thread"
            text += ", decoupled PPO)" if self.ppo.decoupled else ")"
        if self.update_threads > 1:
            text += f"; each minibatch on {self.update_threads} threads"
        return text

    def _start_states(self, config: StartConfig, seed: int) -> StartStates | None:
        """Where new training games begin; None: always the normal start."""
        if not config.enabled:
            return None
        boards = None
        if start_shares(config, self.setup.env_steps)[1] > 0:
            teacher = self.teacher or load_teacher(self.settings.teacher.source, self.device)
            boards = teacher_starts(teacher, self.game, config.teacher_games, seed + 7)
        return StartStates(config, self.ppo.num_envs, self.game.shape, seed, 0, boards)

    def config_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "model": asdict(self.model_config),
            "ppo": asdict(self.ppo),
            "reward": asdict(self.settings.reward),
            "teacher": asdict(self.settings.teacher) if self.settings.teacher else None,
            "start": asdict(self.settings.start),
            # what ran, where it differs from what was asked: the update threads the cores
            # held (ppo.update_threads caps it) and whether the actor thread plays
            "ran": {"update_threads": self.update_threads, "overlap": self.overlap},
        }

    def agent(self) -> TransformerAgent:
        return TransformerAgent(
            self.model, self.return_stats, self.ppo.gamma, self.settings.reward, self.game
        )

    # --- one iteration -----------------------------------------------------------------

    def iterate(self, hooks: RunHooks) -> dict[str, float | None] | None:
        if self._obs is None:
            self._obs, _ = self.env.reset()
        if self.overlap:
            return self._iterate_overlapped(hooks)
        start = time.perf_counter()
        self._recorded_slots = hooks.recorder.slots
        rollout = self._play(self.model, self.buffers[0], hooks.tick, *self._teaching_now(hooks))
        rollout.report(hooks)
        if not rollout.complete:
            return None
        update_start = time.perf_counter()
        stats = self._update(hooks, rollout)
        return self._row(stats, rollout, update_start - start, time.perf_counter() - update_start)

    def _iterate_overlapped(self, hooks: RunHooks) -> dict[str, float | None] | None:
        """The actor plays the next rollout with the weights of the last update while this
        thread learns from the rollout before it; then the actor takes the new weights."""
        start = time.perf_counter()
        self._recorded_slots = hooks.recorder.slots
        pending = self._pending.buffer if self._pending is not None else None
        buffer = next(b for b in self.buffers if b is not pending)
        teaching = self._teaching_now(hooks)
        values = (self.return_stats.mean, self.return_stats.std)

        def play(keep_going):
            return self._play(
                self.actor_model, buffer, keep_going, *teaching, self._actor_rng, values
            )

        actor = Actor(play).start()
        stats = update_s = None
        learned = False  # the update ran to its end (or there was none)
        try:
            if self._pending is not None:
                stats = self._update(_HeldHooks(hooks, actor), self._pending)
                update_s = time.perf_counter() - start
            learned = stats is None or not stats.interrupted
        finally:
            if not learned:  # stopped, or raised: the actor stops at its next move
                actor.stop()
            rollout = actor.wait(hooks.tick, hooks.pausing)
            rollout.report(hooks)
        if not (learned and rollout.complete):
            self._pending = None  # learned in part, or played in part: a resumed run replays
            return None
        self._pending = rollout
        self.actor_model.load_state_dict(self.model.state_dict())
        return self._row(stats, rollout, time.perf_counter() - start, update_s)

    def _teaching_now(self, hooks: RunHooks) -> tuple[int, float, float]:
        """(env steps so far, the teacher's policy weight, its value weight) now."""
        steps = hooks.position()[0]
        if self.teacher is None:
            return steps, 0.0, 0.0
        teacher = self.settings.teacher
        return steps, teacher_weight(teacher, steps), teacher_value_weight(teacher, steps)

    def _row(
        self, stats: UpdateStats | None, rollout: Rollout, rollout_s: float, update_s: float | None
    ) -> dict[str, float | None]:
        """The iteration's metrics; ``stats`` None: nothing learned yet (the first rollout
        of an overlapped run)."""

        def stat(name):
            return None if stats is None else getattr(stats, name)

        row = {
            "train/rollout_s": rollout_s,
            "train/update_s": update_s,
            **{
                f"train/{name}": stat(name)
                for name in (
                    "loss",
                    "policy_loss",
                    "value_loss",
                    "entropy",
                    "aux_loss",
                    "approx_kl",
                    "clip_fraction",
                    "minibatch_size",
                )
            },
            "train/learning_rate": self.optimizer.param_groups[0]["lr"],
            "train/skipped_minibatches": stat("skipped"),
            **rollout.extra,
        }
        teacher = self.settings.teacher
        if teacher is not None:
            row["teacher/weight"] = self._distill_coef
            row["teacher/distill_loss"] = stat("distill_loss")
            row["teacher/agreement"] = stat("agreement")
            if teacher.value_weight > 0:
                row["teacher/value_weight"] = self._value_distill_coef
                row["teacher/value_loss"] = stat("value_distill_loss")
        return row

    def _play(
        self,
        model: GameTransformer,
        buf: RolloutBuffer,
        keep_going: Callable[[], bool],
        env_steps: int,
        distill_coef: float,
        value_coef: float,
        generator: torch.Generator | None = None,
        return_stats: tuple[float, float] | None = None,
    ) -> Rollout:
        """Play ``rollout_steps`` moves in every game into ``buf`` with ``model``, sampling
        with ``generator`` (None: torch's global one) and valuing in return units by
        ``return_stats`` (mean, std; None: the learner's now); the run is at ``env_steps``.
        The teacher's probabilities are stored when ``distill_coef`` > 0, its values when
        ``value_coef`` > 0. Stops early once ``keep_going()`` is False. Touches no run hook:
        ``Rollout.report`` tells the run."""
        ppo, device, starts = self.ppo, self.device, self.starts
        mean, std = return_stats or (self.return_stats.mean, self.return_stats.std)
        slots = self._recorded_slots
        rollout = Rollout(buf, distill_coef, value_coef=value_coef)
        restarted: list[tuple[np.ndarray, np.ndarray]] = []  # (scores, tiles) per step
        if starts is not None:
            starts.protected = slots  # replays show whole games from the normal start
        rec = rollout.recording = {
            "boards": np.empty((ppo.rollout_steps, slots, *self.game.shape), np.uint8),
            "actions": np.empty((ppo.rollout_steps, slots), np.int64),
            "probs": np.empty((ppo.rollout_steps, slots, 4), np.float32),
            "values": np.empty((ppo.rollout_steps, slots), np.float32),
            "rewards": np.empty((ppo.rollout_steps, slots), np.float32),
            "score_gains": np.empty((ppo.rollout_steps, slots), np.int64),
            "dones": np.zeros((ppo.rollout_steps, slots), np.bool_),
        }
        obs = self._obs
        model.eval()
        for t in range(ppo.rollout_steps):
            if not keep_going():
                return rollout
            boards = torch.from_numpy(obs["board"]).to(device)
            masks = torch.from_numpy(obs["action_mask"]).to(device)
            with torch.inference_mode(), self._autocast():
                out = model(boards, masks)
                if torch.isnan(out.logits).any():  # sampling would pick illegal moves
                    raise RuntimeError(self._diverged("the policy's move scores are NaN"))
                actions, logprobs, probs = sample_actions(out.logits, generator)
                values = out.value.float() * std + mean
            actions_np = actions.cpu().numpy()
            if distill_coef > 0:
                taught = self.teacher.move_probs(
                    obs["board"], obs["action_mask"], self.settings.teacher.temperature
                )
                buf.teacher_probs[t] = torch.from_numpy(taught).to(device)
            if value_coef > 0:
                valued = self.teacher.board_values(obs["board"], obs["action_mask"])
                buf.teacher_values[t] = torch.from_numpy(valued).to(device)
            if starts is not None:
                starts.before_step(obs["board"], self.env.scores)
            next_obs, rewards, terminated, _, info = self.env.step(actions_np)
            normal = terminated
            if starts is not None:
                steps_now = env_steps + (t + 1) * ppo.num_envs * self._world
                normal = starts.after_step(self.env, terminated, steps_now)
                if terminated.any():  # some of the new games may begin elsewhere
                    next_obs = self.env.observation()
                away = terminated & ~normal
                if away.any():
                    episode = info["episode"]
                    restarted.append((episode["score"][away], episode["max_tile"][away]))
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
                rollout.final_boards[(t, int(slot))] = info["final_board"][slot]
            episode = info["episode"]
            rollout.played.append(
                (ppo.num_envs, episode["score"][normal], episode["max_tile"][normal])
            )
            rollout.steps = t + 1
            self._shown_probs = probs_np[0]
            self._shown_value = float(values[0])
            self._last_usage = out.expert_usage
            obs = next_obs
            self._obs = obs
        with torch.inference_mode(), self._autocast():
            boards = torch.from_numpy(obs["board"]).to(device)
            masks = torch.from_numpy(obs["action_mask"]).to(device)
            rollout.last_values = model(boards, masks).value.float() * std + mean
        if starts is not None:
            rollout.extra = _start_metrics(starts, env_steps, restarted)
        return rollout

    def _update(self, hooks: RunHooks, rollout: Rollout) -> UpdateStats:
        """GAE over the rollout, then the PPO epochs."""
        buf, ppo, dist = rollout.buffer, self.ppo, self.setup.dist
        self._distill_coef = rollout.distill_coef
        self._value_distill_coef = rollout.value_coef
        lr = learning_rate_at(ppo, hooks.progress())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.inference_mode():
            advantages, returns = compute_gae(
                buf.rewards, buf.values, buf.dones, rollout.last_values, ppo.gamma, ppo.gae_lambda
            )
        if ppo.normalize_values:
            if dist:
                n = returns.numel()
                total, squares, count = dist.reduce(
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
            "boards": buf.boards.reshape(-1, *self.game.shape),
            "masks": buf.masks.reshape(-1, 4),
            "actions": buf.actions.reshape(-1),
            "logprobs": buf.logprobs.reshape(-1),
            "values": ((buf.values - shift) / scale).reshape(-1),
            "returns": ((returns - shift) / scale).reshape(-1),
            "advantages": normalize_advantages(flat_adv) if ppo.normalize_advantages else flat_adv,
        }
        if self._distill_coef > 0:
            batch["teacher_probs"] = buf.teacher_probs.reshape(-1, 4)
        if self._value_distill_coef > 0:
            batch["teacher_values"] = teacher_value_targets(
                buf.teacher_values, self.settings.reward, shift, scale
            ).reshape(-1)
        if self.overlap and ppo.decoupled:
            batch["prox_logprobs"] = self._logprobs_now(batch)
        batch = {k: v.clone() for k, v in batch.items()}  # leave inference mode's tensors
        self.model.train()
        stats = ppo_update(
            self.train_model,
            self.optimizer,
            batch,
            ppo,
            self.minibatch_size,
            on_minibatch=hooks.tick,
            autocast_dtype=self.autocast_dtype,
            reduce=dist.reduce if dist else None,
            distill_coef=self._distill_coef,
            value_distill_coef=self._value_distill_coef,
            threads=self._threads,
        )
        self.model.eval()
        self.minibatch_size = stats.minibatch_size
        for event in stats.events:
            hooks.note(event)
        # Nothing learned is not bad luck: a NaN in the weights or in the returns' running
        # statistics stays there, so every later update would skip too
        if stats.minibatches == 0 and stats.skipped and not stats.interrupted:
            raise RuntimeError(self._learned_nothing(batch, stats))
        self._last_stats = stats
        return stats

    def _learned_nothing(self, batch: dict[str, torch.Tensor], stats: UpdateStats) -> str:
        """Why an update skipped every minibatch, and what to change."""
        what = f"every minibatch of the update ({stats.skipped}) had a non-finite loss or gradient"
        data = [name for name in ("returns", "advantages") if not batch[name].isfinite().all()]
        if data and all(p.isfinite().all() for p in self.model.parameters()):
            return (
                f"{what}: the rollout's {' and '.join(data)} are not finite (rewards too large "
                "for float32?); lower the --reward.* weights"
            )
        return self._diverged(what)

    def _diverged(self, what: str) -> str:
        weights = all(p.isfinite().all() for p in self.model.parameters())
        state = "are finite" if weights else "are no longer finite"
        return (
            f"{what}; the model's weights {state}: lower --ppo.learning-rate (now "
            f"{self.ppo.learning_rate:g}) or --ppo.max-grad-norm, or resume from an earlier "
            "checkpoint"
        )

    # --- what it shows -----------------------------------------------------------------

    def view(self) -> LearnerView:
        stats, obs = self._last_stats, self._obs
        board = obs["board"][0] if obs is not None else np.zeros(self.game.shape, np.uint8)
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
            layers = out.attention[:, 0].float().cpu().numpy().round(4)  # (L, heads, T, T)
            attention = layers[-1].tolist()
            if layers.size <= MAX_ATTENTION_FLOATS:
                attention_layers = layers.tolist()
        usage = (
            self._last_usage if stats is None or stats.expert_usage is None else stats.expert_usage
        )
        names = ("loss", "policy_loss", "value_loss", "entropy", "aux_loss")
        learned = stats is not None and stats.minibatches > 0
        return LearnerView(
            board=board,
            actions=[float(p) for p in self._shown_probs],
            value=self._shown_value,
            losses={name: float(getattr(stats, name)) if learned else None for name in names},
            learning_rate=float(self.optimizer.param_groups[0]["lr"]),
            attention=attention,
            attention_layers=attention_layers,
            expert_usage=usage.float().cpu().numpy().round(4).tolist() if usage is not None else [],
            model_params=self.model.num_params().total / 1e6,
            minibatch_size=self.minibatch_size,
        )

    # --- checkpoints -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        env = self.env.state_dict()
        rng = {"env": env.pop("rng")}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        extra = {}
        if self.starts is not None:
            extra["starts"] = _tensors(self.starts.state_dict())
        if self.overlap:
            rng["actor"] = self._actor_rng.get_state()
            extra["pending"] = pending_state(self._pending)
        return {
            **extra,
            "preset": self.preset,
            "model_config": asdict(self.model_config),
            "ppo_config": asdict(self.ppo),
            "reward_config": asdict(self.settings.reward),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "counters": {"minibatch_size": self.minibatch_size},
            "return_stats": asdict(self.return_stats),
            "teacher_config": asdict(self.settings.teacher) if self.settings.teacher else None,
            "start_config": asdict(self.settings.start),
            "rng": rng,
            "env": {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in env.items()},
            "obs": {k: torch.from_numpy(v.copy()) for k, v in self._obs.items()}
            if self._obs
            else None,
        }

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        from ...checkpoint import CheckpointError

        try:
            self.model.load_state_dict(payload["model"])
        except RuntimeError:
            raise CheckpointError(
                f"the checkpoint's model ({_describe(payload['model_config'])}) does not fit this "
                f"trainer's ({_describe(asdict(self.model_config))}); resume with "
                "Trainer.from_checkpoint, which builds the saved architecture"
            ) from None
        self.optimizer.load_state_dict(payload["optimizer"])
        self.minibatch_size = payload["counters"]["minibatch_size"]
        self.return_stats = RunningMeanStd(**payload["return_stats"])
        dist = self.setup.dist
        if dist is not None and not dist.is_main:
            # the file holds one process's games and RNG: other ranks play their own
            iteration = payload["iteration"]
            torch.manual_seed(self.setup.seed + 7919 * dist.rank + iteration)
            return
        if "cuda" in payload["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(payload["rng"]["cuda"], self.device)
        env = {k: v.numpy() for k, v in payload["env"].items()}
        self.env.load_state_dict({**env, "rng": payload["rng"]["env"]})
        if payload["obs"] is not None:
            self._obs = {k: v.numpy().copy() for k, v in payload["obs"].items()}
        if self.starts is not None and payload.get("starts") is not None:
            self.starts.load_state_dict(_arrays(payload["starts"]))
        if self.overlap:
            self.actor_model.load_state_dict(self.model.state_dict())
            if "actor" in payload["rng"]:
                try:
                    self._actor_rng.set_state(payload["rng"]["actor"])
                except (RuntimeError, ValueError):  # a GPU's generator resumed on the CPU
                    self._actor_rng.manual_seed(self.setup.seed + 104_729 + payload["iteration"])
            self._pending = pending_rollout(payload.get("pending"), self.buffers[0])

    @classmethod
    def check_payload(cls, payload: dict[str, Any], bad: Callable[[str, str], Exception]) -> None:
        from ... import checkpoint as ck

        ck.check_fields(payload, _fields(ck), bad)
        built = {
            name: ck.build(settings, payload[name], name, bad)
            for name, settings in SETTINGS.items()
            if payload.get(name) is not None
        }
        with torch.device("meta"), ck.SkipInit():
            model = GameTransformer(built["model_config"])
        ck.check_weights(model, payload["model"], bad)
        ck.check_optimizer(payload["optimizer"], [tuple(p.shape) for p in model.parameters()], bad)
        games = built["ppo_config"].num_envs
        board = (built["model_config"].rows, built["model_config"].cols)
        for name, shape in GAME_SHAPES.items():
            shape = board if shape == "board" else shape
            tensor = ck.lookup(payload, name)
            if isinstance(tensor, torch.Tensor) and tuple(tensor.shape) != (games, *shape):
                raise bad(name, f"is {ck.show(tensor)}, not {(games, *shape)} for {games} games")
        pending = payload.get("pending")
        if pending is not None:
            steps, games = built["ppo_config"].rollout_steps, built["ppo_config"].num_envs
            for name, shape in PENDING_SHAPES.items():
                shape = board if shape == "board" else shape
                want = (games, *shape) if name == "last_values" else (steps, games, *shape)
                tensor = pending.get(name)
                if name.startswith("teacher_") and tensor is None:
                    continue
                if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != want:
                    raise bad(f"pending.{name}", f"is {ck.show(tensor)}, not a tensor {want}")
        try:
            np.random.default_rng().bit_generator.state = payload["rng"]["env"]
        except (TypeError, ValueError, KeyError):
            raise bad("rng.env", "is not a NumPy PCG64 generator state") from None

    @classmethod
    def config_from_payload(cls, payload: dict[str, Any]) -> PPOLearnerConfig:
        return config_from_payload(payload)

    @classmethod
    def config_from_flags(cls, groups, preset=None, teacher=None, device="auto"):
        return config_from_flags(groups, preset, teacher, device)

    @classmethod
    def config_with_teacher(cls, settings: PPOLearnerConfig, source: str) -> PPOLearnerConfig:
        return replace(settings, teacher=repoint_teacher(settings.teacher, source))

    @classmethod
    def load_agent(cls, payload: dict[str, Any], device: torch.device) -> TransformerAgent:
        model = GameTransformer(ModelConfig(**payload["model_config"])).to(device)
        model.load_state_dict(payload["model"])
        model.eval()
        stats = RunningMeanStd(**payload["return_stats"])
        ppo = PPOConfig(**payload["ppo_config"])
        reward = RewardConfig(**payload["reward_config"])
        game = games.get(payload.get("game") or games.DEFAULT)
        return TransformerAgent(model, stats, ppo.gamma, reward, game)

    def _logprobs_now(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) log-probabilities of the batch's moves under the model as it is now, as the
        rollout computes them (eval mode, inference, one minibatch at a time)."""
        self.model.eval()
        parts = []
        with torch.inference_mode(), self._autocast():
            for rows in torch.arange(len(batch["actions"])).split(self.minibatch_size):
                logits = self.model(batch["boards"][rows], batch["masks"][rows]).logits
                parts.append(action_logprobs(logits, batch["actions"][rows]))
        return torch.cat(parts)

    def _autocast(self):
        return torch.autocast(
            self.device.type,
            dtype=self.autocast_dtype or torch.bfloat16,
            enabled=self.autocast_dtype is not None,
        )


def _check_memory(model: ModelConfig, ppo: PPOConfig, device: torch.device) -> None:
    """MemoryError in one line, before anything is allocated, if even the smallest update
    (minibatches halved down to ``MIN_MINIBATCH``) cannot fit on ``device``."""
    need = ppo_training_bytes(model, ppo.num_envs, ppo.rollout_steps, MIN_MINIBATCH)
    if need.rollout > need.optimizer:
        advice = "lower --ppo.num-envs or --ppo.rollout-steps, or a smaller --preset"
    else:
        advice = (
            "lower --model.d-model, --model.d-expert, --model.n-experts or --model.n-layers, "
            "or choose a smaller --preset"
        )
    what = (
        f"training this model ({need.parameters / 1e6:,.1f} M parameters, with gradients and "
        f"Adam's moments) on {ppo.num_envs:,} games"
    )
    check_fits(need.total, device, what, advice)


def _tensors(state: Any) -> Any:
    """NumPy arrays in a nested state as tensors (what a checkpoint holds)."""
    if isinstance(state, dict):
        return {k: _tensors(v) for k, v in state.items()}
    if isinstance(state, np.ndarray):
        return torch.from_numpy(state.copy())
    return state


def _arrays(state: Any) -> Any:
    """``_tensors`` undone."""
    if isinstance(state, dict):
        return {k: _arrays(v) for k, v in state.items()}
    if isinstance(state, torch.Tensor):
        return state.numpy().copy()
    return state


def _start_metrics(
    starts: StartStates, env_steps: int, restarted: list[tuple[np.ndarray, np.ndarray]]
) -> dict[str, float | None]:
    """The start states' row: shares now, the buffer, and the games that began elsewhere
    (``restarted``: their final scores and largest tiles, (G,) each per step)."""
    own, teacher = start_shares(starts.config, env_steps)
    scores = np.concatenate([s for s, _ in restarted]) if restarted else np.zeros(0)
    tiles = np.concatenate([t for _, t in restarted]) if restarted else np.zeros(0)
    return {
        "start/own_share": own,
        "start/teacher_share": teacher,
        "start/buffer_boards": float(len(starts.buffer)),
        "start/restarted_games": float(len(scores)),
        "start/restart_score_mean": float(scores.mean()) if len(scores) else None,
        "start/restart_2048": float((tiles >= 2048).mean()) if len(tiles) else None,
    }


class _HeldHooks:
    """The run's hooks for an update beside the actor: each tick holds the actor, so a
    pause holds both."""

    def __init__(self, hooks: RunHooks, actor: Actor):
        self._hooks, self._actor = hooks, actor

    def tick(self) -> bool:
        return self._actor.tick(self._hooks.tick, self._hooks.pausing)

    def __getattr__(self, name):
        return getattr(self._hooks, name)


def _update_threads(ppo: PPOConfig, device: torch.device, dist, torch_threads: int | None) -> int:
    """The threads that share each minibatch: ``ppo.update_threads`` on the CPU, as many as
    the usable cores hold at ``torch_threads`` torch threads each (a 16-core machine's
    default of 15 torch threads leaves room for one); 1 on CUDA and under torchrun (DDP)."""
    from ...device import usable_cores

    if device.type != "cpu" or dist is not None:
        return 1
    return max(1, min(ppo.update_threads, usable_cores() // max(1, torch_threads or 1)))


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def _describe(model_config: dict) -> str:
    keys = ("d_model", "n_heads", "n_layers", "n_experts", "top_k", "d_expert")
    return ", ".join(f"{k}={model_config.get(k)}" for k in keys)
