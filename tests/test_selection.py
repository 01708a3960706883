"""Property 10 and the selection rules of Layer Langevin."""

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


def test_sequential_mlp():
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


def test_functional_cifar_resnet():
    names = _check_prefix(_cifar_resnet())
    # 2 + 4 * 3 + 1 = 15 weighted layers, ceil(4.5) = 5 noisy.
    assert names == ["stem_conv", "stem_bn", "block0_conv1", "block0_bn1", "block0_conv2"]


def test_keras_resnet50():
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)
    names = _check_prefix(model)
    assert len(names) == math.ceil(0.3 * 107)  # 53 convolutions, 53 batch norms, 1 dense
    assert names[0] == "conv1_conv" and names[-1].startswith("conv3_")


def test_nested_models_are_flattened():
    inner = keras.Sequential([keras.layers.Dense(4, name="in1"), keras.layers.Dense(4, name="in2")],
                             name="inner")
    inputs = keras.Input((4,))
    x = keras.layers.Dense(4, name="first")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="last")(inner(x)))
    assert _noisy_layer_names(model, 0.5) == ["first", "in1"]


def test_names_and_glob_patterns():
    model = _cifar_resnet()
    optimizer = kl.LSGD(sigma=0.1, langevin_layers=["stem_*", "block2_conv2"])
    optimizer.build(model.trainable_variables)
    owners = sorted({selection.owner_path(v) for v in optimizer.langevin_variables})
    assert owners == ["block2_conv2", "stem_bn", "stem_conv"]


def test_predicate():
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
    optimizer.build(model.trainable_variables)
    model_ids = {id(v) for v in model.trainable_variables}
    assert not any(id(v) in model_ids for v in optimizer.variables)
