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
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["prefetch", "stage_of", "td_update", "weight_read", "weight_sum"]


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
