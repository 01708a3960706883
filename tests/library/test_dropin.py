"""keras_langevin as a drop-in for Keras's optimizers: arguments, names, input checks, typing."""

import inspect
import math
import os
import re
import subprocess
import sys
from importlib import resources

import keras
import numpy as np
import pytest
from helpers import BASES
from keras import ops

import keras_langevin as kl

pytestmark = pytest.mark.multibackend

LANGEVIN_ARGS = ("sigma", "langevin_layers", "seed", "noise", "jit_compile")
LAYER_CLASSES = {
    kl.LayerLSGD: kl.LSGD,
    kl.LayerLAdam: kl.LAdam,
    kl.LayerLRMSprop: kl.LRMSprop,
    kl.LayerLAdadelta: kl.LAdadelta,
    kl.LayerLAdamW: kl.LAdamW,
    kl.LayerLNadam: kl.LNadam,
}
# Defaults that differ from Keras's, on purpose: LSGHMC needs a momentum in (0, 1).
DEFAULT_DIFFERENCES = {kl.LSGHMC: {"momentum": 0.9}}


def _positional(cls):
    return [
        (p.name, p.default)
        for p in inspect.signature(cls).parameters.values()
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]


@pytest.mark.parametrize("cls", list(BASES) + list(LAYER_CLASSES), ids=lambda c: c.__name__)
def test_positional_arguments_are_keras(cls):
    base = BASES[LAYER_CLASSES.get(cls, cls)]
    changed = DEFAULT_DIFFERENCES.get(cls, {})
    # name=None (a unique auto-name), as Keras from 3.15; Keras up to 3.14 defaults to the
    # class name ("SGD", "adam").
    expected = [(n, None if n == "name" else changed.get(n, d)) for n, d in _positional(base)]
    assert _positional(cls) == expected
    parameters = inspect.signature(cls).parameters
    for name in LANGEVIN_ARGS:
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, name


def test_issue_example_sets_weight_decay_not_sigma():
    ours = kl.LAdam(1e-3, 0.9, 0.999, 1e-7, False, 4e-3)
    theirs = keras.optimizers.Adam(1e-3, 0.9, 0.999, 1e-7, False, 4e-3)
    assert ours.weight_decay == theirs.weight_decay == 4e-3
    assert float(ops.convert_to_numpy(ours.sigma)) == 0.0
    assert kl.LSGD(0.1, 0.9, True, 1e-4).weight_decay == 1e-4
    assert kl.LayerLAdam(1e-3, 0.9, 0.999, 1e-7, False, 4e-3, sigma=1e-3).weight_decay == 4e-3
    for cls in LAYER_CLASSES:
        with pytest.raises(TypeError):
            cls(*([None] * 16))  # one more positional argument than Keras takes


def test_unnamed_optimizers_get_unique_names():
    first, second = kl.LAdam(), kl.LAdam()
    assert first.name == "ladam" and second.name == "ladam_1"
    assert first.iterations.path != second.iterations.path
    assert kl.LAdam(name="mine").name == "mine"
    keras.backend.clear_session()
    assert kl.LAdam().name == "ladam"  # as Keras: clear_session resets the counters


def test_unique_names_inside_a_multi_optimizer():
    multi = getattr(keras.optimizers, "MultiOptimizer", None)
    if multi is None:
        pytest.skip("no keras.optimizers.MultiOptimizer in this Keras")
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, name="a"), keras.layers.Dense(1, name="b")]
    )
    a, b = kl.LAdam(1e-2, sigma=1e-3, seed=0), kl.LAdam(1e-3, sigma=1e-3, seed=1)
    assert a.name != b.name
    optimizer = multi(lambda v: a if v.path.startswith("a/") else b)
    model.compile(optimizer, "mse")
    model.fit(np.ones((8, 3)), np.ones((8, 1)), verbose=0, epochs=1)
    paths = [v.path for v in optimizer.variables if v.name == "learning_rate"]
    assert len(paths) == len(set(paths)) >= 2


@pytest.mark.parametrize("cls", list(BASES), ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "kwargs,error,fragment",
    [
        ({"langevin_layers": ""}, ValueError, "langevin_layers=''"),
        ({"sigma": 1e300}, ValueError, "sigma=1e+300"),
        ({"sigma": 1e39}, ValueError, "sigma=1e+39"),
        ({"seed": 2**40}, ValueError, "seed=1099511627776"),
        ({"seed": 2**32}, ValueError, "seed=4294967296"),
        ({"seed": -1}, ValueError, "seed=-1"),
        ({"seed": np.float64(3)}, TypeError, f"seed={np.float64(3)!r}"),  # numpy 1.x: 3.0
        ({"jit_compile": "no"}, TypeError, "jit_compile='no'"),
        ({"jit_compile": 1}, TypeError, "jit_compile=1"),
        ({"jit_compile": None}, TypeError, "jit_compile=None"),
        (
            {"sigma": keras.optimizers.schedules.PiecewiseConstantDecay([100], [0.1, -0.1])},
            ValueError,
            "step 200",
        ),
        (
            {"sigma": keras.optimizers.schedules.PiecewiseConstantDecay([3], [0.1, float("nan")])},
            ValueError,
            "gives nan",
        ),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, dict) else None,
)
def test_bad_input_fails_at_construction(cls, kwargs, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)) as info:
        cls(**kwargs)
    assert f"`{next(iter(kwargs))}`" in str(info.value)


def test_ordinary_numbers_are_accepted():
    assert kl.LAdam(seed=np.int64(3)).get_config()["seed"] == 3
    assert kl.LAdam(seed=2**32 - 1).seed == 2**32 - 1
    assert kl.LSGD(sigma=np.float32(0.5)).get_config()["sigma"] == 0.5
    assert kl.LAdam(langevin_layers=np.float32(0.5)).langevin_layers == 0.5
    assert kl.LAdam(jit_compile=np.bool_(False)).jit_compile is False
    schedule = kl.schedules.LogAnnealing(np.float32(0.1), np.int64(1))
    assert schedule.get_config() == {
        "initial_sigma": pytest.approx(0.1),
        "decay": 1.0,
        "name": "LogAnnealing",
    }
    with pytest.raises(ValueError, match="initial_sigma=1e"):
        kl.schedules.LogAnnealing(1e300, 1)
    # Config round trip of a single layer name.
    optimizer = kl.LAdam(langevin_layers="conv")
    assert kl.LAdam.from_config(optimizer.get_config()).langevin_layers == ("conv",)


def _noise(seed):
    variable = keras.Variable(np.zeros(64, "float32"))
    kl.LSGD(1.0, sigma=1.0, seed=seed).apply([ops.zeros(64)], [variable])
    return ops.convert_to_numpy(variable)


def test_every_seed_gives_its_own_noise():
    same = _noise(3)
    np.testing.assert_array_equal(_noise(np.int64(3)), same)
    assert not np.allclose(_noise(2**31 + 3), same)  # not taken modulo 2**31
    assert not np.allclose(_noise(2**32 - 1), _noise(2**31 - 1))
    assert np.all(np.isfinite(_noise(2**32 - 1)))


def test_layer_classes_are_real_classes():
    for cls, base in LAYER_CLASSES.items():
        assert cls.__bases__ == (base,) and cls.__module__ == "keras_langevin.layer"
        assert f"class {cls.__name__}({base.__name__}):" in inspect.getsource(kl.layer)
        assert "Layer Langevin" in cls.__doc__ and "langevin_layers=0.3" in cls.__doc__
        assert inspect.signature(cls).parameters["langevin_layers"].default == 0.3
        registered = keras.saving.get_registered_object(f"keras_langevin>{cls.__name__}")
        assert registered is cls
        optimizer = cls(1e-2, sigma=1e-3)
        assert optimizer.langevin_layers == 0.3 and optimizer.name.startswith(cls.__name__.lower())
        again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
        assert type(again) is cls and again.get_config() == optimizer.get_config()


def test_public_api_is_typed():
    package = resources.files("keras_langevin")
    assert package.joinpath("py.typed").is_file()
    public = [
        kl.LSGD,
        kl.LAdam,
        kl.LRMSprop,
        kl.LAdadelta,
        kl.LAdamW,
        kl.LNadam,
        kl.LSGHMC,
        kl.langevin_optimizer,
        kl.schedules.LogAnnealing,
        kl.callbacks.SigmaLogger,
        kl.callbacks.current_sigma,
    ]
    for obj in public:
        function = obj.__init__ if inspect.isclass(obj) else obj
        signature = inspect.signature(function)
        for parameter in signature.parameters.values():
            if parameter.name == "self" or parameter.kind is inspect.Parameter.VAR_KEYWORD:
                continue
            assert parameter.annotation is not inspect.Parameter.empty, (obj, parameter.name)
        assert signature.return_annotation is not inspect.Signature.empty, obj


def test_imports_with_docstrings_stripped():
    code = (
        "import keras_langevin as kl; assert kl.LAdam.__doc__ is None; "
        "o = kl.LayerLAdam(1e-3, sigma=1e-3); print(o.name, o.langevin_layers)"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    # TensorFlow 2.17 does not import under -OO (2.21 does); the library is then checked on
    # JAX, which does.
    for backend in (keras.backend.backend(), "jax"):
        env["KERAS_BACKEND"] = backend
        probe = [sys.executable, "-OO", "-c", "import keras"]
        probed = subprocess.run(probe, env=env, capture_output=True, timeout=300, check=False)
        if probed.returncode == 0:
            break
    else:
        pytest.skip("Keras itself does not import under -OO with these backends")
    completed = subprocess.run(
        [sys.executable, "-OO", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.split()[-2:] == ["layerladam", "0.3"]


def test_docstrings_name_every_argument():
    for cls in BASES:
        doc = cls.__doc__
        assert "{{" not in doc
        for name in [n for n, _ in _positional(cls)] + list(LANGEVIN_ARGS):
            assert f"{name}" in doc, (cls, name)
    assert math.isclose(kl.LayerLSGD(sigma=0.1).get_config()["sigma"], 0.1, rel_tol=1e-6)
