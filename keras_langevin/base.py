"""What every Langevin optimizer shares.

`LangevinMixin` goes before a Keras optimizer in the bases of a class. The Keras optimizer does
the drift; the mixin then adds, to each selected variable,

    sigma_t * sqrt(learning_rate_t * P_t) * xi_t,    xi_t ~ N(0, I) fresh for every step and variable,

where `P_t` is the optimizer's own diagonal preconditioner, given by one hook per optimizer.
Which variables are selected is decided once, at `build`; the update of an unselected variable
is exactly the Keras update and draws no random numbers. A constant `sigma` of 0 adds nothing
at all, so the optimizer is then Keras's own.
"""

import math
from numbers import Real

import keras
from keras import ops

from keras_langevin import noise as noise_lib
from keras_langevin import selection

_SEED_RANGE = 2**31

langevin_args_doc = """sigma: Float >= 0 or a `keras.optimizers.schedules.LearningRateSchedule`
            (a function of the step, e.g. `keras_langevin.schedules.LogAnnealing`, or Keras's
            `PiecewiseConstantDecay` to switch the noise off at some step). The noise level.
            Defaults to `0.0`, which is exactly the Keras optimizer.
        langevin_layers: Which variables get noise ("Layer Langevin"). `None` (default): all.
            A float `f` in (0, 1]: the variables of the first `ceil(f * L)` of the `L` layers
            that own trainable variables, in forward order (nearest the input first). A list
            of layer names or glob patterns. A callable `predicate(variable) -> bool`.
        seed: Int or `None`. Seeds the noise. `None` draws a seed from Python's `random`
            module when the optimizer is built (so `keras.utils.set_random_seed` makes it
            reproducible); the seed is an optimizer variable, saved with the optimizer and
            identical on every replica.
        noise: `"gaussian"` (default) or `"rademacher"` (+-1 with probability 1/2: the
            simplified weak Euler scheme, same first three moments, weak order 1, cheaper).
        jit_compile: Bool, TensorFlow only. Compiles the whole update of all variables into
            one XLA computation, even when the model's train step is not compiled (on CPU,
            Keras turns XLA off for the model). Defaults to `True`. Not used under a
            `tf.distribute` strategy, where the update runs per replica as in Keras. Variables
            without noise (all of them when `sigma=0`) are always updated by Keras's own
            path, bit for bit.
        **kwargs: every base optimizer argument of Keras (`weight_decay`, `clipnorm`,
            `clipvalue`, `global_clipnorm`, `use_ema`, `ema_momentum`,
            `ema_overwrite_frequency`, `loss_scale_factor`, `gradient_accumulation_steps`,
            `name`), with Keras's defaults."""


def _validate_sigma(sigma):
    if isinstance(sigma, keras.optimizers.schedules.LearningRateSchedule):
        return sigma
    if isinstance(sigma, bool) or not isinstance(sigma, Real):
        raise TypeError(
            "Argument `sigma` must be a float >= 0 or a "
            f"keras.optimizers.schedules.LearningRateSchedule. Received: sigma={sigma!r}"
        )
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"Argument `sigma` must be finite and >= 0. Received: sigma={sigma!r}")
    return float(sigma)


def _validate_seed(seed):
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"Argument `seed` must be an int or None. Received: seed={seed!r}")
    return seed


class _FunctionCache:
    """Holds compiled update functions outside Keras's and TensorFlow's variable tracking."""

    def __init__(self):
        self.functions = {}


class LangevinMixin:
    """Adds preconditioned Langevin noise to the update of a Keras optimizer.

    Subclasses list the mixin before the Keras optimizer and may override two hooks:
    `_langevin_pre_update` (values the preconditioner needs from before the Keras update) and
    `_langevin_preconditioner` (the tensor `P_t` after the update, or None when `P_t = 1`).
    """

    def __init__(
        self,
        *,
        sigma=0.0,
        langevin_layers=None,
        seed=None,
        noise="gaussian",
        jit_compile=True,
        **kwargs,
    ):
        # Validate before Keras creates any variable: bad input fails at construction.
        sigma = _validate_sigma(sigma)
        langevin_layers = selection.validate_selection(langevin_layers)
        seed = _validate_seed(seed)
        noise = noise_lib.validate_noise(noise)
        if kwargs.get("name") is None:
            kwargs["name"] = type(self).__name__.lower()
        super().__init__(**kwargs)
        self._sigma = sigma
        self.langevin_layers = langevin_layers
        self.seed = seed
        self.noise = noise
        self.jit_compile = bool(jit_compile)
        self._langevin_indices = frozenset()
        self._compiled_updates = _FunctionCache()

    # ----------------------------------------------------------------------------- state

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        seed = self.seed
        if seed is None:
            import random

            seed = random.randrange(_SEED_RANGE)
        self._langevin_seed = self.add_variable(
            shape=(),
            initializer=keras.initializers.Constant(seed % _SEED_RANGE),
            dtype="int32",
            name="langevin_seed",
        )
        self._langevin_indices = selection.select(list(variables), self.langevin_layers)

    @property
    def langevin_variables(self):
        """The model variables that receive noise (available after `build`)."""
        if not self.built:
            return []
        return [
            v for i, v in enumerate(self._trainable_variables) if i in self._langevin_indices
        ]

    @property
    def sigma(self):
        """The current noise level (a float, or a tensor when `sigma` is a schedule)."""
        if isinstance(self._sigma, keras.optimizers.schedules.LearningRateSchedule):
            return self._sigma(self._iterations)
        return self._sigma

    # ------------------------------------------------------------------------ hot path

    def _adds_noise(self, index):
        # Decided at trace time: static zero sigma or an unselected variable draw nothing.
        return self._sigma != 0.0 and index in self._langevin_indices

    def _langevin_pre_update(self, variable, index):
        """Values needed by the preconditioner that the Keras update overwrites."""
        return

    def _langevin_preconditioner(self, variable, index, pre_update):
        """`P_t` after the Keras update (a tensor like `variable`), or None for `P_t = 1`."""
        return

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        if not self._adds_noise(index):
            return super().update_step(gradient, variable, learning_rate)
        pre_update = self._langevin_pre_update(variable, index)
        super().update_step(gradient, variable, learning_rate)
        preconditioner = self._langevin_preconditioner(variable, index, pre_update)
        self._add_noise(variable, index, learning_rate, preconditioner)

    def _add_noise(self, variable, index, learning_rate, preconditioner):
        dtype = variable.dtype
        scale = ops.multiply(
            ops.cast(self.sigma, dtype), ops.sqrt(ops.cast(learning_rate, dtype))
        )
        if preconditioner is not None:
            scale = ops.multiply(scale, ops.sqrt(preconditioner))
        key = noise_lib.step_key(self._langevin_seed, self._iterations, index)
        xi = noise_lib.sample(self.noise, variable.shape, key, dtype)
        self.assign_add(variable, ops.multiply(scale, xi))

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # On TensorFlow the noisy variables are updated by one XLA computation; the others go
        # through Keras's own path, so their update is Keras's bit for bit.
        indices = [self._get_variable_index(v) for v in trainable_variables]
        noisy = [k for k, i in enumerate(indices) if self._adds_noise(i)]
        if not noisy or not self._compiles_update(grads):
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        noisy_set = set(noisy)
        plain = [k for k in range(len(indices)) if k not in noisy_set]
        if plain:
            super()._backend_update_step(
                [grads[k] for k in plain], [trainable_variables[k] for k in plain], learning_rate
            )
        noisy_indices = tuple(indices[k] for k in noisy)
        update = self._compiled_updates.functions.get(noisy_indices)
        if update is None:
            import tensorflow as tf

            def update_all(grads, learning_rate):
                for grad, index in zip(grads, noisy_indices):
                    self.update_step(grad, self._trainable_variables[index], learning_rate)

            update = tf.function(update_all, jit_compile=True, autograph=False)
            self._compiled_updates.functions[noisy_indices] = update
        # The learning rate as a tensor (its value), not the variable.
        update([grads[k] for k in noisy], ops.copy(learning_rate))

    def _compiles_update(self, grads):
        if not self.jit_compile or keras.backend.backend() != "tensorflow":
            return False
        import tensorflow as tf

        if tf.distribute.has_strategy():  # a real strategy: Keras updates each replica
            return False
        return not any(isinstance(g, tf.IndexedSlices) for g in grads)

    # ---------------------------------------------------------------------- serialization

    def get_config(self):
        config = super().get_config()
        sigma = self._sigma
        if not isinstance(sigma, float):
            sigma = keras.optimizers.schedules.serialize(sigma)
        layers = self.langevin_layers
        if callable(layers):
            layers = keras.saving.serialize_keras_object(layers)
        elif isinstance(layers, tuple):
            layers = list(layers)
        config.update(
            {
                "sigma": sigma,
                "langevin_layers": layers,
                "seed": self.seed,
                "noise": self.noise,
                "jit_compile": self.jit_compile,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("sigma"), dict):
            config["sigma"] = keras.optimizers.schedules.deserialize(
                config["sigma"], custom_objects=custom_objects
            )
        if isinstance(config.get("langevin_layers"), dict):
            config["langevin_layers"] = keras.saving.deserialize_keras_object(
                config["langevin_layers"], custom_objects=custom_objects
            )
        return super().from_config(config, custom_objects=custom_objects)
