"""Every use of Keras internals by the library, in one place, each guarded.

The library leans on a few things Keras does not promise to keep: private optimizer methods
(`_get_variable_index`, `_backend_update_step`), its per-variable slot lists, the way a
`StatelessScope` sees variable reads, how a layer lists its sublayers, how a functional model
is told apart, TensorFlow's per-device copy of a distributed variable, and the saving
library's weights-only functions. Each is reached here, imported lazily (a move inside Keras
must not break `import keras_langevin`), and checked: where a target is gone, a
`KerasInternalsError` names it and the installed Keras version instead of silently doing
nothing.
"""

from __future__ import annotations

import inspect
import sys

import keras


class KerasInternalsError(RuntimeError):
    """A Keras internal that keras_langevin relies on is missing in the installed Keras."""


def _fail(what):
    raise KerasInternalsError(
        f"keras_langevin relies on {what}, which the installed Keras {keras.__version__} does "
        "not provide. Please report this with your Keras version, or install a Keras version "
        "keras_langevin is tested with."
    )


def _attribute(owner, name, what):
    value = getattr(owner, name, None)
    if value is None:
        _fail(what)
    return value


# ------------------------------------------------------------------------------- layers


def sublayers(layer):
    """The direct sublayers of `layer` (Keras's `_flatten_layers`, non-recursive)."""
    flatten = _attribute(layer, "_flatten_layers", "`Layer._flatten_layers`")
    return list(flatten(include_self=False, recursive=False))


def is_functional(layer):
    """True for a functional model (`keras.Model(inputs, outputs)`)."""
    try:
        from keras.src.models.functional import Functional
    except ImportError:
        _fail("`keras.src.models.functional.Functional`")
    return isinstance(layer, Functional)


def compute_output_spec(function, *args):
    """Runs `function` symbolically on `KerasTensor` arguments (Keras's backend tracer)."""
    try:
        from keras.src.backend import compute_output_spec as tracer
    except ImportError:
        _fail("`keras.src.backend.compute_output_spec`")
    return tracer(function, *args)


def _read_recorder_class():
    scope = _attribute(keras, "StatelessScope", "`keras.StatelessScope`")
    if not callable(getattr(scope, "get_current_value", None)):
        _fail("`keras.StatelessScope.get_current_value`")

    class ReadRecorder(scope):
        """A stateless scope that records the variables in the order they are first read."""

        def __init__(self):
            super().__init__()
            self.read = []
            self._ids = set()

        def get_current_value(self, variable):
            if id(variable) not in self._ids:
                self._ids.add(id(variable))
                self.read.append(variable)
            # None: the variable's own value

    return ReadRecorder


def read_recorder():
    """A `StatelessScope` whose `read` lists the variables read inside it, in order (Keras
    variables ask the active stateless scope for their value; see `check_reads_recorded`)."""
    return _read_recorder_class()()


def check_reads_recorded(recorder, layer):
    """Raises if a traced call of `layer`, which holds trainable variables, recorded no read:
    Keras variables no longer consult the stateless scope, and the order would be lost."""
    if layer.trainable_variables and not recorder.read:
        _fail(
            "Keras variables asking the active `keras.StatelessScope` for their value (a "
            f"symbolic call of {type(layer).__name__} '{layer.name}' read no variable)"
        )


# ---------------------------------------------------------------------------- optimizers

# Lists of a Keras optimizer with one entry per variable that are not slots of its update.
NOT_SLOTS = (
    "_variables",
    "_trainable_variables",
    "_accumulated_gradients",
    "_model_variables_moving_average",
)

_OPTIMIZER_METHODS = ("_get_variable_index", "_backend_update_step", "update_step")


def check_optimizer(optimizer):
    """Checks that the Keras optimizer class has the methods the Langevin mixin overrides."""
    for name in _OPTIMIZER_METHODS:
        if not callable(getattr(keras.optimizers.Optimizer, name, None)):
            _fail(f"`keras.optimizers.Optimizer.{name}`")
    del optimizer


def variable_index(optimizer, variable):
    """The position of `variable` in the optimizer's variable list."""
    return _attribute(optimizer, "_get_variable_index", "`Optimizer._get_variable_index`")(variable)


def trainable_variables(optimizer):
    """The model variables the optimizer was built on (its own list, in its order)."""
    variables = getattr(optimizer, "_trainable_variables", None)
    if variables is None:
        _fail("`Optimizer._trainable_variables`")
    return variables


def iterations_variable(optimizer):
    """The optimizer's step counter variable (`optimizer.iterations`)."""
    return optimizer.iterations


def slot_list(optimizer, name):
    """The optimizer's slot list `name` (one variable per model variable), or [] when the
    optimizer's settings create none (SGD without momentum, Adam without amsgrad)."""
    return getattr(optimizer, name, None) or []


def slot(optimizer, name, index):
    """The slot `name` of the variable at `index` (e.g. Adam's `_velocities`), which the
    optimizer's `build` must have created."""
    slots = getattr(optimizer, name, None)
    if not isinstance(slots, list) or len(slots) <= index:
        _fail(f"the slot list `{type(optimizer).__name__}.{name}` created by `build`")
    return slots[index]


def check_slots(optimizer, declared):
    """Raises if the built optimizer holds a per-variable slot list that `declared` misses.

    A Keras release that renames or adds a slot list would otherwise leave the compiled
    per-shape update reading the first variable's slot for every variable of its shape.
    """
    model_variables = trainable_variables(optimizer)
    if not model_variables:
        return
    shapes = [tuple(v.shape) for v in model_variables]
    undeclared = sorted(
        name
        for name, value in vars(optimizer).items()
        if name not in declared
        and name not in NOT_SLOTS
        and isinstance(value, list)
        and len(value) == len(shapes)
        and all(
            isinstance(v, keras.Variable) and tuple(v.shape) == shape
            for v, shape in zip(value, shapes)
        )
    )
    if undeclared:
        raise KerasInternalsError(
            f"{type(optimizer).__name__} holds per-variable slot lists {undeclared!r} that its "
            f"`langevin_slots` ({tuple(declared)!r}) does not declare (Keras "
            f"{keras.__version__}). Add them to `langevin_slots`, or report this with your "
            "Keras version."
        )


def local_copy(variable):
    """This device's copy of a `tf.distribute` variable inside a strategy's update of it
    (TensorFlow's `_get_on_device_or_primary`), else `variable` itself."""
    if keras.backend.backend() != "tensorflow":
        return variable
    import tensorflow as tf

    if not isinstance(variable, tf.distribute.DistributedValues):
        return variable
    return _attribute(
        variable, "_get_on_device_or_primary", "TensorFlow's `_get_on_device_or_primary`"
    )()


def unwrap_optimizer(optimizer):
    """The optimizer inside Keras's wrappers (`LossScaleOptimizer.inner_optimizer`)."""
    seen = 0
    while optimizer is not None and seen < 16:
        inner = getattr(optimizer, "inner_optimizer", None)
        if inner is None:
            return optimizer
        optimizer, seen = inner, seen + 1
    return optimizer


def add_loss_scale_sigma(is_langevin):
    """Gives `keras.optimizers.LossScaleOptimizer` a `sigma` property that reads and sets the
    sigma of the Langevin optimizer inside it, as Keras forwards `learning_rate`.

    Without it, `optimizer.sigma = 0.0` on the wrapper that `compile` puts around a Langevin
    optimizer under `mixed_float16` stores a plain attribute and changes nothing. Around any
    other optimizer the property raises AttributeError, as the attribute did not exist.
    Returns the property, or None where the installed Keras defines `sigma` itself.
    """
    wrapper = getattr(keras.optimizers, "LossScaleOptimizer", None)
    if wrapper is None:
        return None
    current = wrapper.__dict__.get("sigma")
    if current is not None:
        return current if getattr(current.fget, "keras_langevin", False) else None

    def inner(optimizer):
        found = unwrap_optimizer(optimizer)
        if not is_langevin(found):
            raise AttributeError(
                f"{type(optimizer).__name__} has no attribute 'sigma': its inner optimizer "
                f"{type(found).__name__} is not a Langevin optimizer."
            )
        return found

    def get(self):
        return inner(self).sigma

    def set_(self, value):
        inner(self).sigma = value

    sigma = property(get, set_, doc="The sigma of the Langevin optimizer inside.")
    sigma.fget.keras_langevin = True
    wrapper.sigma = sigma
    return sigma


def models_compiled_with(optimizer, depth=2):
    """The distinct `keras.Model`s among the callers' local variables whose optimizer
    (unwrapped) is `optimizer` itself: the model Keras is fitting (`fit`, `compile` after
    loading, `BackupAndRestore`), or one that a custom loop holds after compiling it.

    Identity only, never a name: a model compiled with another optimizer does not count.
    """
    found = {}
    frame = sys._getframe(depth)
    while frame is not None:
        for value in list(frame.f_locals.values()):
            if (
                isinstance(value, keras.Model)
                and id(value) not in found
                and unwrap_optimizer(getattr(value, "optimizer", None)) is optimizer
            ):
                found[id(value)] = value
        frame = frame.f_back
    return list(found.values())


# -------------------------------------------------------------------------------- saving


def weights_only_saving():
    """Keras's saving_lib `(save_weights_only, load_weights_only)` when they accept
    `objects_to_skip`, else `(None, None)` (older Keras: use the public functions)."""
    try:
        from keras.src.saving import saving_lib
    except ImportError:  # pragma: no cover - layout of another Keras version
        return None, None
    save = getattr(saving_lib, "save_weights_only", None)
    load = getattr(saving_lib, "load_weights_only", None)
    for function in (save, load):
        if function is None or "objects_to_skip" not in inspect.signature(function).parameters:
            return None, None
    return save, load
