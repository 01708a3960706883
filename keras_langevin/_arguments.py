"""The Langevin arguments of every optimizer: their documentation and their checks.

`langevin_args_doc` is the text every optimizer's docstring gets for `sigma`,
`langevin_layers`, `seed`, `noise` and `jit_compile` (`fill_docstring` puts it in). The
`validate_*` functions check each argument at construction, before Keras creates any
variable, and raise a `TypeError` or `ValueError` naming the argument and the value. The seed
helpers turn a seed into the int32 variable the noise reads, the same on every process.
`serialize_predicate` refuses a `langevin_layers` function that Keras could not load back.
"""

from __future__ import annotations

import inspect
import math
from numbers import Integral, Real

import keras
import numpy as np
from keras import ops

SEED_LIMIT = 2**32  # the noise keys are 32-bit words, as Keras's own seeds
SEED_DRAW_RANGE = 2**31  # seed=None draws from this range
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


# ---------------------------------------------------------------------------------- sigma


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


def validate_sigma_value(sigma, arg="sigma"):
    """A float sigma (or a scalar tensor) as a Python float, checked: finite and >= 0."""
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


def validate_sigma(sigma):
    """A schedule, probed at a grid of steps, or a float sigma (`validate_sigma_value`)."""
    if isinstance(sigma, keras.optimizers.schedules.LearningRateSchedule):
        _probe_schedule(sigma)
        return sigma
    return validate_sigma_value(sigma)


# ------------------------------------------------------------------- the other arguments


def validate_seed(seed):
    """None, or an int in [0, 2**32)."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise TypeError(f"Argument `seed` must be an int or None. Received: seed={seed!r}")
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(
            f"Argument `seed` must be in [0, 2**32), as Keras's seeds. Received: seed={seed!r}"
        )
    return int(seed)


def validate_jit_compile(jit_compile):
    """True or False (numpy's booleans too)."""
    if not isinstance(jit_compile, (bool, np.bool_)):
        raise TypeError(
            f"Argument `jit_compile` must be True or False. Received: jit_compile={jit_compile!r}"
        )
    return bool(jit_compile)


def serialize_predicate(predicate):
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


def default_name(cls):
    """`ladam`, then `ladam_1`, `ladam_2`, ...: Keras's de-duplication of optimizer names."""
    prefix = cls.__name__.lower()
    uid = keras.backend.get_uid(prefix)
    return prefix if uid == 1 else f"{prefix}_{uid - 1}"


# ---------------------------------------------------------------------------------- seeds


def seed_as_int32(seed):
    """The seed as the int32 with its bits (the noise casts it back to uint32)."""
    return seed - SEED_LIMIT if seed >= 2**31 else seed


def drawn_seed():
    """A seed for `seed=None`, from Python's `random` (so `keras.utils.set_random_seed` makes
    it reproducible), the same on every process (`same_on_every_process`)."""
    import random

    return same_on_every_process(random.randrange(SEED_DRAW_RANGE))


def same_on_every_process(seed):
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
