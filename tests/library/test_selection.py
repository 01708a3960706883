"""Layer Langevin's selection: a fraction takes the first layers in forward order (nearest the
input, nested models flattened, subclassed models in call order); names, glob patterns and
predicates select exactly what they match; selection is not optimizer state."""

import math

import keras
import pytest

import keras_langevin as kl
from keras_langevin import selection

pytestmark = pytest.mark.multibackend


def _weighted_layers_from_model(model):
    """Reference order, independent of variable paths: model.layers, nested models flattened."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_weighted_layers_from_model(layer))
        elif layer.trainable_weights:
            out.append(layer)
    return out


def _noisy_layer_names(model, fraction):
    optimizer = kl.LAdam(sigma=1e-3, langevin_layers=fraction)
    optimizer.set_model(model)
    optimizer.build(model.trainable_variables)
    selected = {id(v) for v in optimizer.langevin_variables}
    names = []
    for layer in _weighted_layers_from_model(model):
        flags = {id(v) in selected for v in layer.trainable_weights}
        assert len(flags) == 1, f"layer {layer.name} is half selected"
        if flags.pop():
            names.append(layer.name)
    return names


def _check_prefix(model, fraction=0.3):
    layers = _weighted_layers_from_model(model)
    names = _noisy_layer_names(model, fraction)
    expected = [layer.name for layer in layers[: math.ceil(fraction * len(layers))]]
    print(f"{model.name}: {len(names)} of {len(layers)} weighted layers noisy: {names}")
    assert names == expected
    return names


def test_fraction_selects_the_first_layers_of_a_sequential_mlp():
    model = keras.Sequential(
        [keras.Input((16,))]
        + [keras.layers.Dense(8, activation="relu", name=f"hidden{i}") for i in range(9)]
        + [keras.layers.Dropout(0.1), keras.layers.Dense(3, name="classifier")]
    )
    names = _check_prefix(model)
    assert names == ["hidden0", "hidden1", "hidden2"]  # ceil(0.3 * 10) = 3
    assert _noisy_layer_names(model, 1.0) == [f"hidden{i}" for i in range(9)] + ["classifier"]
    assert _noisy_layer_names(model, 0.01) == ["hidden0"]


def _cifar_resnet(blocks=3):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Activation("relu")(x)
    for b in range(blocks):
        y = keras.layers.Conv2D(8, 3, padding="same", name=f"block{b}_conv1")(x)
        y = keras.layers.BatchNormalization(name=f"block{b}_bn1")(y)
        y = keras.layers.Activation("relu")(y)
        y = keras.layers.Conv2D(8, 3, padding="same", name=f"block{b}_conv2")(y)
        y = keras.layers.BatchNormalization(name=f"block{b}_bn2")(y)
        x = keras.layers.Activation("relu")(keras.layers.Add()([x, y]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="classifier")(x), name="resnet")


def test_fraction_selects_the_first_layers_of_a_functional_resnet():
    names = _check_prefix(_cifar_resnet())
    # 2 + 4 * 3 + 1 = 15 weighted layers, ceil(4.5) = 5 noisy.
    assert names == ["stem_conv", "stem_bn", "block0_conv1", "block0_bn1", "block0_conv2"]


def test_fraction_selects_the_first_layers_of_keras_resnet50():
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)
    names = _check_prefix(model)
    assert len(names) == math.ceil(0.3 * 107)  # 53 convolutions, 53 batch norms, 1 dense
    assert names[0] == "conv1_conv" and names[-1].startswith("conv3_")


def test_nested_models_are_flattened():
    inner = keras.Sequential(
        [keras.layers.Dense(4, name="in1"), keras.layers.Dense(4, name="in2")], name="inner"
    )
    inputs = keras.Input((4,))
    x = keras.layers.Dense(4, name="first")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="last")(inner(x)))
    assert _noisy_layer_names(model, 0.5) == ["first", "in1"]


def test_names_and_glob_patterns_select_exactly_the_matching_layers():
    model = _cifar_resnet()
    optimizer = kl.LSGD(sigma=0.1, langevin_layers=["stem_*", "block2_conv2"])
    optimizer.build(model.trainable_variables)
    owners = sorted({selection.owner_path(v) for v in optimizer.langevin_variables})
    assert owners == ["block2_conv2", "stem_bn", "stem_conv"]


def test_predicate_selects_exactly_the_variables_it_accepts():
    model = _cifar_resnet()
    optimizer = kl.LRMSprop(sigma=0.1, langevin_layers=lambda v: v.name == "kernel")
    optimizer.build(model.trainable_variables)
    assert {v.name for v in optimizer.langevin_variables} == {"kernel"}
    assert len(optimizer.langevin_variables) == 8  # 1 + 2 * 3 convolutions + 1 dense


def test_unmatched_name_fails_at_build():
    model = _cifar_resnet()
    optimizer = kl.LAdam(sigma=0.1, langevin_layers=["stem_conv", "nope*"])
    with pytest.raises(ValueError, match="nope"):
        optimizer.build(model.trainable_variables)


def test_selection_is_not_optimizer_state():
    # Selected model variables must not be tracked as optimizer variables (JAX donates those).
    model = _cifar_resnet()
    optimizer = kl.LAdam(sigma=0.1, langevin_layers=0.5)
    optimizer.set_model(model)
    optimizer.build(model.trainable_variables)
    model_ids = {id(v) for v in model.trainable_variables}
    assert not any(id(v) in model_ids for v in optimizer.variables)


def test_tiny_fraction_selects_one_layer():
    model = _cifar_resnet()
    for fraction in (1e-12, 1e-9, 0.01):
        assert _noisy_layer_names(model, fraction) == ["stem_conv"]
    assert selection.fraction_count(0.3, 10) == 3  # not 4 from 3.0000000000000004
    assert selection.fraction_count(1.0, 7) == 7 and selection.fraction_count(0.5, 0) == 0


class _HeadFirst(keras.Model):
    """The issue's example: the output layer is assigned first and called last."""

    def __init__(self):
        super().__init__(name="head_first")
        self.head = keras.layers.Dense(3, name="head")
        self.norm = keras.layers.LayerNormalization(name="norm")
        self.a = keras.layers.Dense(8, activation="relu", name="a")
        self.b = keras.layers.Dense(8, activation="relu", name="b")

    def call(self, x):
        return self.head(self.norm(self.b(self.a(x))))


def _owners(optimizer):
    return [selection.owner_path(v) for v in optimizer.langevin_variables]


def test_subclassed_model_in_fit_takes_the_call_order():
    model = _HeadFirst()
    assert [layer.name for layer in model.layers] == ["head", "norm", "a", "b"]
    model.compile(kl.LayerLAdam(1e-2, sigma=1e-3, seed=0), "mse")
    model.fit(keras.ops.ones((8, 5)), keras.ops.zeros((8, 3)), verbose=0)
    # ceil(0.3 * 4) = 2 layers nearest the input: a, b (never head).
    assert _owners(model.optimizer) == ["head_first/a"] * 2 + ["head_first/b"] * 2


class _Block(keras.layers.Layer):
    """A custom block whose sublayers are assigned in the reverse of their call order."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.second = keras.layers.Dense(4, name="second")
        self.first = keras.layers.Dense(4, name="first")

    def call(self, x):
        return self.second(self.first(x))


def test_custom_block_inside_a_functional_model_is_traced():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(4, name="stem")(inputs)
    x = _Block(name="block")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    optimizer = kl.LSGD(sigma=0.1, langevin_layers=0.5)
    optimizer.set_model(model)
    optimizer.build(model.trainable_variables)
    assert sorted(set(_owners(optimizer))) == ["block/first", "stem"]


class _Untraceable(keras.Model):
    """A call that only runs eagerly (Python control flow on a value)."""

    def __init__(self):
        super().__init__(name="untraceable")
        self.head = keras.layers.Dense(3, name="head")
        self.a = keras.layers.Dense(8, name="a")

    def call(self, x):
        x = self.a(x)
        if float(keras.ops.convert_to_numpy(keras.ops.sum(x))) > 1e9:
            x = -x
        return self.head(x)


def test_fraction_is_refused_when_the_order_cannot_be_known():
    model = _Untraceable()
    model(keras.ops.ones((2, 5)))
    optimizer = kl.LAdam(sigma=0.1, langevin_layers=0.5)
    optimizer.set_model(model)
    with pytest.raises(ValueError, match=r"cannot be determined.*untraceable.*langevin_layers=\["):
        optimizer.build(model.trainable_variables)
    # Names work.
    optimizer = kl.LAdam(sigma=0.1, langevin_layers=["a"])
    optimizer.build(model.trainable_variables)
    assert _owners(optimizer) == ["untraceable/a"] * 2


def test_a_fraction_without_a_model_is_refused_at_build():
    variables = []
    for i in range(4):
        with keras.name_scope(f"layer{i}"):
            variables.append(keras.Variable(keras.ops.zeros((2,)), name="w"))
    optimizer = kl.LSGD(sigma=0.1, langevin_layers=0.5)
    with pytest.raises(ValueError, match=r"does not know its model.*set_model\(model\)"):
        optimizer.build(variables[::-1])
    assert not optimizer.built
    # Names need no model: they match the variables' own paths.
    optimizer = kl.LSGD(sigma=0.1, langevin_layers=["layer1"])
    optimizer.build(variables)
    assert _owners(optimizer) == ["layer1"]
