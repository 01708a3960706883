"""How a Langevin optimizer updates its variables: the routes of a step.

`LangevinUpdates` sits between `LangevinMixin` (`base.py`: arguments, state, serialization)
and the Keras optimizer in the bases of every Langevin optimizer. It overrides Keras's two
update entry points, `_backend_update_step` (once per step, every variable) and `update_step`
(once per variable), and sends each variable one way:

- no noise (an unselected variable, or every variable of an optimizer constructed with
  sigma=0): Keras's own `update_step`, untouched, no random numbers;
- the plain path: Keras calls `update_step` for each variable (TensorFlow without XLA or with
  sparse gradients, each replica under `tf.distribute`), which updates a noisy variable with
  its own index as the noise's key index;
- TensorFlow with `jit_compile`: each noisy variable's update compiled with XLA, once per
  shape (`_xla_updates`);
- JAX: the noise of all noisy variables drawn per shape and dtype, one stacked draw each (the
  same numbers as one draw per variable, bit for bit, but XLA compiles the generator once per
  distinct shape instead of once per variable: the start-up of deep models), then each
  variable updated with its slice.

Every route ends in `_langevin_update`, which takes the noise's key index (or the noise
already drawn) as an argument: the Keras drift, the preconditioner, then the noise.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_langevin import _compat, _xla_updates
from keras_langevin import noise as noise_lib


class LangevinUpdates:
    """The update routes of a Langevin optimizer, and the hooks each optimizer overrides.

    It reads what `LangevinMixin` sets up: `noise`, `jit_compile`, `langevin_slots`,
    `_noise_off`, `_langevin_indices`, `_langevin_seed`, `_compiled_updates` and
    `_current_sigma()`.
    """

    # --------------------------------------------------------------------------- hooks

    def _langevin_pre_update(self, variable, index):
        """Values needed by the preconditioner that the Keras update overwrites."""
        return

    def _langevin_preconditioner(self, variable, index, pre_update):
        """`P_t` after the Keras update (a tensor like `variable`), or None for `P_t = 1`."""
        return

    def _langevin_add_noise(self, variable, index, increment):
        """Adds the noise term `increment` (`sigma * sqrt(lr * P) * xi`) to `variable`."""
        self.assign_add(variable, increment)

    # -------------------------------------------------------------------- one variable

    def _adds_noise(self, index):
        # Decided at trace time: static zero sigma or an unselected variable draw nothing.
        return not self._noise_off and index in self._langevin_indices

    def update_step(self, gradient, variable, learning_rate):
        index = _compat.variable_index(self, variable)
        if not self._adds_noise(index):
            return super().update_step(gradient, variable, learning_rate)
        if _xla_updates.compiles_replica_update(self, gradient, variable):
            return _xla_updates.replica_update(self, gradient, variable, index, learning_rate)
        self._langevin_update(gradient, variable, learning_rate, index, noise_index=index)

    def _langevin_update(self, gradient, variable, learning_rate, index, noise_index, xi=None):
        """One noisy variable's update: the Keras drift, then the preconditioned noise.

        Args:
            gradient, variable, learning_rate: as Keras's `update_step`.
            index: the variable's position in the optimizer's variable list (a Python int):
                its slots and the hooks' `index`.
            noise_index: the key index of the noise: `index`, or an int32 tensor where one
                compiled update serves every variable of a shape.
            xi: this step's noise of the variable, already drawn (JAX's grouped draw), or
                None to draw it here from `noise_index`.
        """
        pre_update = self._langevin_pre_update(variable, index)
        super().update_step(gradient, variable, learning_rate)
        preconditioner = self._langevin_preconditioner(variable, index, pre_update)
        dtype = variable.dtype
        scale = ops.multiply(
            ops.cast(self._current_sigma(), dtype), ops.sqrt(ops.cast(learning_rate, dtype))
        )
        if preconditioner is not None:
            scale = ops.multiply(scale, ops.sqrt(preconditioner))
        if xi is None:
            key = noise_lib.step_key(self._langevin_seed, self.iterations, noise_index)
            xi = noise_lib.sample(self.noise, variable.shape, key, dtype)
        self._langevin_add_noise(variable, index, ops.multiply(scale, xi))

    def _slots(self, index):
        """The optimizer variables that belong to the variable at `index` (its momentums,
        velocities, ...), from the slot lists the class declares in `langevin_slots`."""
        return tuple(
            slots[index].value
            for slots in (_compat.slot_list(self, name) for name in self.langevin_slots)
            if slots
        )

    # ------------------------------------------------------------------------ one step

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        indices = [_compat.variable_index(self, v) for v in trainable_variables]
        noisy = [k for k, i in enumerate(indices) if self._adds_noise(i)]
        compiled = bool(noisy) and _xla_updates.compiles_update(self, grads)
        if not compiled and (not noisy or keras.backend.backend() != "jax"):
            # Keras's step, which calls `update_step` for each variable (the plain path).
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        noisy_set = set(noisy)
        plain = [k for k in range(len(trainable_variables)) if k not in noisy_set]
        # Always, even with no plain variable: Keras's step also does the optimizer's own
        # once-per-step bookkeeping there (Nadam advances its momentum schedule's product).
        super()._backend_update_step(
            [grads[k] for k in plain], [trainable_variables[k] for k in plain], learning_rate
        )
        if compiled:
            _xla_updates.update_noisy(self, [(grads[k], indices[k]) for k in noisy], learning_rate)
            return
        # JAX, inside the jitted train step: the noise drawn per shape, not per variable.
        drawn = draw_grouped_noise(self, [indices[k] for k in noisy])
        for k in noisy:
            index = indices[k]
            self._langevin_update(
                grads[k],
                trainable_variables[k],
                learning_rate,
                index,
                noise_index=index,
                xi=drawn[index],
            )


def draw_grouped_noise(optimizer, indices):
    """This step's noise of the variables at `indices`, one stacked draw per shape and dtype
    (in first-seen order), as a dict index -> noise of that variable's shape."""
    variables = _compat.trainable_variables(optimizer)
    groups = {}
    for index in indices:
        variable = variables[index]
        key = (tuple(int(d) for d in variable.shape), variable.dtype)
        groups.setdefault(key, []).append(index)
    drawn = {}
    for (shape, dtype), group in groups.items():
        stacked = noise_lib.sample_many(
            optimizer.noise, shape, optimizer._langevin_seed, optimizer.iterations, group, dtype
        )
        drawn.update((index, stacked[j]) for j, index in enumerate(group))
    return drawn
