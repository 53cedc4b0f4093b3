"""The PPO pieces on tiny tensors, and PPO learning a small task for real."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from g2048lab.learners.ppo.algorithm import (
    PPOConfig,
    RunningMeanStd,
    compute_gae,
    learning_rate_at,
    masked_entropy,
    normalize_advantages,
    ppo_loss,
    ppo_update,
    sample_actions,
)
from g2048lab.model import GameTransformer, ModelConfig

NEG = float("-inf")


def test_gae_matches_a_hand_computed_example():
    # gamma 0.9, lambda 0.8; the game ends at the last step, so nothing is bootstrapped
    rewards = torch.tensor([[1.0], [1.0], [1.0]])
    values = torch.tensor([[0.5], [0.5], [0.5]])
    dones = torch.tensor([[0.0], [0.0], [1.0]])
    adv, ret = compute_gae(rewards, values, dones, torch.tensor([10.0]), 0.9, 0.8)
    # delta2 = 1 - 0.5; delta1 = delta0 = 1 + 0.9 * 0.5 - 0.5 = 0.95
    # A2 = 0.5; A1 = 0.95 + 0.72 * 0.5 = 1.31; A0 = 0.95 + 0.72 * 1.31 = 1.8932
    assert torch.allclose(adv[:, 0], torch.tensor([1.8932, 1.31, 0.5]))
    assert torch.allclose(ret, adv + values)


def test_gae_bootstraps_the_last_value_and_stops_at_a_finished_game():
    rewards = torch.zeros(2, 2)
    values = torch.zeros(2, 2)
    dones = torch.tensor([[0.0, 1.0], [0.0, 0.0]])  # game 1 ended at step 0
    adv, _ = compute_gae(rewards, values, dones, torch.tensor([1.0, 1.0]), 0.9, 0.8)
    assert torch.allclose(adv[:, 0], torch.tensor([0.72 * 0.9, 0.9]))
    assert torch.allclose(adv[:, 1], torch.tensor([0.0, 0.9]))  # no credit across the reset


def test_masked_entropy_ignores_illegal_actions_and_has_finite_gradients():
    logits = torch.tensor([[0.0, NEG, 0.0, NEG], [1.0, NEG, NEG, NEG], [0.0, 0.0, 0.0, 0.0]])
    raw = torch.zeros(3, 4, requires_grad=True)
    masked = raw.masked_fill(torch.isinf(logits), NEG)
    entropy = masked_entropy(masked)
    assert torch.allclose(entropy, torch.tensor([math.log(2), 0.0, math.log(4)]))
    entropy.sum().backward()
    assert torch.isfinite(raw.grad).all()


def test_clipped_policy_loss_and_value_loss():
    config = PPOConfig(clip_coef=0.2, value_coef=0.5, entropy_coef=0.0, aux_loss_coef=0.0)
    logits = torch.zeros(2, 4)  # probability 1/4 each
    actions = torch.tensor([0, 1])
    advantages = torch.tensor([1.0, -1.0])
    returns = torch.tensor([1.0, 3.0])
    values = torch.tensor([0.0, 1.0])
    # unchanged policy: ratio 1, loss -mean(adv) = 0; value loss 0.5 * mean((v - R)^2) = 1.25
    same = ppo_loss(
        logits,
        values,
        torch.tensor(0.0),
        actions,
        torch.full((2,), math.log(0.25)),
        values,
        advantages,
        returns,
        config,
    )
    assert same.policy.item() == pytest.approx(0.0, abs=1e-6)
    assert same.value.item() == pytest.approx(1.25)
    assert same.clip_fraction.item() == 0.0
    # the old policy gave these actions probability 1/8: ratio 2, clipped to 1.2 for adv > 0;
    # for adv < 0 the unclipped ratio 2 is the pessimistic one
    old = torch.full((2,), math.log(0.125))
    moved = ppo_loss(
        logits, values, torch.tensor(0.0), actions, old, values, advantages, returns, config
    )
    assert moved.policy.item() == pytest.approx((-1.2 + 2.0) / 2)
    assert moved.clip_fraction.item() == 1.0
    assert moved.approx_kl.item() == pytest.approx((2 - 1) - math.log(2))


def test_decoupled_loss_clips_around_the_proximal_policy_and_weights_by_the_behaviour():
    """Decoupled PPO (Hilton et al. 2021): with the proximal policy equal to the behaviour
    one it is PPO; otherwise the clip is around the proximal policy, each move weighted by
    pi_prox / pi_old, and the KL is the change from the proximal policy."""
    config = PPOConfig(clip_coef=0.2, entropy_coef=0.0, aux_loss_coef=0.0)
    logits = torch.zeros(2, 4, requires_grad=True)  # probability 1/4 each
    actions = torch.tensor([0, 1])
    advantages = torch.tensor([1.0, -1.0])
    values = returns = torch.zeros(2)
    zero = torch.tensor(0.0)

    def loss(old, prox=None):
        return ppo_loss(
            logits, values, zero, actions, old, values, advantages, returns, config,
            prox_logprobs=prox,
        )  # fmt: skip

    quarter, eighth = torch.full((2,), math.log(0.25)), torch.full((2,), math.log(0.125))
    for old in (quarter, eighth):
        plain, decoupled = loss(old), loss(old, prox=old.clone())
        assert decoupled.policy.item() == plain.policy.item()
        assert decoupled.approx_kl.item() == plain.approx_kl.item()
    # played at 1/8, the proximal policy 1/4 = now: ratio 1 (no clip), weight 2
    lagged = loss(eighth, prox=quarter)
    assert lagged.policy.item() == pytest.approx(2 * (-1.0 + 1.0) / 2)
    assert lagged.clip_fraction.item() == 0.0 and lagged.approx_kl.item() == 0.0
    (grad,) = torch.autograd.grad(lagged.policy, logits)
    (plain_grad,) = torch.autograd.grad(loss(quarter).policy, logits)
    assert torch.allclose(grad, 2 * plain_grad)  # the weight scales the gradient
    # played at 1/4, proximal 1/8: the ratio against it is 2, clipped for adv > 0 (no
    # gradient there), weighted by 1/2; against the behaviour (ratio 1) nothing clips
    ahead = loss(quarter, prox=eighth)
    assert ahead.policy.item() == pytest.approx(0.5 * (-1.2 + 2.0) / 2)
    assert ahead.clip_fraction.item() == 1.0
    (grad,) = torch.autograd.grad(ahead.policy, logits)
    assert torch.count_nonzero(grad[0]) == 0 and torch.count_nonzero(grad[1]) > 0


def test_value_clipping_takes_the_pessimistic_error():
    config = PPOConfig(value_clip=0.1, entropy_coef=0.0, aux_loss_coef=0.0)
    zero = torch.zeros(1)
    parts = ppo_loss(
        torch.zeros(1, 4),
        torch.tensor([1.0]),
        torch.tensor(0.0),
        torch.tensor([0]),
        torch.tensor([math.log(0.25)]),
        zero,
        zero,
        torch.tensor([1.0]),
        config,
    )
    assert parts.value.item() == pytest.approx(0.5 * 0.9**2)  # clipped prediction 0.1


def test_sampling_never_picks_illegal_actions_and_follows_the_probabilities():
    torch.manual_seed(0)
    logits = torch.tensor([[math.log(0.5), NEG, math.log(0.3), math.log(0.2)]]).repeat(20000, 1)
    actions, logprobs, probs = sample_actions(logits)
    counts = np.bincount(actions.numpy(), minlength=4)
    assert counts[1] == 0
    assert stats.chisquare(counts[[0, 2, 3]], 20000 * np.array([0.5, 0.3, 0.2])).pvalue > 1e-3
    assert torch.allclose(logprobs.exp(), probs.gather(1, actions[:, None]).squeeze(1))


def test_learning_rate_schedules():
    config = PPOConfig(learning_rate=1.0, lr_schedule="linear")
    assert learning_rate_at(config, 0.0) == 1.0 and learning_rate_at(config, 1.0) == pytest.approx(
        0.1
    )
    cosine = PPOConfig(learning_rate=1.0, lr_schedule="cosine")
    assert learning_rate_at(cosine, 0.5) == pytest.approx(0.55)
    assert learning_rate_at(PPOConfig(learning_rate=0.5, lr_schedule="constant"), 0.7) == 0.5
    with pytest.raises(ValueError, match="lr_schedule"):
        PPOConfig(lr_schedule="step")


def test_running_mean_std_matches_numpy():
    rms = RunningMeanStd()
    data = [torch.randn(100) * 3 + 2 for _ in range(5)]
    for chunk in data:
        rms.update(chunk)
    allx = torch.cat(data).numpy()
    assert rms.mean == pytest.approx(allx.mean(), rel=1e-3)
    assert rms.std == pytest.approx(allx.std(), rel=1e-3)
    assert normalize_advantages(torch.tensor([1.0, 3.0])).tolist() == pytest.approx(
        [-0.7071, 0.7071], abs=1e-4
    )


TINY = ModelConfig(d_model=32, n_heads=2, n_layers=1, n_experts=4, top_k=2, d_expert=64)


def bandit_batch(n, generator):
    """Boards whose top-left tile (exponent 1..4) names the rewarded action (0..3)."""
    boards = torch.randint(0, 3, (n, 4, 4), dtype=torch.uint8, generator=generator)
    target = torch.randint(0, 4, (n,), generator=generator)
    boards[:, 0, 0] = (target + 1).to(torch.uint8)
    return boards, torch.ones(n, 4, dtype=torch.bool), target


def test_ppo_learns_a_board_dependent_task():
    """PPO with this module's pieces must learn which move the board asks for.

    One-step episodes: reward 1 for the action named by the top-left tile, else 0.
    Random play earns 0.25; a broken loss, sign or gradient path stays there.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the fastest for tensors this small, and no fight over cores
    try:
        accuracy = _train_on_the_bandit(seed=0)
    finally:
        torch.set_num_threads(threads)
    assert accuracy > 0.9


def _train_on_the_bandit(seed: int, updates: int = 30) -> float:
    """Greedy accuracy on fresh boards after ``updates`` PPO updates of 1024 games each.

    A seed fixes the random numbers, not the arithmetic: another CPU or thread count runs
    other kernels and the run goes its own way, so the recipe must solve the task from any
    start. The advantage is the reward minus the batch's mean reward, not normalised: as
    the task gets solved it shrinks with the misses, and so do the updates. Normalised
    (with the value or the mean as baseline) it stays at unit size, and the rare misses and
    the value's errors then move the policy as much as learning did: runs at 100% lost a
    quarter or half of the mapping for an update or more, and some ended there (50% on one
    CI machine). With this recipe, seeds 0-11 on 1 and 2 threads, with AVX-512 and with
    plain C kernels (ATEN_CPU_CAPABILITY=default): all 48 runs ended at 100%. Where it was
    tracked, the greedy policy reached 100% by the third update and stayed above 96%
    through the last ten.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = GameTransformer(TINY)
    config = PPOConfig(
        epochs=4,
        minibatch_size=256,
        learning_rate=1e-3,
        lr_schedule="linear",  # down to 1e-4 at the end
        entropy_coef=0.01,
        target_kl=0.03,
        adam_eps=1e-5,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, eps=config.adam_eps)
    for update in range(updates):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(config, update / updates)
        boards, masks, target = bandit_batch(1024, gen)
        with torch.no_grad():
            out = model(boards, masks)
            actions, logprobs, _ = sample_actions(out.logits)
        rewards = (actions == target).float()  # (1024,), also the return: games of one move
        batch = {
            "boards": boards,
            "masks": masks,
            "actions": actions,
            "logprobs": logprobs,
            "values": out.value,
            "returns": rewards,
            "advantages": rewards - rewards.mean(),
        }
        ppo_update(model, optimizer, batch, config, config.minibatch_size)
    boards, masks, target = bandit_batch(2048, gen)
    with torch.no_grad():
        greedy = model(boards, masks).logits.argmax(-1)
    return (greedy == target).float().mean().item()


def update_batch(n: int, seed: int) -> dict:
    """A flattened rollout of ``n`` bandit samples, as ``ppo_update`` takes it."""
    boards, masks, target = bandit_batch(n, torch.Generator().manual_seed(seed))
    return {
        "boards": boards,
        "masks": masks,
        "actions": target,
        "logprobs": torch.full((n,), math.log(0.25)),
        "values": torch.zeros(n),
        "returns": torch.ones(n),
        "advantages": torch.randn(n),
    }


def test_update_halves_the_minibatch_on_out_of_memory():
    model = GameTransformer(TINY)

    def fail_on_big_batches(module, args):
        if module.training and args[0].shape[0] > 128:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    model.register_forward_pre_hook(fail_on_big_batches)
    batch = update_batch(1024, seed=1)
    optimizer = torch.optim.Adam(model.parameters())
    stats_ = ppo_update(model, optimizer, batch, PPOConfig(epochs=1, target_kl=None), 1024)
    assert stats_.minibatch_size == 128
    assert stats_.events[:3] == [
        "out of memory with minibatch 1024: halved to 512",
        "out of memory with minibatch 512: halved to 256",
        "out of memory with minibatch 256: halved to 128",
    ]
    assert stats_.minibatches == 8  # every sample was still learned from


def test_update_skips_a_non_finite_minibatch_without_touching_the_weights():
    model = GameTransformer(TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def poison(module, args, output):
        output.value = output.value * float("nan")
        return output

    handle = model.register_forward_hook(poison)
    batch = update_batch(256, seed=2)
    optimizer = torch.optim.Adam(model.parameters())
    stats_ = ppo_update(model, optimizer, batch, PPOConfig(epochs=1, target_kl=None), 128)
    assert stats_.skipped == 2 and stats_.minibatches == 0
    assert "non-finite" in stats_.events[0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    handle.remove()
    stats_ = ppo_update(model, optimizer, batch, PPOConfig(epochs=1, target_kl=None), 128)
    assert stats_.minibatches == 2 and all(torch.isfinite(p).all() for p in model.parameters())
