"""keras_langevin/_compat.py: every Keras internal the library uses, each guarded.

One test per use: it works on the installed Keras, and where its target is gone the library
raises `KerasInternalsError` naming the Keras version (never a silent no-op).
"""

import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_langevin as kl
from keras_langevin import _compat, selection

pytestmark = pytest.mark.multibackend

LIBRARY = pathlib.Path(kl.__file__).parent
# Moved into _compat.weights_only_saving by the sampling package's owner.
PENDING = {"sampling/_weights_io.py"}


def _loud():
    return pytest.raises(_compat.KerasInternalsError, match=re.escape(keras.__version__))


def test_no_module_but_compat_imports_keras_src():
    offenders = []
    for path in sorted(LIBRARY.rglob("*.py")):
        relative = path.relative_to(LIBRARY).as_posix()
        if relative == "_compat.py" or relative in PENDING:
            continue
        if re.search(r"\bkeras\.src\b|from keras import src\b", path.read_text()):
            offenders.append(relative)
    assert offenders == []


def test_import_survives_a_keras_src_move():
    script = (
        "import keras, keras.src.models.functional as f, keras.src.backend as b; "
        "del f.Functional, b.compute_output_spec, keras.StatelessScope; "
        "import keras_langevin"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)


def _sequential():
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])


class _Block(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = keras.layers.Dense(2, name="d")

    def call(self, x):
        return self.inner(x)


def test_sublayers(monkeypatch):
    model = _Block()
    assert [layer.name for layer in _compat.sublayers(model)] == ["d"]
    monkeypatch.delattr(keras.Layer, "_flatten_layers")
    with _loud():
        _compat.sublayers(model)


def test_is_functional(monkeypatch):
    inputs = keras.Input((3,))
    functional = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    assert _compat.is_functional(functional) and not _compat.is_functional(_sequential())
    monkeypatch.setitem(sys.modules, "keras.src.models.functional", None)
    with _loud():
        _compat.is_functional(functional)


def test_compute_output_spec(monkeypatch):
    from keras.src import backend

    spec = _compat.compute_output_spec(lambda x: x * 2, keras.KerasTensor((2, 3)))
    assert tuple(spec.shape) == (2, 3)
    monkeypatch.delattr(backend, "compute_output_spec")
    with _loud():
        _compat.compute_output_spec(lambda x: x, keras.KerasTensor((2,)))


def test_read_recorder_sees_variable_reads(monkeypatch):
    first, second = keras.Variable(1.0, name="first"), keras.Variable(2.0, name="second")
    with _compat.read_recorder() as recorder:
        keras.ops.add(second, first)
    assert recorder.read == [second, first]
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    with _compat.read_recorder() as empty:
        pass
    with _loud():  # a traced call that records nothing: the protocol changed
        _compat.check_reads_recorded(empty, layer)
    monkeypatch.delattr(keras.StatelessScope, "get_current_value")
    with _loud():
        _compat.read_recorder()


def test_optimizer_methods_are_checked_at_construction(monkeypatch):
    for name in ("_get_variable_index", "_backend_update_step"):
        with monkeypatch.context() as patch:
            patch.setattr(keras.optimizers.Optimizer, name, None)
            with _loud():
                kl.LAdam(sigma=0.1)


def _built(optimizer):
    variables = [keras.Variable(np.zeros((2, 3), "float32")), keras.Variable(np.zeros(3))]
    optimizer.build(variables)
    return optimizer, variables


def test_variable_index_and_trainable_variables(monkeypatch):
    optimizer, variables = _built(kl.LAdam(sigma=0.1))
    assert _compat.variable_index(optimizer, variables[1]) == 1
    assert _compat.trainable_variables(optimizer)[0] is variables[0]
    monkeypatch.setattr(optimizer, "_get_variable_index", None)
    monkeypatch.setattr(optimizer, "_trainable_variables", None)
    with _loud():
        _compat.variable_index(optimizer, variables[1])
    with _loud():
        _compat.trainable_variables(optimizer)


@pytest.mark.parametrize(
    "make",
    [
        lambda: kl.LSGD(sigma=0.1, momentum=0.9),
        lambda: kl.LAdam(sigma=0.1, amsgrad=True),
        lambda: kl.LRMSprop(sigma=0.1, momentum=0.5, centered=True),
        lambda: kl.LAdadelta(sigma=0.1),
    ],
)
def test_declared_slots_are_every_per_variable_list(make):
    optimizer, _ = _built(make())
    slots = optimizer._slots(0)
    assert len(slots) == len(optimizer.langevin_slots)
    assert {id(s) for s in slots} == {
        id(getattr(optimizer, name)[0].value) for name in optimizer.langevin_slots
    }


def test_an_undeclared_slot_list_is_loud():
    class Forgetful(kl.LAdam):
        langevin_slots = ("_momentums",)

    with pytest.raises(_compat.KerasInternalsError, match="_velocities"):
        _built(Forgetful(sigma=0.1))


def test_slot_accessor(monkeypatch):
    optimizer, _ = _built(kl.LAdam(sigma=0.1))
    assert _compat.slot(optimizer, "_velocities", 1) is optimizer._velocities[1]
    monkeypatch.delattr(optimizer, "_velocities")
    with _loud():
        _compat.slot(optimizer, "_velocities", 1)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute")
def test_local_copy(monkeypatch):
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        variable = tf.Variable(1.0)
    assert isinstance(variable, tf.distribute.DistributedValues)
    assert not isinstance(_compat.local_copy(variable), tf.distribute.DistributedValues)
    plain = tf.Variable(1.0)
    assert _compat.local_copy(plain) is plain
    monkeypatch.setattr(type(variable), "_get_on_device_or_primary", None)
    with _loud():
        _compat.local_copy(variable)


def test_models_compiled_with_finds_by_identity_only():
    optimizer = kl.LAdam(sigma=0.1)
    mine, other = _sequential(), _sequential()
    mine.compile(keras.optimizers.LossScaleOptimizer(optimizer), "mse")
    other.compile(kl.LAdam(sigma=0.1), "mse")
    assert _compat.models_compiled_with(optimizer, depth=1) == [mine]
    del mine
    assert _compat.models_compiled_with(optimizer, depth=1) == []


def test_loss_scale_sigma_property_is_installed():
    prop = keras.optimizers.LossScaleOptimizer.__dict__.get("sigma")
    assert prop is not None and getattr(prop.fget, "keras_langevin", False)
    assert _compat.add_loss_scale_sigma(lambda o: True) is prop  # installed once


def test_weights_only_saving(monkeypatch):
    from keras.src.saving import saving_lib

    save, load = _compat.weights_only_saving()
    assert callable(save) and callable(load)
    monkeypatch.delattr(saving_lib, "save_weights_only")
    assert _compat.weights_only_saving() == (None, None)


def test_selection_uses_compat_for_functional_models(monkeypatch):
    inputs = keras.Input((3,))
    x = keras.layers.Dense(3, name="a")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="b")(x))
    assert selection.owner_path(model.trainable_variables[0]).endswith("a")
    monkeypatch.setitem(sys.modules, "keras.src.models.functional", None)
    optimizer = kl.LAdam(sigma=0.1, langevin_layers=0.5)
    optimizer.set_model(model)
    with _loud():
        optimizer.build(model.trainable_variables)
