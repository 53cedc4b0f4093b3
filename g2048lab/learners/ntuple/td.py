"""The learning step of an n-tuple network, shared by its kernels for packed and flat boards.

A board's features are flat indices into the network's weights (float32: one table per
tuple laid end to end, one such set per stage); its value is the sum of the weights they
index. Compiled ``@njit(inline="always")`` pieces for other compiled loops.

Three things are settings of the step, each off by a neutral argument:

- **Stages** (``stage_size`` > 0): the weights hold one set of tables per stage, stage s's
  set ``s * stage_size`` weights in. A weight of stage s that was never trained (it still
  holds ``init``, the network's initial weight) reads as the same weight of stage s - 1
  (Jaśkowski 2018's weight promotion), so a game entering a new stage starts from what the
  earlier stage learned instead of from nothing; the first update writes it in place.
- **Temporal coherence** (``coherence`` not empty; Beal & Smith 1999, Jaśkowski 2018): each
  weight keeps the sum of the errors it was updated with, E, and of their magnitudes, A,
  interleaved in ``coherence`` (2 * weights,) float32, and moves by ``|E| / A`` (1 before
  its first update) times the step: weights whose errors keep one sign learn fast, those
  whose errors cancel slow down.
- Plain TD(0) otherwise: every weight moves by ``step_size * delta``.

What each afterstate is moved toward is the truncated λ-return of its next ``H`` moves
(``lambda_weights``; Sutton & Barto 12.3, and Jaśkowski 2018's delayed TC(λ)): the
afterstates wait in a ring of ``H + 1`` (``learn_move``), each updated once its ``H``
successors are known, the rest when the game ends (``learn_end``). ``H`` = 1, λ = 0 is
TD(0), updating each afterstate at the next move; λ = 1 is ``H``-step TD. A successor's
value is the one read when its move was chosen (the delayed scheme: no second read).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "lambda_weights",
    "learn_end",
    "learn_move",
    "prefetch",
    "stage_of",
    "td_update",
    "weight_read",
    "weight_sum",
]


@njit(inline="always")
def weight_read(weights, f, stage_size, init):
    """``weights[f]``, or where it was never trained (== ``init``) and ``f`` is in a stage
    after the first, the same weight of the stage before (repeatedly)."""
    w = weights[f]
    while stage_size > 0 and w == init and f >= stage_size:
        f -= stage_size
        w = weights[f]
    return w


@njit(inline="always")
def weight_sum(weights, features, stage_size, init):
    """V from feature indices: the sum of ``weights`` (flat, float32) at ``features`` (F,),
    each read through ``weight_read`` (a plain load without stages).

    Four partial sums, so the ~32 scattered loads and adds of a value overlap instead of
    waiting for one another (a single running sum is one long chain of dependent adds).
    """
    n = features.shape[0]
    a0 = np.float32(0)
    a1 = np.float32(0)
    a2 = np.float32(0)
    a3 = np.float32(0)
    k = 0
    while k + 3 < n:
        a0 += weight_read(weights, features[k], stage_size, init)
        a1 += weight_read(weights, features[k + 1], stage_size, init)
        a2 += weight_read(weights, features[k + 2], stage_size, init)
        a3 += weight_read(weights, features[k + 3], stage_size, init)
        k += 4
    while k < n:
        a0 += weight_read(weights, features[k], stage_size, init)
        k += 1
    return (a0 + a1) + (a2 + a3)


@njit(inline="always")
def td_update(features, target, step_size, weights, stage_size, init, coherence):
    """Move V of the board with ``features`` toward ``target``; returns the TD error
    ``delta = target - V``.

    Each weight moves by ``step_size * delta`` (``step_size`` is already divided by the
    features), times its coherence ``|E| / A`` where ``coherence`` is not empty (see the
    module docstring); a stage's untrained weight is first promoted (``weight_read``).
    """
    delta = np.float32(target) - weight_sum(weights, features, stage_size, init)
    step = np.float32(step_size) * delta
    if coherence.shape[0] == 0:
        if stage_size > 0:
            for k in range(features.shape[0]):
                f = features[k]
                weights[f] = weight_read(weights, f, stage_size, init) + step
        else:
            for k in range(features.shape[0]):
                weights[features[k]] += step
        return delta
    size = abs(delta)
    for k in range(features.shape[0]):
        f = features[k]
        e = coherence[2 * f]
        a = coherence[2 * f + 1]
        rate = abs(e) / a if a > 0 else np.float32(1)
        weights[f] = weight_read(weights, f, stage_size, init) + step * rate
        coherence[2 * f] = e + delta
        coherence[2 * f + 1] = a + size
    return delta


def lambda_weights(td_lambda: float, horizon: int) -> np.ndarray:
    """(H,) float64 weights of the k-step returns G1 .. GH in the truncated λ-return:
    ``(1 - λ) λ**(k-1)`` for k < H, ``λ**(H-1)`` for k = H (they sum to 1). ``(0, 1)``
    gives ``[1.0]``, TD(0); ``(1, n)`` gives n-step TD."""
    k = np.arange(1, horizon + 1, dtype=np.float64)
    weights = (1.0 - td_lambda) * td_lambda ** (k - 1)
    weights[-1] = td_lambda ** (horizon - 1)
    return weights


@njit(inline="always")
def _lambda_return(returns, start, first, count, lam):
    """The truncated λ-return of the afterstate ``first`` entries after ``start`` in the
    ring ``returns`` (H + 1, 2) float64 of (reward of the move that made it, that reward
    plus V(afterstate) when it was chosen), whose successors are the entries up to
    ``count``; where they are fewer than H, the game ended after the last: every longer
    return is the rewards that came (the end's value is 0)."""
    ring = returns.shape[0]
    horizon = lam.shape[0]
    m = count - 1 - first  # successors known
    target = 0.0
    rewards = 0.0  # the successors' rewards before the k-th
    for k in range(1, min(m, horizon) + 1):
        entry = (start + first + k) % ring
        target += lam[k - 1] * (rewards + returns[entry, 1])
        rewards += returns[entry, 0]
    rest = 0.0
    for k in range(m + 1, horizon + 1):
        rest += lam[k - 1]
    if rest > 0.0:
        target += rest * rewards
    return target


@njit(inline="always")
def learn_move(pending, returns, start, count, features, reward, q, learning):
    """The afterstate just chosen (``features`` (F,), its move's ``reward``, ``q`` = reward
    + its value) joins the ring ``pending`` (H + 1, F) int64 / ``returns`` (H + 1, 2) of the
    afterstates waiting for a target (``start``: the oldest, ``count`` of them); if the
    oldest now has its H successors, it is updated (``td_update``) and leaves. The next
    one to be updated is prefetched. ``learning`` is ``(lam (H,) float64, step_size,
    weights, stages, coherence)``.

    Returns ``(start, count, |TD error|, updates)``: the ring after it, and the update's
    error and count (0 or 1). With H = 1 the update is TD(0)'s, bit for bit: target = ``q``.
    """
    lam, step_size, weights, stages, coherence = learning
    _, stage_size, init = stages
    ring = pending.shape[0]
    entry = (start + count) % ring
    pending[entry, :] = features
    returns[entry, 0] = reward
    returns[entry, 1] = q
    count += 1
    error = 0.0
    updated = 0
    if count == ring:
        target = _lambda_return(returns, start, 0, count, lam)
        row = pending[start]
        error = abs(td_update(row, target, step_size, weights, stage_size, init, coherence))
        updated = 1
        start = (start + 1) % ring
        count -= 1
    # the next to be updated: its statistics (and, after H moves, its weights) have left
    # the caches since it was chosen
    if coherence.shape[0] > 0:
        for k in range(pending.shape[1]):
            prefetch(coherence, 2 * pending[start, k])
    if ring > 2:
        for k in range(pending.shape[1]):
            prefetch(weights, pending[start, k])
    return start, count, error, updated


@njit(inline="always")
def learn_end(pending, returns, start, count, learning):
    """The game ended after the newest pending afterstate: update each waiting one, oldest
    first, toward its return to the end (the last one's is 0). ``learning`` as for
    ``learn_move``. Returns ``(sum of |TD error|, updates)``; the ring is empty after it."""
    lam, step_size, weights, stages, coherence = learning
    _, stage_size, init = stages
    ring = pending.shape[0]
    error_sum = 0.0
    for first in range(count):
        target = _lambda_return(returns, start, first, count, lam)
        row = pending[(start + first) % ring]
        error_sum += abs(td_update(row, target, step_size, weights, stage_size, init, coherence))
    return error_sum, count


@njit(inline="always")
def stage_of(present, stage_masks):
    """The stage of a board whose tiles' exponents are the bits of ``present`` (bit e set:
    some cell holds 2**e): 0, or k + 1 for the last of ``stage_masks`` (K,) int64 whose
    tiles it all has (mask k: bit e set for each tile 2**e that starts stage k + 1)."""
    stage = 0
    for k in range(stage_masks.shape[0]):
        if present & stage_masks[k] == stage_masks[k]:
            stage = k + 1
    return stage


@intrinsic
def prefetch(typingctx, array, index):
    """Ask the CPU to start loading ``array[index]`` into its caches; changes nothing else.

    The training step computes the features of all its candidate moves first and
    prefetches their weights, so the ~100 scattered reads from the 268 MB table
    overlap instead of waiting one after another (about +20% moves/s).
    """

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        llvm_prefetch = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]),
            "llvm.prefetch.p0",
        )
        address = builder.bitcast(builder.gep(data, [args[1]]), byte_pointer)
        builder.call(llvm_prefetch, [address, i32(0), i32(3), i32(1)])  # read, keep, data cache
        return context.get_dummy_value()

    return types.void(array, types.int64), codegen
