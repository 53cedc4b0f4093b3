"""The TD(0) step of an n-tuple network, shared by its kernels for packed and flat boards.

A board's features are flat indices into the network's weights (float32, one table per
tuple laid end to end); its value is the sum of the weights they index. Compiled
``@njit(inline="always")`` pieces for other compiled loops.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["prefetch", "td_update", "weight_sum"]


@njit(inline="always")
def weight_sum(weights, features):
    """V from feature indices: the sum of ``weights`` (flat, float32) at ``features`` (F,)."""
    v = np.float32(0)
    for k in range(features.shape[0]):
        v += weights[features[k]]
    return v


@njit(inline="always")
def td_update(features, target, step_size, weights):
    """Move V of the board with ``features`` toward ``target``: each weight moves by
    ``step_size * delta`` (``step_size`` is already divided by the features). Returns the
    TD error ``delta = target - V``."""
    delta = np.float32(target) - weight_sum(weights, features)
    step = np.float32(step_size) * delta
    for k in range(features.shape[0]):
        weights[features[k]] += step
    return delta


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
