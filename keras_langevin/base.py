"""What every Langevin optimizer shares.

`LangevinMixin` goes before a Keras optimizer in the bases of a class. The Keras optimizer does
the drift; the mixin then adds, to each selected variable,

    sigma_t * sqrt(learning_rate_t * P_t) * xi_t,    xi_t ~ N(0, I) fresh for every step and variable,

where `P_t` is the optimizer's own diagonal preconditioner, given by one hook per optimizer.
Which variables are selected is decided once, at `build`; the update of an unselected variable
is exactly the Keras update and draws no random numbers. A constant `sigma` of 0 adds nothing
at all, so the optimizer is then Keras's own.
"""

from __future__ import annotations

import inspect
import math
from numbers import Integral, Real

import keras
import numpy as np
from keras import ops

from keras_langevin import _compat, selection
from keras_langevin import noise as noise_lib

Sigma = float | keras.optimizers.schedules.LearningRateSchedule

_SEED_LIMIT = 2**32  # the noise keys are 32-bit words, as Keras's own seeds
_SEED_DRAW_RANGE = 2**31  # seed=None draws from this range
# Steps at which a sigma schedule is checked at construction (0..10, then 1-2-5 up to 10^9).
_PROBE_STEPS = list(range(11)) + [m * 10**k for k in range(1, 10) for m in (1, 2, 5)][1:]

langevin_args_doc = """sigma: Float >= 0 or a `keras.optimizers.schedules.LearningRateSchedule`
            (a function of the step, e.g. `keras_langevin.schedules.LogAnnealing`, or Keras's
            `PiecewiseConstantDecay` to switch the noise off at some step). The noise level.
            Defaults to `0.0`, which is exactly the Keras optimizer. A float sigma is an
            optimizer variable, settable like `learning_rate` (`optimizer.sigma = 1e-3`
            takes effect at the next step, without retracing), except when it is 0 at
            construction: that optimizer is Keras's own and its sigma stays 0 (setting
            another value raises; construct with the value you start from, and set 0 to
            pause the noise: a paused optimizer saves and reloads resumable). Through the
            `LossScaleOptimizer` of mixed precision, `optimizer.sigma` reaches this one.
        langevin_layers: Which variables get noise ("Layer Langevin"). `None` (default): all.
            A float `f` in (0, 1]: the variables of the first `ceil(f * L)` (at least one) of
            the `L` layers that own trainable variables, in forward order (nearest the input
            first; subclassed models are traced to find it). A layer name, a list of layer
            names or glob patterns. A callable `predicate(variable) -> bool`.
        seed: Int in [0, 2**32) or `None`. Seeds the noise. `None` draws a seed from Python's
            `random` module when the optimizer is built (so `keras.utils.set_random_seed`
            makes it reproducible); the seed is an optimizer variable, saved with the
            optimizer and identical on every replica.
        noise: `"gaussian"` (default) or `"rademacher"` (+-1 with probability 1/2: the
            simplified weak Euler scheme, same first three moments, weak order 1, cheaper).
        jit_compile: Bool, TensorFlow only. Compiles the update of each noisy variable (the
            Keras update, the noise and its generator) into one XLA computation, even when
            the model's train step is not compiled (on CPU, Keras turns XLA off for the
            model); variables of one shape share one compilation, so the start-up does not
            grow with depth. Also per replica under a `tf.distribute` strategy. Defaults to
            `True`. Variables without noise (all of them when `sigma=0`) are always updated
            by Keras's own path, bit for bit.
        **kwargs: any other base optimizer argument of Keras, by keyword.

    The arguments of the Keras optimizer keep their position (a drop-in replacement); the
    Langevin arguments are keyword-only."""


def fill_docstring(cls):
    """Puts the shared Langevin arguments into `cls.__doc__` (None under `python -OO`)."""
    if cls.__doc__:
        cls.__doc__ = cls.__doc__.replace("{{langevin_args}}", langevin_args_doc)
    return cls


def _float_limit():
    return float(np.finfo(keras.backend.floatx()).max)


def _scalar(value):
    """A scalar tensor or array as a Python float; anything else unchanged."""
    if isinstance(value, (bool, Real, str)) or value is None:
        return value
    try:
        shape = tuple(getattr(value, "shape", (None,)))
    except TypeError:
        return value
    if shape == () and (ops.is_tensor(value) or isinstance(value, np.ndarray)):
        array = ops.convert_to_numpy(value)
        if np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer):
            return float(array)
    return value


def _validate_sigma_value(sigma, arg="sigma"):
    sigma = _scalar(sigma)
    if isinstance(sigma, bool) or not isinstance(sigma, Real):
        raise TypeError(
            f"Argument `{arg}` must be a float >= 0 or a "
            f"keras.optimizers.schedules.LearningRateSchedule. Received: {arg}={sigma!r}"
        )
    value = float(sigma)
    if not math.isfinite(value) or value < 0 or value > _float_limit():
        raise ValueError(
            f"Argument `{arg}` must be >= 0 and finite in {keras.backend.floatx()} "
            f"(at most {_float_limit():.4g}). Received: {arg}={sigma!r}"
        )
    return value


def _tensor_step(step):
    """`step` as the backend's default integer tensor, or None where it does not fit (JAX
    without 64-bit integers)."""
    dtype = keras.backend.standardize_dtype(ops.convert_to_tensor(0).dtype)
    return ops.convert_to_tensor(step, dtype=dtype) if step <= np.iinfo(dtype).max else None


def _schedule_value(schedule, step):
    """The schedule's value at `step` (None where it cannot be asked): called with a Python
    int, and where that raises, with an integer tensor (some schedules need one)."""
    try:
        return float(ops.convert_to_numpy(schedule(step)))
    except Exception as raised:  # noqa: BLE001 - retried with a tensor step
        error = raised
    tensor = _tensor_step(step)
    if tensor is None:
        return None
    try:
        return float(ops.convert_to_numpy(schedule(tensor)))
    except Exception as raised:  # noqa: BLE001 - reported below, with the schedule
        error = raised
    raise ValueError(
        "Argument `sigma` as a schedule must be callable on the step (an int or an integer "
        f"tensor) and give a number; at step {step} it raised {type(error).__name__}: "
        f"{str(error)[:200]}. Received: sigma={schedule!r}"
    ) from error


def _probe_schedule(schedule):
    """Checks a sigma schedule at a grid of steps: every value finite and >= 0."""
    for step in _PROBE_STEPS:
        value = _schedule_value(schedule, step)
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ValueError(
                "Argument `sigma` as a schedule must give values >= 0 and finite at every "
                f"step; it gives {value!r} at step {step}. Received: sigma={schedule!r}"
            )


def _validate_sigma(sigma):
    if isinstance(sigma, keras.optimizers.schedules.LearningRateSchedule):
        _probe_schedule(sigma)
        return sigma
    return _validate_sigma_value(sigma)


def _validate_seed(seed):
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise TypeError(f"Argument `seed` must be an int or None. Received: seed={seed!r}")
    if not 0 <= seed < _SEED_LIMIT:
        raise ValueError(
            f"Argument `seed` must be in [0, 2**32), as Keras's seeds. Received: seed={seed!r}"
        )
    return int(seed)


def _validate_jit_compile(jit_compile):
    if not isinstance(jit_compile, (bool, np.bool_)):
        raise TypeError(
            f"Argument `jit_compile` must be True or False. Received: jit_compile={jit_compile!r}"
        )
    return bool(jit_compile)


def _seed_as_int32(seed):
    """The seed as the int32 with its bits (the noise casts it back to uint32)."""
    return seed - _SEED_LIMIT if seed >= 2**31 else seed


def _same_on_every_process(seed):
    """Process 0's `seed` on every process of a multi-process JAX job, else `seed`.

    Each process draws `seed=None` from its own Python `random`; the seed variable must hold
    one value everywhere (JAX refuses a replicated array whose processes disagree).
    TensorFlow's multi-worker strategy broadcasts initial values itself. A collective: every
    process builds its optimizer, as it does under `keras.distribution`.
    """
    if keras.backend.backend() != "jax":
        return seed
    import jax

    if jax.process_count() == 1:
        return seed
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.int32(seed)))


def _default_name(cls):
    """`ladam`, then `ladam_1`, `ladam_2`, ...: Keras's de-duplication of optimizer names."""
    prefix = cls.__name__.lower()
    uid = keras.backend.get_uid(prefix)
    return prefix if uid == 1 else f"{prefix}_{uid - 1}"


def langevin_optimizer(optimizer: keras.optimizers.Optimizer) -> LangevinMixin:
    """The Langevin optimizer itself, or the one inside Keras's wrappers.

    Under a `mixed_float16` policy, `model.compile` wraps the optimizer in a
    `keras.optimizers.LossScaleOptimizer`, which does not forward the Langevin attributes;
    `keras_langevin.langevin_optimizer(model.optimizer).langevin_variables` reaches them
    either way.

    Args:
        optimizer: a Langevin optimizer, or a `LossScaleOptimizer` around one.

    Returns:
        The `LangevinMixin` instance.

    Raises:
        ValueError: there is no Langevin optimizer in `optimizer`.
    """
    inner = optimizer
    while not isinstance(inner, LangevinMixin):
        inner = getattr(inner, "inner_optimizer", None)
        if inner is None:
            raise ValueError(
                "Argument `optimizer` must be a keras_langevin optimizer or a "
                f"LossScaleOptimizer around one. Received: optimizer={optimizer!r}"
            )
    return inner


def _serialize_predicate(predicate):
    """The config of a `langevin_layers` predicate; refused unless Keras can load it back."""
    target = predicate if inspect.isfunction(predicate) else type(predicate)
    name = keras.saving.get_registered_name(target)
    if keras.saving.get_registered_object(name) is not target:
        raise ValueError(
            "Argument `langevin_layers` is a function that Keras cannot load back, so the "
            "optimizer cannot be saved. Register it: decorate its definition (a named, "
            "module-level function, or a class with `get_config`) with "
            "`@keras.saving.register_keras_serializable(package=...)`, or select the layers "
            f"by name. Received: langevin_layers={predicate!r}"
        )
    return keras.saving.serialize_keras_object(predicate)


def _no_noise_message(cls, sigma):
    keras_class = next(
        c
        for c in cls.__mro__
        if issubclass(c, keras.optimizers.Optimizer) and not issubclass(c, LangevinMixin)
    )
    return (
        f"{cls.__name__} adds noise to the layers nearest the input, so it needs `sigma` > 0 "
        f"(a float or a schedule): with sigma=0 it would add no noise, ever, and be "
        f"keras.optimizers.{keras_class.__name__}. Pass the noise level, e.g. "
        f"{cls.__name__}(sigma=1e-3), or use keras.optimizers.{keras_class.__name__}. "
        f"Received: sigma={sigma!r}"
    )


class _FunctionCache:
    """Holds compiled update functions outside Keras's and TensorFlow's variable tracking."""

    def __init__(self):
        self.functions = {}


class _ModelReference:
    """The optimizer's model, held outside Keras's and TensorFlow's tracking (a tracked model
    would become a dependency of the optimizer's checkpoint). A plain reference, as a Keras
    callback holds its model: `optimizer.set_model(build_model())` must not lose the model
    when the caller keeps no other reference to it."""

    def __init__(self):
        self.model = None

    def set(self, model):
        self.model = model

    def get(self):
        return self.model


class LangevinMixin:
    """Adds preconditioned Langevin noise to the update of a Keras optimizer.

    Subclasses list the mixin before the Keras optimizer, declare in `langevin_slots` the
    names of the Keras optimizer's per-variable slot lists (what its `build` creates), and may
    override two hooks: `_langevin_pre_update` (values the preconditioner needs from before the
    Keras update) and `_langevin_preconditioner` (the tensor `P_t` after the update, or None
    when `P_t = 1`).
    """

    langevin_slots: tuple[str, ...] = ()
    # True for classes whose name promises noise (the Layer forms): sigma=0 is refused.
    langevin_requires_noise: bool = False

    def __init__(
        self,
        *,
        sigma: Sigma = 0.0,
        langevin_layers: selection.LayerSelection = None,
        seed: int | None = None,
        noise: str = "gaussian",
        jit_compile: bool = True,
        **kwargs,
    ) -> None:
        # A config saved while the noise was paused (sigma set to 0): noise traced, sigma 0.
        paused = bool(kwargs.pop("sigma_paused", False))
        # Validate before Keras creates any variable: bad input fails at construction.
        sigma = _validate_sigma(sigma)
        if paused and sigma != 0.0:
            raise ValueError(
                "`sigma_paused=True` (saved by `get_config` while the noise was paused) goes "
                f"with sigma=0. Received: sigma={sigma!r}"
            )
        langevin_layers = selection.validate_selection(langevin_layers)
        seed = _validate_seed(seed)
        noise = noise_lib.validate_noise(noise)
        jit_compile = _validate_jit_compile(jit_compile)
        if self.langevin_requires_noise and sigma == 0.0 and not paused:
            raise ValueError(_no_noise_message(type(self), sigma))
        _compat.check_optimizer(self)
        if kwargs.get("name") is None:
            kwargs["name"] = _default_name(type(self))
        super().__init__(**kwargs)
        self._sigma = sigma
        # sigma = 0 at construction is the Keras optimizer: no noise is ever traced.
        self._noise_off = isinstance(sigma, float) and sigma == 0.0 and not paused
        if isinstance(sigma, float):
            # Like Keras's learning rate: a variable, so setting it needs no retracing.
            self._sigma_variable = self.add_variable(
                shape=(),
                initializer=keras.initializers.Constant(sigma),
                dtype=keras.backend.floatx(),
                aggregation="only_first_replica",
                name="sigma",
            )
        self.langevin_layers = langevin_layers
        self.seed = seed
        self.noise = noise
        self.jit_compile = jit_compile
        self._langevin_indices = frozenset()
        self._compiled_updates = _FunctionCache()
        self._model = _ModelReference()
        self._drawn_noise = {}  # index -> this step's noise, while an update is traced
        self._noise_index = None  # the noise's variable index as an input, while traced

    # ----------------------------------------------------------------------------- state

    def set_model(self, model: keras.Layer) -> None:
        """Tells the optimizer which model its variables belong to.

        Layer Langevin needs the model to order its layers (a fraction) and to name them
        (layer names and patterns, nested models included). `model.fit` tells the optimizer
        itself (the model Keras is fitting); a custom training loop calls this once, before
        the first step:

            optimizer = keras_langevin.LayerLAdam(1e-3, sigma=1e-3)
            optimizer.set_model(model)
            ...
            optimizer.apply(grads, model.trainable_variables)

        Args:
            model: the `keras.Model` (or layer) whose trainable variables the optimizer
                updates. The optimizer keeps a reference to it.

        Raises:
            TypeError: `model` is not a Keras layer or model.
            ValueError: the optimizer is already built and this model would select other
                variables than those it was built with.
        """
        if not isinstance(model, keras.Layer):
            raise TypeError(
                "Argument `model` must be a keras.Model (or keras.Layer) holding the "
                f"optimizer's variables. Received: model={model!r}"
            )
        if self.built and self._langevin_indices != self._select(self._trainable(), model):
            raise ValueError(
                f"The optimizer is already built, with another selection of noisy variables "
                f"than model '{model.name}' gives: call `set_model` before the first step "
                f"(or before `build`). Received: model={model!r}"
            )
        self._model.set(model)

    def _resolve_model(self, variables):
        """The model of `variables`: the one given to `set_model`, else the one Keras is
        fitting or compiled with this optimizer (found by identity), else None."""
        model = self._model.get()
        if model is not None:
            outside = selection.unowned(variables, model)
            if outside:
                raise ValueError(
                    f"The model given to `set_model` ('{model.name}') does not hold "
                    f"{len(outside)} of the optimizer's variables, e.g. "
                    f"{variables[outside[0]].path!r}. Give the model whose trainable "
                    "variables the optimizer updates."
                )
            return model
        candidates = [
            m for m in _compat.models_compiled_with(self) if not selection.unowned(variables, m)
        ]
        if len(candidates) > 1 and isinstance(self.langevin_layers, float):
            raise ValueError(
                "Several models are compiled with this optimizer "
                f"({', '.join(repr(m.name) for m in candidates)}): call "
                "`optimizer.set_model(model)` to say which one it updates."
            )
        return candidates[0] if len(candidates) == 1 else None

    def _select(self, variables, model):
        if self.langevin_layers is None or callable(self.langevin_layers):
            return selection.select(variables, self.langevin_layers)
        return selection.select(variables, self.langevin_layers, model)

    def _trainable(self):
        return list(_compat.trainable_variables(self))

    def build(self, variables) -> None:
        if self.built:
            return
        variables = list(variables)
        model = None
        if self.langevin_layers is not None and not callable(self.langevin_layers):
            model = self._resolve_model(variables)
        if isinstance(self.langevin_layers, float) and model is None:
            # Before Keras creates anything: a failed build leaves the optimizer unbuilt.
            raise ValueError(selection.NO_MODEL_MESSAGE.format(value=self.langevin_layers))
        super().build(variables)
        seed = self.seed
        if seed is None:
            import random

            seed = _same_on_every_process(random.randrange(_SEED_DRAW_RANGE))
        self._langevin_seed = self.add_variable(
            shape=(),
            initializer=keras.initializers.Constant(_seed_as_int32(seed)),
            dtype="int32",
            name="langevin_seed",
        )
        self._langevin_indices = self._select(variables, model)
        _compat.check_slots(self, self.langevin_slots)

    def reseed(self, seed: int) -> None:
        """Sets the seed of the noise, from the next step on.

        Before `build` it replaces the `seed` argument; after, it sets the optimizer's seed
        variable (saved with the optimizer, identical on every replica). The same seed at
        the same step gives the same noise.

        Args:
            seed: Int in [0, 2**32).

        Raises:
            TypeError, ValueError: `seed` is not an int in [0, 2**32).
        """
        if seed is None:
            raise TypeError(
                f"Argument `seed` must be an int in [0, 2**32). Received: seed={seed!r}"
            )
        seed = _validate_seed(seed)
        self.seed = seed
        if self.built:
            self._langevin_seed.assign(_seed_as_int32(seed))

    @property
    def langevin_variables(self) -> list:
        """The model variables that receive noise (available after `build`; empty for an
        optimizer constructed with sigma=0, which never adds noise)."""
        if not self.built or self._noise_off:  # sigma=0 at construction: no noise, ever
            return []
        return [v for i, v in enumerate(self._trainable()) if i in self._langevin_indices]

    @property
    def sigma(self):
        """The current noise level: a tensor (the variable's value, or the schedule's value
        at the current step).

        Settable with a float when `sigma` is a float that was not 0 at construction; the new
        value is used from the next step on.
        """
        if isinstance(self._sigma, keras.optimizers.schedules.LearningRateSchedule):
            return self._sigma(self.iterations)
        return ops.convert_to_tensor(self._sigma_variable)

    @sigma.setter
    def sigma(self, value) -> None:
        if isinstance(self._sigma, keras.optimizers.schedules.LearningRateSchedule):
            raise TypeError(
                "This optimizer was created with a schedule as its `sigma` argument, hence its "
                "sigma is not settable. Construct it with a float `sigma` to set it later. "
                f"Received: sigma={value!r}"
            )
        if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
            raise TypeError(
                "A sigma schedule can only be given at construction; set a float (or a scalar "
                "tensor) here. "
                f"Received: sigma={value!r}"
            )
        value = _validate_sigma_value(value)
        if self._noise_off and value != 0.0:
            raise ValueError(
                "This optimizer was constructed with sigma=0, which is exactly the Keras "
                "optimizer (no noise is traced), so its sigma cannot be changed. Construct "
                "it with the sigma you start from (and set sigma to 0 to pause the noise). "
                f"Received: sigma={value!r}"
            )
        self._sigma_variable.assign(value)

    def _current_sigma(self):
        if isinstance(self._sigma, keras.optimizers.schedules.LearningRateSchedule):
            return self._sigma(self.iterations)
        return self._sigma_variable

    # ------------------------------------------------------------------------ hot path

    def _adds_noise(self, index):
        # Decided at trace time: static zero sigma or an unselected variable draw nothing.
        return not self._noise_off and index in self._langevin_indices

    def _langevin_pre_update(self, variable, index):
        """Values needed by the preconditioner that the Keras update overwrites."""
        return

    def _langevin_preconditioner(self, variable, index, pre_update):
        """`P_t` after the Keras update (a tensor like `variable`), or None for `P_t = 1`."""
        return

    def update_step(self, gradient, variable, learning_rate):
        index = _compat.variable_index(self, variable)
        if not self._adds_noise(index):
            return super().update_step(gradient, variable, learning_rate)
        if self._compiles_replica_update(gradient, variable):
            return self._compiled_replica_update(gradient, variable, index, learning_rate)
        pre_update = self._langevin_pre_update(variable, index)
        super().update_step(gradient, variable, learning_rate)
        preconditioner = self._langevin_preconditioner(variable, index, pre_update)
        self._add_noise(variable, index, learning_rate, preconditioner)

    def _add_noise(self, variable, index, learning_rate, preconditioner):
        dtype = variable.dtype
        scale = ops.multiply(
            ops.cast(self._current_sigma(), dtype), ops.sqrt(ops.cast(learning_rate, dtype))
        )
        if preconditioner is not None:
            scale = ops.multiply(scale, ops.sqrt(preconditioner))
        xi = self._drawn_noise.get(index)
        if xi is None:
            key_index = index if self._noise_index is None else self._noise_index
            key = noise_lib.step_key(self._langevin_seed, self.iterations, key_index)
            xi = noise_lib.sample(self.noise, variable.shape, key, dtype)
        self.assign_add(variable, ops.multiply(scale, xi))

    def _noise_groups(self, indices):
        """The indices grouped by their variable's shape and dtype, in first-seen order."""
        groups = {}
        for index in indices:
            variable = _compat.trainable_variables(self)[index]
            key = (tuple(int(d) for d in variable.shape), variable.dtype)
            groups.setdefault(key, []).append(index)
        return groups

    def _draw_grouped_noise(self, indices):
        """This step's noise of the given variables: one stacked draw per shape and dtype.

        The same numbers as one draw per variable, bit for bit, but XLA compiles the generator
        once per distinct shape instead of once per variable (the start-up of deep models).
        Returns a list of `(indices, stacked noise)` pairs.
        """
        return [
            (
                group,
                noise_lib.sample_many(
                    self.noise, shape, self._langevin_seed, self.iterations, group, dtype
                ),
            )
            for (shape, dtype), group in self._noise_groups(indices).items()
        ]

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        indices = [_compat.variable_index(self, v) for v in trainable_variables]
        noisy = [k for k, i in enumerate(indices) if self._adds_noise(i)]
        if not noisy:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        if self._compiles_update(grads):
            return self._compiled_update_step(grads, trainable_variables, learning_rate, noisy)
        if keras.backend.backend() == "jax":
            # Inside the jitted train step: draw the noise per shape, not per variable.
            drawn = self._draw_grouped_noise([indices[k] for k in noisy])
            self._drawn_noise = {
                index: stacked[j] for group, stacked in drawn for j, index in enumerate(group)
            }
        try:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            self._drawn_noise = {}

    def _compiled_update_step(self, grads, trainable_variables, learning_rate, noisy):
        """TensorFlow: each noisy variable's whole update (the Keras drift, the noise and its
        generator) as one XLA computation, compiled once per distinct shape and dtype.

        The computation takes the variable, its optimizer slots, the gradient and the
        variable's index as inputs, so every variable of one shape runs the same compiled
        code: compilation grows with the number of distinct shapes, not with depth. The
        other variables go through Keras's own path, so their update is Keras's bit for bit.
        Inside an XLA-compiled train step the computations are inlined into it.
        """
        noisy_set = set(noisy)
        plain = [k for k in range(len(trainable_variables)) if k not in noisy_set]
        # Always, even with no plain variable: Keras's step also does the optimizer's own
        # once-per-step bookkeeping there (Nadam advances its momentum schedule's product).
        super()._backend_update_step(
            [grads[k] for k in plain], [trainable_variables[k] for k in plain], learning_rate
        )
        update = self._update_function()
        # The learning rate as a tensor (its value), not the variable.
        learning_rate = ops.copy(learning_rate)
        for k in noisy:
            index = _compat.variable_index(self, trainable_variables[k])
            update(
                grads[k],
                _compat.trainable_variables(self)[index].value,
                self._slots(index),
                learning_rate,
                ops.convert_to_tensor(index, dtype="int32"),
            )

    def _update_function(self):
        update = self._compiled_updates.functions.get("update")
        if update is None:
            import tensorflow as tf

            update = tf.function(self._update_one, jit_compile=True, autograph=False)
            self._compiled_updates.functions["update"] = update
        return update

    def _compiles_replica_update(self, gradient, variable):
        """Under a `tf.distribute` strategy Keras updates each replica's copy of a variable
        (`variable` is then that copy, not the distributed variable): that update is compiled
        too, once per shape and device."""
        if self._noise_index is not None or not self._compiles([gradient]):
            return False
        import tensorflow as tf

        return (
            tf.distribute.has_strategy()
            and isinstance(variable, tf.Variable)
            and not isinstance(variable, tf.distribute.DistributedValues)
        )

    def _compiled_replica_update(self, gradient, variable, index, learning_rate):
        slots = tuple(_compat.local_copy(slot) for slot in self._slots(index))
        self._update_function()(
            gradient,
            variable,
            slots,
            ops.copy(learning_rate),
            ops.convert_to_tensor(index, dtype="int32"),
            device=variable.device,
        )

    def _slots(self, index):
        """The optimizer variables that belong to the variable at `index` (its momentums,
        velocities, ...), from the slot lists the class declares in `langevin_slots`."""
        return tuple(
            slots[index].value
            for slots in (_compat.slot_list(self, name) for name in self.langevin_slots)
            if slots
        )

    def _update_one(self, gradient, variable, slots, learning_rate, index, device=None):
        # Traced once per shape (and device, under a strategy), with the first variable of
        # that shape: TensorFlow feeds each later variable and its `slots` where the traced
        # ones were read and written, and the noise takes its key from the `index` input,
        # not from the traced variable.
        del slots, device  # inputs only: the update reaches the slots through its lists
        traced_index = _compat.variable_index(self, variable)
        self._noise_index = index
        try:
            self.update_step(
                gradient, _compat.trainable_variables(self)[traced_index], learning_rate
            )
        finally:
            self._noise_index = None

    def _compiles_update(self, grads):
        """The whole step's noisy variables go through `_compiled_update_step` (no strategy:
        under one, Keras updates each replica, see `_compiles_replica_update`)."""
        if not self._compiles(grads):
            return False
        import tensorflow as tf

        return not tf.distribute.has_strategy()

    def _compiles(self, grads):
        """`jit_compile` on TensorFlow, with dense gradients."""
        if not self.jit_compile or keras.backend.backend() != "tensorflow":
            return False
        import tensorflow as tf

        return not any(isinstance(g, tf.IndexedSlices) for g in grads)

    # ---------------------------------------------------------------------- serialization

    def get_config(self):
        config = super().get_config()
        if isinstance(self._sigma, keras.optimizers.schedules.LearningRateSchedule):
            sigma = keras.optimizers.schedules.serialize(self._sigma)
        else:  # the current value, as Keras does for the learning rate
            sigma = float(ops.convert_to_numpy(self._sigma_variable))
        layers = self.langevin_layers
        if callable(layers):
            layers = _serialize_predicate(layers)
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
        if not self._noise_off and sigma == 0.0:
            config["sigma_paused"] = True  # reloads resumable, unlike a sigma=0 optimizer
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


_compat.add_loss_scale_sigma(lambda optimizer: isinstance(optimizer, LangevinMixin))
