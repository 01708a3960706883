"""Layer Langevin knows its model: `fit` tells it, a custom loop calls `set_model`; nothing is
guessed from the callers' local variable names."""

import keras
import numpy as np
import pytest

import keras_langevin as kl
from keras_langevin import selection

pytestmark = pytest.mark.multibackend


def _mlp(name="mlp"):
    return keras.Sequential(
        [keras.Input((4,))]
        + [keras.layers.Dense(4, name=f"d{i}") for i in range(5)]
        + [keras.layers.Dense(2, name="out")],
        name=name,
    )


def _owners(optimizer):
    return sorted(
        {selection.owner_path(v).rsplit("/", 1)[-1] for v in optimizer.langevin_variables}
    )


class _ClassTrainer:
    """A class-based custom loop: the model and optimizer are attributes, never locals."""

    def __init__(self, optimizer, tell=True):
        self.model = _mlp()
        self.opt = optimizer
        if tell:
            self.opt.set_model(self.model)

    def step(self):
        grads = [keras.ops.ones(v.shape) for v in self.model.trainable_variables]
        self.opt.apply(grads, self.model.trainable_variables)


def test_class_based_trainer_takes_the_input_layers_after_set_model():
    trainer = _ClassTrainer(kl.LAdam(1e-3, sigma=1e-3, langevin_layers=0.3, seed=0))
    trainer.step()
    assert _owners(trainer.opt) == ["d0", "d1"]  # ceil(0.3 * 6) = 2, nearest the input


def test_class_based_trainer_without_set_model_is_refused():
    trainer = _ClassTrainer(kl.LAdam(1e-3, sigma=1e-3, langevin_layers=0.3), tell=False)
    model = trainer.model  # a local holding the model is not taken for a guess either
    with pytest.raises(ValueError, match=r"set_model"):
        trainer.step()
    assert model is trainer.model and not trainer.opt.built


def test_set_model_checks_its_argument_and_the_variables():
    optimizer = kl.LAdam(sigma=1e-3, langevin_layers=0.5)
    with pytest.raises(TypeError, match="model=3"):
        optimizer.set_model(3)
    optimizer.set_model(_mlp("other"))
    with pytest.raises(ValueError, match="does not hold"):
        optimizer.build(_mlp("mine").trainable_variables)


def test_set_model_after_build_refuses_another_selection():
    a, b = keras.layers.Dense(4, name="a"), keras.layers.Dense(4, name="b")
    forward = keras.Sequential([keras.Input((4,)), a, b], name="forward")
    backward = keras.Sequential([keras.Input((4,)), b, a], name="backward")  # same variables
    optimizer = kl.LAdam(sigma=1e-3, langevin_layers=0.5)
    optimizer.set_model(forward)
    optimizer.build(forward.trainable_variables)
    assert _owners(optimizer) == ["a"]
    optimizer.set_model(forward)  # the same selection: accepted
    with pytest.raises(ValueError, match="already built"):
        optimizer.set_model(backward)


@keras.saving.register_keras_serializable(package="tests_layer_model")
class _Sub(keras.Model):
    def __init__(self, name="sub", **kwargs):
        super().__init__(name=name, **kwargs)
        self.head = keras.layers.Dense(2, name="head")
        self.a = keras.layers.Dense(4, name="a")
        self.b = keras.layers.Dense(4, name="b")

    def call(self, x):
        return self.head(self.b(self.a(x)))


def _functional():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(4, name="a")(inputs)
    x = keras.layers.Dense(4, name="b")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(x), name="func")


def _nested():
    inner = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(4, name="a"), keras.layers.Dense(4, name="b")],
        name="inner",
    )
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(inner(inputs)), name="outer")


def _sequential():
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(4, name="a"),
            keras.layers.Dense(4, name="b"),
            keras.layers.Dense(2, name="head"),
        ],
        name="seq",
    )


@pytest.mark.parametrize("build", [_sequential, _functional, _nested, _Sub])
def test_fit_finds_its_model_with_a_fraction(build):
    model = build()
    model.compile(kl.LayerLAdam(1e-3, sigma=1e-3, seed=0), "mse")
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 2), "float32")
    model.fit(x, y, epochs=1, verbose=0)
    assert _owners(model.optimizer) == ["a"]  # ceil(0.3 * 3) = 1: the layer nearest the input


def _nested_two():
    inner = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(4, name="in_a"), keras.layers.Dense(4, name="in_b")],
        name="inner",
    )
    inputs = keras.Input((4,))
    x = keras.layers.Dense(4, name="stem")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(inner(x)), name="outer")


def _positions(model):
    noisy = {id(v) for v in kl.langevin_optimizer(model.optimizer).langevin_variables}
    return [i for i, v in enumerate(model.trainable_variables) if id(v) in noisy]


def _save_and_load(model, tmp_path):
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 2), "float32")
    model.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    return keras.saving.load_model(path)


@pytest.mark.parametrize(
    "layers,expected",
    [
        (["inner/*"], [2, 3, 4, 5]),
        (["inner/in_a"], [2, 3]),
        ("inner", [2, 3, 4, 5]),  # a nested model's name, as model.layers shows it
        (["in_b", "stem"], [0, 1, 4, 5]),
        (0.5, [0, 1, 2, 3]),
    ],
)
def test_nested_model_selections_survive_save_and_load(layers, expected, tmp_path):
    model = _nested_two()
    model.compile(kl.LAdam(1e-3, sigma=1e-3, seed=0, langevin_layers=layers), "mse")
    loaded = _save_and_load(model, tmp_path)
    # After loading, Keras 3.10-3.15 names this variable "in_a/kernel" (the nested model's name
    # dropped), keras-nightly 3.16 "inner/in_a/kernel": the selection must hold under either.
    assert loaded.trainable_variables[2].path in ("in_a/kernel", "inner/in_a/kernel")
    assert _positions(model) == expected
    assert _positions(loaded) == expected


@pytest.mark.parametrize("build", [_sequential, _functional, _nested, _Sub])
@pytest.mark.parametrize("layers", [["b", "head"], 0.5])
def test_selections_survive_save_and_load_on_every_model_kind(build, layers, tmp_path):
    model = build()
    model.compile(kl.LAdam(1e-3, sigma=1e-3, seed=0, langevin_layers=layers), "mse")
    loaded = _save_and_load(model, tmp_path)
    assert _positions(model)
    assert _positions(loaded) == _positions(model)


def test_an_int_other_than_one_is_not_a_fraction():
    assert kl.LAdam(langevin_layers=1).langevin_layers == 1.0  # all layers
    with pytest.raises(ValueError, match=r"an int other than 1 is not a fraction.*=2"):
        kl.LAdam(langevin_layers=2)
    with pytest.raises(ValueError, match=r"must be in \(0, 1\]. Received: langevin_layers=1.5"):
        kl.LAdam(langevin_layers=1.5)


@keras.saving.register_keras_serializable(package="tests_layer_model")
def kernels_only(variable):
    return variable.name == "kernel"


def test_a_predicate_saves_only_when_keras_can_load_it(tmp_path):
    model = _functional()
    model.compile(kl.LAdam(sigma=1e-3, seed=0, langevin_layers=kernels_only), "mse")
    loaded = _save_and_load(model, tmp_path)
    assert _positions(loaded) == _positions(model) == [0, 2, 4]
    unregistered = kl.LAdam(sigma=1e-3, langevin_layers=lambda v: v.name == "kernel")
    with pytest.raises(ValueError, match="register_keras_serializable"):
        unregistered.get_config()
    model = _functional()
    model.compile(unregistered, "mse")
    with pytest.raises(ValueError, match="register_keras_serializable"):
        model.save(str(tmp_path / "lambda.keras"))
