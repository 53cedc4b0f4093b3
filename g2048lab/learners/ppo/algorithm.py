"""Proximal Policy Optimisation, in paper order, as importable pieces.

Storage (``RolloutBuffer``), generalised advantage estimation (``compute_gae``),
advantage normalisation, the clipped policy loss, the (optionally clipped) value
loss, the entropy bonus and the MoE balancing loss (``ppo_loss``), and the
minibatch epochs with gradient clipping and a target-KL stop (``ppo_update``).
Illegal actions are masked when sampling (``sample_actions``) and in the loss:
the model gives them logits of -inf, so their probability is exactly 0 and they
add nothing to the entropy.

Shapes: T rollout steps, N games, B = T * N samples, M a minibatch.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from ...settings import check_settings, setting
from .kickstart import agreement, distillation_loss

__all__ = [
    "LossParts",
    "UpdateStats",
    "PPOConfig",
    "RolloutBuffer",
    "RunningMeanStd",
    "action_logprobs",
    "compute_gae",
    "learning_rate_at",
    "masked_entropy",
    "normalize_advantages",
    "ppo_loss",
    "ppo_update",
    "sample_actions",
]


@dataclass(frozen=True)
class PPOConfig:
    """PPO settings; the defaults are the ones tuned for 2048 on a 2-core CPU
    with ``bench/learn.py`` (see the README for the measurements).

    Many parallel games and several small minibatches per rollout: in the
    calibration of ../shared/STACK.md too few optimiser steps per sample was the
    main brake, and a learning rate of 1e-3 took off earlier than 3e-4.
    """

    num_envs: int = setting(256, ge=1)  # N, games played in parallel
    rollout_steps: int = setting(64, ge=1)  # T, moves per game per rollout
    epochs: int = setting(2, ge=1)  # passes over each rollout
    minibatch_size: int = setting(1024, ge=1)  # M; halved automatically on out-of-memory
    learning_rate: float = setting(1e-3, gt=0)
    # constant | linear | cosine over the run's budget (constant when it has none); linear
    # decay to 0.1x gave the best final greedy play in bench/learn.py
    lr_schedule: str = "linear"
    gamma: float = setting(0.99, gt=0, le=1)  # discount per move
    gae_lambda: float = setting(0.95, ge=0, le=1)
    clip_coef: float = setting(0.2, gt=0)  # policy ratio clip
    value_clip: float | None = setting(None, gt=0)  # clip of the value change per update
    value_coef: float = setting(0.5, ge=0)
    entropy_coef: float = setting(0.01, ge=0)
    aux_loss_coef: float = setting(0.01, ge=0)  # MoE load balancing (Switch Transformer)
    max_grad_norm: float = setting(0.5, gt=0)
    target_kl: float | None = setting(0.03, gt=0)  # stop the epochs early past this approx. KL
    normalize_advantages: bool = True
    normalize_values: bool = True  # learn values in units of the returns' running std
    adam_eps: float = setting(1e-5, gt=0)
    # rollout.py: the update then learns from moves of the policy one update older
    overlap: bool = False  # play the next rollout on an actor thread beside the update
    # decoupled PPO (Hilton et al. 2021): the clip is around the learner's own policy at the
    # update's start, each move weighted by that policy's probability of it over the
    # behaviour policy's; False: the ratio against the behaviour policy alone
    decoupled: bool = True  # with overlap: clip around the update's start policy
    # update_threads.py: replicas of the model, one torch thread each; CPU only (CUDA and
    # torchrun runs use 1), and at most the cores this process may use
    update_threads: int = setting(2, ge=1)  # CPU threads that share each minibatch

    def __post_init__(self) -> None:
        check_settings(self)
        if self.lr_schedule not in ("constant", "linear", "cosine"):
            raise ValueError(
                f"lr_schedule must be constant, linear or cosine, got {self.lr_schedule!r}"
            )


@dataclass
class RolloutBuffer:
    """Preallocated storage of one rollout, (T, N) per field, on the training device."""

    boards: Tensor  # (T, N, rows, cols) uint8 exponents
    masks: Tensor  # (T, N, 4) bool legal actions
    actions: Tensor  # (T, N) int64
    logprobs: Tensor  # (T, N) float32, of the actions taken
    values: Tensor  # (T, N) float32, in return units
    rewards: Tensor  # (T, N) float32, shaped
    dones: Tensor  # (T, N) float32, 1 where the move ended the game
    teacher_probs: Tensor | None = None  # (T, N, 4) float32, a teacher's (kickstart.py)
    teacher_values: Tensor | None = None  # (T, N) float32, a teacher's, score points

    @classmethod
    def allocate(
        cls,
        steps: int,
        envs: int,
        device: torch.device,
        teacher: bool = False,
        board: tuple[int, int] = (4, 4),
        teacher_values: bool = False,
    ) -> RolloutBuffer:
        """Zeroed storage for ``steps`` moves of ``envs`` games on ``board`` (rows, cols);
        ``teacher``: with the teacher's move probabilities, ``teacher_values``: its values."""

        def zeros(*shape, dtype=torch.float32):
            return torch.zeros(steps, envs, *shape, dtype=dtype, device=device)

        return cls(
            boards=zeros(*board, dtype=torch.uint8),
            masks=zeros(4, dtype=torch.bool),
            actions=zeros(dtype=torch.int64),
            logprobs=zeros(),
            values=zeros(),
            rewards=zeros(),
            dones=zeros(),
            teacher_probs=zeros(4) if teacher else None,
            teacher_values=zeros() if teacher_values else None,
        )


@dataclass
class RunningMeanStd:
    """Running mean and variance of a stream of batches (Chan et al.'s parallel update)."""

    mean: float = 0.0
    var: float = 1.0
    count: float = 1e-4

    def update(self, x: Tensor) -> None:
        self.update_moments(x.mean().item(), x.var(unbiased=False).item(), x.numel())

    def update_moments(self, batch_mean: float, batch_var: float, n: float) -> None:
        """Fold in a batch given by its mean, (population) variance and size."""
        delta, total = batch_mean - self.mean, self.count + n
        self.mean += delta * n / total
        self.var = (
            self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        ) / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(self.var) + 1e-8


def sample_actions(
    logits: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Sample one action per row of (N, 4) masked logits by the Gumbel-max trick.

    Returns ``(actions (N,) int64, logprobs (N,), probs (N, 4))``. Illegal
    actions (logit -inf) are never drawn.
    """
    logp = F.log_softmax(logits.float(), dim=-1)  # (N, 4)
    uniform = torch.rand(logp.shape, device=logp.device, generator=generator)
    gumbel = -torch.log(-torch.log(uniform.clamp_(1e-20, 1.0)))
    actions = torch.argmax(logp + gumbel, dim=-1)  # (N,)
    return actions, logp.gather(1, actions[:, None]).squeeze(1), logp.exp()


def action_logprobs(logits: Tensor, actions: Tensor) -> Tensor:
    """(M,) float32 log-probabilities of ``actions`` (M,) under (M, 4) masked logits."""
    return F.log_softmax(logits.float(), dim=-1).gather(1, actions[:, None]).squeeze(1)


def masked_entropy(logits: Tensor) -> Tensor:
    """(M, 4) logits with -inf for illegal actions -> (M,) entropy in nats (0 log 0 = 0)."""
    logp = F.log_softmax(logits.float(), dim=-1)
    # zero the -inf entries before multiplying: torch.where would still send 0 * inf = NaN
    # into the gradient through the branch it did not take
    finite_logp = logp.masked_fill(~torch.isfinite(logp), 0.0)
    return -(logp.exp() * finite_logp).sum(-1)


def compute_gae(
    rewards: Tensor,
    values: Tensor,
    dones: Tensor,
    last_values: Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over a (T, N) rollout.

    ``dones[t]`` is 1 where the move at step t ended the game: then nothing is
    bootstrapped past it (the next observation belongs to a new game, the
    environment having reset in the same step). ``last_values`` (N,) is the value
    of the observation after the last step. Returns ``(advantages, returns)``,
    both (T, N), with returns = advantages + values.
    """
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(last_values)
    next_values = last_values
    for t in reversed(range(steps)):
        alive = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_values * alive - values[t]
        running = delta + gamma * gae_lambda * alive * running
        advantages[t] = running
        next_values = values[t]
    return advantages, advantages + values


def normalize_advantages(advantages: Tensor) -> Tensor:
    """Zero mean, unit standard deviation (a no-op shift for a single sample)."""
    if advantages.numel() < 2:
        return advantages - advantages.mean()
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


@dataclass
class LossParts:
    """The PPO objective of one minibatch and its diagnostics (scalars)."""

    total: Tensor
    policy: Tensor
    value: Tensor
    entropy: Tensor
    aux: Tensor
    approx_kl: Tensor  # (ratio - 1) - log ratio, Schulman's low-variance estimator
    clip_fraction: Tensor
    distill: Tensor | None = None  # KL(teacher || student), mean; None without a teacher
    agreement: Tensor | None = None  # share of boards where the argmax moves agree
    # 0.5 * mean (value - teacher's value)^2; None without the teacher's values
    value_distill: Tensor | None = None


def ppo_loss(
    logits: Tensor,
    values: Tensor,
    aux_loss: Tensor,
    actions: Tensor,
    old_logprobs: Tensor,
    old_values: Tensor,
    advantages: Tensor,
    returns: Tensor,
    config: PPOConfig,
    teacher_probs: Tensor | None = None,
    distill_coef: float = 0.0,
    teacher_values: Tensor | None = None,
    value_distill_coef: float = 0.0,
    prox_logprobs: Tensor | None = None,
) -> LossParts:
    """The clipped PPO loss of one minibatch, plus kickstarting's distillation terms.

    Args:
        logits: (M, 4) masked logits of the current policy.
        values: (M,) current value predictions, in the same units as ``returns``.
        aux_loss: scalar MoE balancing loss of the forward pass.
        actions, old_logprobs, old_values, advantages, returns: (M,) from the rollout.
        teacher_probs: (M, 4) a teacher's move probabilities on the same boards, or None;
            adds ``distill_coef * KL(teacher || student)`` (kickstart.distillation_loss).
        teacher_values: (M,) a teacher's values of the same boards in the units of
            ``values`` (kickstart.teacher_value_targets), or None; adds
            ``value_distill_coef * 0.5 * mean (values - teacher_values)^2``.
        prox_logprobs: (M,) the log-probabilities of ``actions`` under a proximal policy
            (the learner's at the update's start) when the moves were played by an older
            one (``old_logprobs``), or None. Decoupled PPO (Hilton et al. 2021): the ratio
            and its clip are taken against the proximal policy, each move weighted by
            pi_prox / pi_old, and ``approx_kl`` measures the change from the proximal
            policy; None: the ratio against ``old_logprobs``, standard PPO.
    """
    logp = action_logprobs(logits, actions)
    anchor = old_logprobs if prox_logprobs is None else prox_logprobs
    log_ratio = logp - anchor
    ratio = log_ratio.exp()
    clipped_objective = torch.max(
        -advantages * ratio,
        -advantages * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef),
    )
    if prox_logprobs is not None:  # the behaviour's correction, a constant of the update
        clipped_objective = (prox_logprobs - old_logprobs).exp().detach() * clipped_objective
    policy_loss = clipped_objective.mean()
    values = values.float()
    if config.value_clip is None:
        value_loss = 0.5 * (values - returns).pow(2).mean()
    else:
        clipped = old_values + (values - old_values).clamp(-config.value_clip, config.value_clip)
        value_loss = 0.5 * torch.max((values - returns).pow(2), (clipped - returns).pow(2)).mean()
    entropy = masked_entropy(logits).mean()
    total = (
        policy_loss
        + config.value_coef * value_loss
        - config.entropy_coef * entropy
        + config.aux_loss_coef * aux_loss
    )
    distill = agree = None
    if teacher_probs is not None:
        distill = distillation_loss(logits, teacher_probs).mean()
        total = total + distill_coef * distill
        agree = agreement(logits.detach(), teacher_probs)
    value_distill = None
    if teacher_values is not None:
        value_distill = 0.5 * (values - teacher_values.float()).pow(2).mean()
        total = total + value_distill_coef * value_distill
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clip_fraction = ((ratio - 1).abs() > config.clip_coef).float().mean()
    return LossParts(
        total,
        policy_loss,
        value_loss,
        entropy,
        aux_loss,
        approx_kl,
        clip_fraction,
        distill,
        agree,
        value_distill,
    )


def learning_rate_at(config: PPOConfig, progress: float) -> float:
    """The scheduled learning rate at ``progress`` in [0, 1] of the budget (0 if open-ended)."""
    progress = min(max(progress, 0.0), 1.0)
    if config.lr_schedule == "linear":
        return config.learning_rate * (1.0 - 0.9 * progress)
    if config.lr_schedule == "cosine":
        return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
    return config.learning_rate


MIN_MINIBATCH = 16
"""Below this an out-of-memory error is not a batch-size problem: the run fails."""


@dataclass
class UpdateStats:
    """What one PPO update did: means over the minibatches that stepped the optimiser."""

    loss: float = math.nan
    policy_loss: float = math.nan
    value_loss: float = math.nan
    entropy: float = math.nan
    aux_loss: float = math.nan
    approx_kl: float = math.nan
    clip_fraction: float = math.nan
    distill_loss: float | None = None  # with a teacher: KL(teacher || student)
    agreement: float | None = None  # with a teacher: share of argmax moves that agree
    value_distill_loss: float | None = None  # with the teacher's values: 0.5 * mean sq. error
    minibatches: int = 0  # optimiser steps taken
    skipped: int = 0  # minibatches skipped for a non-finite loss or gradient
    minibatch_size: int = 0  # after any out-of-memory halving
    stopped_early: bool = False  # the target KL or a stop request ended the epochs
    interrupted: bool = False  # a stop request (``on_minibatch``) ended the epochs
    expert_usage: Tensor | None = None  # (layers, experts), mean over minibatches
    events: list[str] = field(default_factory=list)


def ppo_update(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Tensor],
    config: PPOConfig,
    minibatch_size: int,
    on_minibatch: Callable[[], bool] | None = None,
    autocast_dtype: torch.dtype | None = None,
    reduce: Callable[[list[float], str], list[float]] | None = None,
    distill_coef: float = 0.0,
    value_distill_coef: float = 0.0,
    threads=None,
) -> UpdateStats:
    """Run ``config.epochs`` epochs of minibatch PPO over a flattened rollout.

    ``batch`` holds (B, ...) tensors: ``boards``, ``masks``, ``actions``,
    ``logprobs``, ``values`` and ``returns`` (both in the units the value head
    learns), and ``advantages``. Robust by construction:

    - a minibatch whose loss or gradient is not finite is skipped (reported in
      ``events``); the weights and the optimiser state are never touched by it;
    - an out-of-memory error halves the minibatch and retries the samples not
      yet learned from, down to ``MIN_MINIBATCH``;
    - ``on_minibatch()`` runs after each minibatch and may return False to end
      the update early (a stop request).

    ``reduce(values, op)`` (``DistContext.reduce``) makes the decisions collective when
    ``model`` is DistributedDataParallel: all ranks skip a minibatch if any rank's loss
    is not finite, stop on the mean KL, and report the mean losses. Out-of-memory is
    then an error: the ranks could not halve their minibatches in step.

    With ``batch["teacher_probs"]`` (B, 4) each minibatch also learns toward the teacher,
    weighted by ``distill_coef`` (kickstart.py); with ``batch["teacher_values"]`` (B,), in
    the units of ``returns``, the value head also regresses on them, weighted by
    ``value_distill_coef``; with ``batch["prox_logprobs"]`` (B,) the ratio is taken against
    them, decoupled from the behaviour policy (``ppo_loss``). ``threads``
    (``update_threads.UpdateThreads``): each minibatch's forward and backward split over
    its CPU threads.
    """
    from ...device import is_out_of_memory

    stats = UpdateStats(minibatch_size=minibatch_size)
    sums: dict[str, float] = {}
    usage_sum = None
    size = batch["actions"].shape[0]
    device = batch["actions"].device
    for _ in range(config.epochs):
        queue = deque(torch.randperm(size, device=device).split(minibatch_size))
        epoch_kl: list[float] = []
        while queue:
            index = queue.popleft()
            try:
                learned, usage = _minibatch_step(
                    model,
                    optimizer,
                    batch,
                    index,
                    config,
                    autocast_dtype,
                    reduce,
                    distill_coef,
                    value_distill_coef,
                    threads,
                )
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                if reduce is not None:
                    raise RuntimeError(
                        f"out of memory with minibatch {len(index)} in a distributed update: "
                        "use a smaller model preset or fewer parallel games"
                    ) from error
                optimizer.zero_grad(set_to_none=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                if len(index) // 2 < MIN_MINIBATCH:
                    raise RuntimeError(
                        f"out of memory even with a minibatch of {len(index)}: use a smaller "
                        f"model preset or fewer parallel games"
                    ) from error
                minibatch_size = len(index) // 2
                stats.events.append(
                    f"out of memory with minibatch {len(index)}: halved to {minibatch_size}"
                )
                queue = deque(torch.cat([index, *queue]).split(minibatch_size))
                continue
            if usage is None:  # learned names what was not finite
                stats.skipped += 1
                stats.events.append(f"skipped a minibatch: non-finite {learned}")
            else:
                stats.minibatches += 1
                epoch_kl.append(learned["approx_kl"])
                for key, value in learned.items():
                    sums[key] = sums.get(key, 0.0) + value
                usage_sum = usage if usage_sum is None else usage_sum + usage
            if on_minibatch is not None and on_minibatch() is False:
                queue.clear()
                stats.stopped_early = stats.interrupted = True
                break
        if stats.stopped_early:
            break
        mean_kl = sum(epoch_kl) / len(epoch_kl) if epoch_kl else 0.0
        if reduce is not None:
            mean_kl = reduce([mean_kl], "mean")[0]
        if config.target_kl is not None and mean_kl > config.target_kl:
            stats.stopped_early = True
            break
    stats.minibatch_size = minibatch_size
    means = {key: value / stats.minibatches for key, value in sums.items()}
    if reduce is not None and means:
        means = dict(zip(means, reduce(list(means.values()), "mean")))
    for key, value in means.items():
        setattr(stats, key, value)
    if usage_sum is not None:
        stats.expert_usage = usage_sum / stats.minibatches
    return stats


def _minibatch_step(
    model,
    optimizer,
    batch,
    index,
    config,
    autocast_dtype,
    reduce=None,
    distill_coef=0.0,
    value_distill_coef=0.0,
    threads=None,
):
    """One optimiser step on ``batch[index]``: (the losses, expert usage), or ("loss", None)
    or ("gradient", None) where that was not finite and nothing was changed. ``threads``
    (``UpdateThreads``): the minibatch's forward and backward split over its threads."""

    def loss(net, rows):
        with torch.autocast(
            device_type=rows.device.type,
            dtype=autocast_dtype or torch.bfloat16,
            enabled=autocast_dtype is not None,
        ):
            out = net(batch["boards"][rows], batch["masks"][rows])
        parts = ppo_loss(
            out.logits,
            out.value,
            out.aux_loss,
            batch["actions"][rows],
            batch["logprobs"][rows],
            batch["values"][rows],
            batch["advantages"][rows],
            batch["returns"][rows],
            config,
            teacher_probs=batch["teacher_probs"][rows] if "teacher_probs" in batch else None,
            distill_coef=distill_coef,
            teacher_values=batch["teacher_values"][rows] if "teacher_values" in batch else None,
            value_distill_coef=value_distill_coef,
            prox_logprobs=batch["prox_logprobs"][rows] if "prox_logprobs" in batch else None,
        )
        return parts, out

    optimizer.zero_grad(set_to_none=True)
    if threads is None:
        parts, out = loss(model, index)
        finite = bool(torch.isfinite(parts.total))
        if reduce is not None:  # every rank must skip, or DDP's backward would wait forever
            finite = reduce([float(finite)], "min")[0] > 0.5
        if not finite:
            return "loss", None
        parts.total.backward()
        usage = out.expert_usage.detach().float()
    else:
        shares = threads.backward(loss, index)
        if shares is None:
            return "loss", None
        parts, usage = _weighted(*shares)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
    if not torch.isfinite(grad_norm):
        optimizer.zero_grad(set_to_none=True)
        return "gradient", None
    optimizer.step()
    values = {
        "loss": parts.total.item(),
        "policy_loss": parts.policy.item(),
        "value_loss": parts.value.item(),
        "entropy": parts.entropy.item(),
        "aux_loss": float(parts.aux.detach()),
        "approx_kl": parts.approx_kl.item(),
        "clip_fraction": parts.clip_fraction.item(),
    }
    if parts.distill is not None:
        values["distill_loss"] = parts.distill.item()
        values["agreement"] = parts.agreement.item()
    if parts.value_distill is not None:
        values["value_distill_loss"] = parts.value_distill.item()
    return values, usage


def _weighted(parts: list[LossParts], outs: list, weights: list[float]):
    """The minibatch's LossParts and expert usage from its shares': means weighted by
    each share's size."""

    def mean(values):
        return sum(w * v.detach().float() for w, v in zip(weights, values))

    fields = {}
    for name in LossParts.__dataclass_fields__:
        values = [getattr(p, name) for p in parts]
        fields[name] = None if values[0] is None else mean(values)
    return LossParts(**fields), mean([o.expert_usage for o in outs])
