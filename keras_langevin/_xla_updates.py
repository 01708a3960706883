"""TensorFlow: each noisy variable's update as one XLA computation, compiled once per shape.

With `jit_compile=True` on TensorFlow and dense gradients, a noisy variable's whole update
(the Keras drift, the noise and its generator) runs as one `tf.function(jit_compile=True)`.
The function takes the variable, its optimizer slots, the gradient and the variable's index as
inputs, so every variable of one shape and dtype runs the same compiled code: compilation grows
with the number of distinct shapes, not with depth. The index is an int32 input and reaches the
noise as its key index (`LangevinUpdates._langevin_update(..., noise_index=...)`), so each
variable draws its own noise from the one traced computation.

Two routes use it: `update_noisy`, for a step without a `tf.distribute` strategy (called
once per step with every noisy variable), and `replica_update`, for Keras's per-replica update
under a strategy (each replica's copy of a variable, compiled once per shape and device).
Inside an XLA-compiled train step the computations are inlined into it.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_langevin import _compat


class FunctionCache:
    """Holds compiled update functions outside Keras's and TensorFlow's variable tracking."""

    def __init__(self):
        self.functions = {}


def compiles(optimizer, grads):
    """`jit_compile` on TensorFlow, with dense gradients."""
    if not optimizer.jit_compile or keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not any(isinstance(g, tf.IndexedSlices) for g in grads)


def compiles_update(optimizer, grads):
    """The whole step's noisy variables go through `update_noisy` (no strategy: under one,
    Keras updates each replica, see `compiles_replica_update`)."""
    if not compiles(optimizer, grads):
        return False
    import tensorflow as tf

    return not tf.distribute.has_strategy()


def compiles_replica_update(optimizer, gradient, variable):
    """Under a `tf.distribute` strategy Keras updates each replica's copy of a variable
    (`variable` is then that copy, not the distributed variable): that update is compiled
    too, once per shape and device."""
    if not compiles(optimizer, [gradient]):
        return False
    import tensorflow as tf

    return (
        tf.distribute.has_strategy()
        and isinstance(variable, tf.Variable)
        and not isinstance(variable, tf.distribute.DistributedValues)
    )


def update_noisy(optimizer, noisy, learning_rate):
    """Updates the noisy variables, each through the compiled function of its shape.

    Args:
        optimizer: the Langevin optimizer.
        noisy: `(gradient, index)` pairs, `index` the variable's position in the optimizer's
            variable list.
        learning_rate: this step's learning rate.
    """
    update = update_function(optimizer)
    # The learning rate as a tensor (its value), not the variable.
    learning_rate = ops.copy(learning_rate)
    variables = _compat.trainable_variables(optimizer)
    for gradient, index in noisy:
        update(
            gradient,
            variables[index].value,
            optimizer._slots(index),
            learning_rate,
            ops.convert_to_tensor(index, dtype="int32"),
        )


def replica_update(optimizer, gradient, variable, index, learning_rate):
    """Updates this replica's copy `variable` of the variable at `index`, compiled."""
    slots = tuple(_compat.local_copy(slot) for slot in optimizer._slots(index))
    update_function(optimizer)(
        gradient,
        variable,
        slots,
        ops.copy(learning_rate),
        ops.convert_to_tensor(index, dtype="int32"),
        device=variable.device,
    )


def update_function(optimizer):
    """The optimizer's compiled update (one `tf.function`, traced once per shape)."""
    cache = optimizer._compiled_updates.functions
    update = cache.get("update")
    if update is None:
        import tensorflow as tf

        def update_one(gradient, variable, slots, learning_rate, index, device=None):
            del slots, device  # inputs only: the update reaches the slots through its lists
            _update_one(optimizer, gradient, variable, learning_rate, index)

        update = tf.function(update_one, jit_compile=True, autograph=False)
        cache["update"] = update
    return update


def _update_one(optimizer, gradient, variable, learning_rate, noise_index):
    # Traced once per shape (and device, under a strategy), with the first variable of that
    # shape: TensorFlow feeds each later variable and its slots (inputs of the function, which
    # the update reaches through the optimizer's lists) where the traced ones were read and
    # written, and the noise takes its key from the `noise_index` input, not from the traced
    # variable.
    index = _compat.variable_index(optimizer, variable)
    optimizer._langevin_update(
        gradient,
        _compat.trainable_variables(optimizer)[index],
        learning_rate,
        index,
        noise_index=noise_index,
    )
