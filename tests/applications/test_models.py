"""Tests of the model builders in `applications.models`."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from applications.models import (
    MODEL_NAMES,
    build_model,
    cifar_resnet,
    densenet,
    mlp,
    plain_cnn,
    preact_resnet,
    zero_pad_shortcut,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Published parameter counts, as printed: He et al. (2016) for the CIFAR
# ResNets, He et al. (2016b) for the pre-activation ResNets, Huang et al.
# (2017) for the CIFAR DenseNets, and the commonly quoted figures for the
# ImageNet models (224x224x3 inputs, 1000 classes).
PUBLISHED_PARAMS = {
    "resnet20": "0.27M",
    "resnet32": "0.46M",
    "resnet44": "0.66M",
    "resnet56": "0.85M",
    "resnet110": "1.7M",
    "resnet1202": "19.4M",
    "preact-resnet164": "1.7M",
    "preact-resnet1001": "10.2M",
    "densenet40": "1.0M",
    "densenet100": "7.0M",
    "densenet-bc-100": "0.8M",
    "densenet-bc-250": "15.3M",
    "resnet50": "25.6M",
    "resnet101": "44.5M",
    "resnet152": "60.2M",
    "densenet121": "8.0M",
    "densenet169": "14.3M",
    "densenet201": "20.2M",
}


def _published_range(printed):
    """Value and tolerance of a printed count such as "0.8M".

    The tolerance is 3%, or half a unit of the last printed digit when the
    rounding is coarser than that: the DenseNet paper prints 1.0M for
    DenseNet-40 (1.02M trainable, 1.04M with the batch-normalization moving
    statistics) and 0.8M for DenseNet-BC-100 (0.77M trainable).
    """
    digits = printed.rstrip("M")
    decimals = len(digits.partition(".")[2])
    value = float(digits) * 1e6
    return value, max(0.03 * value, 0.5 * 10.0**-decimals * 1e6)


IMAGENET_MODELS = {
    "resnet50",
    "resnet101",
    "resnet152",
    "densenet121",
    "densenet169",
    "densenet201",
}
PAPER_MODELS = ("paper-resnet", "paper-densenet", "paper-mlp")


def _weighted_layers(model):
    """The Dense and Conv2D layers of `model`, in order."""
    return [
        layer
        for layer in model.layers
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))
    ]


def _forward(model, input_shape, batch=3, seed=0):
    x = np.random.default_rng(seed).random((batch, *input_shape), dtype=np.float32)
    return keras.ops.convert_to_numpy(model(x, training=False))


def _assert_probabilities(probabilities, batch, classes):
    assert probabilities.shape == (batch, classes)
    assert np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_every_fixed_name_has_a_published_count_or_is_a_paper_config():
    assert set(MODEL_NAMES) == set(PUBLISHED_PARAMS) | set(PAPER_MODELS)


def _cifar_depth(name):
    """Depth a CIFAR model name states, e.g. 164 for "preact-resnet164"."""
    return int(name.rpartition("-")[2].removeprefix("resnet").removeprefix("densenet"))


# Too deep for Python's default recursion limit of 1000 frames (Keras maps a functional graph
# recursively, one frame per node): built in one fresh interpreter, as a user would build them.
VERY_DEEP_MODELS = ("resnet1202", "preact-resnet1001", "densenet-bc-250")

FRESH_PROCESS_SCRIPT = """
import json, sys
from test_models import _facts
limit_before = sys.getrecursionlimit()
from applications import build_model
facts = {}
for name in sys.argv[1:]:
    facts[name] = _facts(build_model(name, input_shape=(32, 32, 3), classes=10))
limit_after = sys.getrecursionlimit()
print(json.dumps({"limit_before": limit_before, "limit_after": limit_after, "facts": facts}))
"""


def _facts(model):
    """What the parameter-count test checks of a model, as JSON-serializable values."""
    classifier = model.layers[-1]
    return {
        "name": model.name,
        "count_params": int(model.count_params()),
        "trainable": sum(int(np.prod(weight.shape)) for weight in model.trainable_weights),
        "classifier_is_dense": isinstance(classifier, keras.layers.Dense),
        "classifier_units": getattr(classifier, "units", None),
        # The depth in a CIFAR name counts the weighted layers on the main path
        # (stem, blocks, transitions, classifier), not projection shortcuts.
        "main_path_weighted_layers": len(
            [layer for layer in _weighted_layers(model) if "shortcut" not in layer.name]
        ),
    }


def _assert_matches_publication(name, facts):
    published, tolerance = _published_range(PUBLISHED_PARAMS[name])
    # Papers count trainable parameters; count_params() adds the moving
    # statistics of batch normalization. Both must match.
    for count in (facts["count_params"], facts["trainable"]):
        assert abs(count - published) <= tolerance, (
            f"{name}: {count:,} parameters, published {PUBLISHED_PARAMS[name]}"
        )
    assert facts["classifier_is_dense"]
    assert facts["classifier_units"] == (1000 if name in IMAGENET_MODELS else 10)
    if name not in IMAGENET_MODELS:
        assert facts["main_path_weighted_layers"] == _cifar_depth(name)
        assert facts["name"] == name


@pytest.mark.parametrize(
    "name", [name for name in PUBLISHED_PARAMS if name not in VERY_DEEP_MODELS]
)
def test_parameter_count_matches_publication(name):
    if name in IMAGENET_MODELS:
        model = build_model(name, input_shape=(224, 224, 3), classes=1000)
    else:
        model = build_model(name, input_shape=(32, 32, 3), classes=10)
    _assert_matches_publication(name, _facts(model))


def test_very_deep_models_build_in_a_fresh_process_and_match_publication():
    """resnet1202, preact-resnet1001 and densenet-bc-250 at Python's default recursion limit.

    One subprocess builds all three (a fresh interpreter, which nothing here has touched),
    so this costs what the three in-process builds did plus one start-up.
    """
    tests = os.path.dirname(os.path.abspath(__file__))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [tests, ROOT, os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_SCRIPT, *VERY_DEEP_MODELS],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["limit_before"] <= 1000  # the default: the builders must raise it themselves
    assert report["limit_after"] > 1000  # and it stays raised, for loading and cloning
    assert set(report["facts"]) == set(VERY_DEEP_MODELS)
    for name, facts in report["facts"].items():
        _assert_matches_publication(name, facts)


def test_layer_names_are_stable():
    model = build_model("resnet20", input_shape=(16, 16, 1))
    names = {layer.name for layer in model.layers}
    for expected in (
        "stem_conv",
        "stage1_block1_conv1",
        "stage1_block3_conv2",
        "stage2_block1_shortcut_pad",
        "stage3_block3_out",
        "avg_pool",
        "predictions",
    ):
        assert expected in names
    assert model.name == "resnet20"
    dense = densenet(input_shape=(8, 8, 1), depth=22, bottleneck=True, compression=0.5)
    names = {layer.name for layer in dense.layers}
    assert {"block1_layer1_bottleneck_conv", "block3_layer3_conv", "transition2_pool"} <= names
    preact = preact_resnet(input_shape=(8, 8, 1), depth=11)
    names = {layer.name for layer in preact.layers}
    assert {"stage1_block1_preact_bn", "stage3_block1_conv3", "post_relu"} <= names


@pytest.mark.parametrize("depth", [1, 10])
def test_mlp_depth_is_number_of_dense_layers(depth):
    model = build_model(f"mlp-{depth}", input_shape=(8, 8, 1))
    dense_layers = _weighted_layers(model)
    assert len(dense_layers) == depth
    assert all(isinstance(layer, keras.layers.Dense) for layer in dense_layers)
    assert all(layer.units == 64 for layer in dense_layers[:-1])
    assert dense_layers[-1].units == 10
    assert model.name == f"mlp-{depth}"


@pytest.mark.parametrize("depth", [1, 7])
def test_cnn_with_batch_norm(depth):
    model = build_model(f"cnn-{depth}", input_shape=(8, 8, 1), batch_norm=True)
    weighted = _weighted_layers(model)
    assert len(weighted) == depth
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in weighted) == depth - 1
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == depth - 1
    assert not any(layer.use_bias for layer in weighted[:-1])
    _assert_probabilities(_forward(model, (8, 8, 1), batch=2), 2, 10)


def test_cnn_downsamples_every_third_of_the_depth():
    model = plain_cnn(input_shape=(16, 16, 1), depth=10, width=4)
    strides = [layer.strides[0] for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert strides == [1, 1, 1, 2, 1, 1, 2, 1, 1]
    filters = [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert filters == [4, 4, 4, 8, 8, 8, 16, 16, 16]
    constant = plain_cnn(
        input_shape=(16, 16, 1), depth=10, width=4, double_width_on_downsample=False
    )
    assert {
        layer.filters for layer in constant.layers if isinstance(layer, keras.layers.Conv2D)
    } == {4}


@pytest.mark.parametrize("family", ["mlp", "cnn"])
@pytest.mark.parametrize("depth", [2, 7, 40])
@pytest.mark.parametrize("input_shape", [(8, 8, 1), (16, 16, 1)])
def test_plain_forward_pass_gives_probabilities(family, depth, input_shape):
    model = build_model(f"{family}-{depth}", input_shape=input_shape, classes=10)
    weighted = _weighted_layers(model)
    assert len(weighted) == depth
    kind = keras.layers.Dense if family == "mlp" else keras.layers.Conv2D
    assert all(isinstance(layer, kind) for layer in weighted[:-1])
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    _assert_probabilities(_forward(model, input_shape, batch=4), 4, 10)


@pytest.mark.parametrize("name", PAPER_MODELS)
@pytest.mark.parametrize("input_shape", [(8, 8, 1), (32, 32, 3)])
def test_paper_configurations_run(name, input_shape):
    model = build_model(name, input_shape=input_shape, classes=10)
    assert model.name == name
    _assert_probabilities(_forward(model, input_shape, batch=2), 2, 10)


def test_paper_configurations_have_the_stated_shape():
    resnet = build_model("paper-resnet", input_shape=(16, 16, 1))
    convs = [layer for layer in resnet.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 1 + 2 * 18
    assert sorted({layer.filters for layer in convs}) == [8, 16, 32]
    dense = build_model("paper-densenet", input_shape=(16, 16, 1))
    # 16 stem channels + 6 layers x growth rate 5 in each of 3 blocks.
    assert dense.get_layer("block3_layer6_concat").output.shape[-1] == 16 + 3 * 6 * 5
    perceptron = build_model("paper-mlp", input_shape=(16, 16, 1))
    hidden = _weighted_layers(perceptron)[:-1]
    assert [layer.units for layer in hidden] == [64] * 10


@pytest.mark.parametrize("input_shape", [(8, 8, 1), (16, 16, 1)])
@pytest.mark.parametrize(
    "build",
    [
        lambda shape: build_model("resnet20", input_shape=shape),
        lambda shape: build_model("densenet40", input_shape=shape),
        # The same code as preact-resnet164 and densenet-bc-100, shallower.
        lambda shape: preact_resnet(input_shape=shape, depth=11),
        lambda shape: densenet(input_shape=shape, depth=16, bottleneck=True, compression=0.5),
    ],
    ids=["resnet20", "densenet40", "preact-resnet11", "densenet-bc-16"],
)
def test_cifar_models_accept_small_inputs(build, input_shape):
    model = build(input_shape)
    _assert_probabilities(_forward(model, input_shape, batch=2), 2, 10)


def test_tiny_inputs_do_not_vanish():
    # Three downsamplings of a 3x3 image: 3 -> 2 -> 1 -> 1.
    model = cifar_resnet(input_shape=(3, 3, 1), blocks_per_stage=(1, 1, 1, 1), base_filters=4)
    _assert_probabilities(_forward(model, (3, 3, 1), batch=2), 2, 10)
    model = densenet(input_shape=(3, 3, 1), blocks=(1, 1, 1, 1), growth_rate=2)
    _assert_probabilities(_forward(model, (3, 3, 1), batch=2), 2, 10)


def test_projection_shortcut_variant():
    zero_pad = build_model("resnet20")
    projection = build_model("resnet20", shortcut="projection")
    assert projection.count_params() > zero_pad.count_params()
    published, tolerance = _published_range(PUBLISHED_PARAMS["resnet20"])
    assert abs(projection.count_params() - published) <= tolerance
    assert "stage2_block1_shortcut_conv" in {layer.name for layer in projection.layers}


def test_zero_pad_shortcut_subsamples_and_appends_zero_channels():
    inputs = keras.Input(shape=(5, 5, 2))
    model = keras.Model(inputs, zero_pad_shortcut(inputs, filters=6, stride=2, name="shortcut"))
    x = np.random.default_rng(1).random((2, 5, 5, 2), dtype=np.float32)
    y = keras.ops.convert_to_numpy(model(x))
    assert y.shape == (2, 3, 3, 6)
    np.testing.assert_array_equal(y[..., :2], x[:, ::2, ::2, :])
    np.testing.assert_array_equal(y[..., 2:], 0.0)
    assert model.count_params() == 0


def test_classifier_activation_and_classes():
    model = build_model("resnet20", input_shape=(8, 8, 1), classes=3, classifier_activation=None)
    logits = _forward(model, (8, 8, 1), batch=2)
    assert logits.shape == (2, 3)
    assert not np.allclose(logits.sum(axis=1), 1.0)


def test_generic_families_take_any_depth_and_width():
    assert cifar_resnet(input_shape=(8, 8, 1), depth=14, base_filters=4).name == "resnet14"
    assert cifar_resnet(input_shape=(8, 8, 1), blocks_per_stage=(2, 1)).name == "resnet8"
    model = densenet(input_shape=(8, 8, 1), blocks=(2, 3), growth_rate=4, initial_channels=6)
    assert model.get_layer("block2_layer3_concat").output.shape[-1] == 6 + 2 * 4 + 3 * 4
    assert model.name == "densenet8"
    bc = densenet(input_shape=(8, 8, 1), depth=16, growth_rate=4, bottleneck=True, compression=0.5)
    assert bc.name == "densenet-bc-16"
    # Stem: 2k = 8 channels; block 1 adds 2 x 4; the transition halves 16 to 8.
    assert bc.get_layer("transition1_conv").filters == 8
    assert mlp(input_shape=(4,), depth=3, width=5).count_params() == (4 * 5 + 5) + (5 * 5 + 5) + (
        5 * 10 + 10
    )


def test_keyword_arguments_override_the_preset():
    model = build_model("mlp-3", input_shape=(8, 8, 1), width=7, classes=4)
    assert [layer.units for layer in _weighted_layers(model)] == [7, 7, 4]
    model = build_model("paper-resnet", input_shape=(8, 8, 1), base_filters=4)
    assert model.name == "paper-resnet"
    assert model.get_layer("stem_conv").filters == 4


def test_model_survives_serialization(tmp_path):
    model = build_model("resnet20", input_shape=(8, 8, 1))
    path = tmp_path / "resnet20.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    x = np.random.default_rng(2).random((2, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored(x, training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "name, value",
    [("resnet21", "resnet21"), ("vgg16", "vgg16"), ("mlp-x", "mlp-x"), ("MLP-10", "MLP-10")],
)
def test_unknown_names_raise(name, value):
    with pytest.raises(ValueError, match=value):
        build_model(name)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: build_model("mlp-0"), "depth=0"),
        (lambda: build_model("cnn-0"), "depth=0"),
        (lambda: cifar_resnet(depth=21), "depth=21"),
        (lambda: cifar_resnet(depth=2), "depth=2"),
        (lambda: build_model("resnet20", depth=22), "depth=22"),
        (lambda: preact_resnet(depth=165), "depth=165"),
        (lambda: densenet(depth=41), "depth=41"),
        (lambda: densenet(depth=41, bottleneck=True), "depth=41"),
        (lambda: densenet(compression=0.0), "compression=0.0"),
        (lambda: cifar_resnet(blocks_per_stage=(3, 0, 3)), r"blocks_per_stage=\(3, 0, 3\)"),
        (lambda: cifar_resnet(depth=20, blocks_per_stage=(6, 6, 6)), "depth.*20"),
        (lambda: cifar_resnet(shortcut="identity"), "shortcut='identity'"),
        (lambda: mlp(width=0), "width=0"),
        (lambda: build_model("mlp-5", classes=0), "classes=0"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_value(build, message):
    with pytest.raises(ValueError, match=message):
        build()


# ------------------------------------------------------------------------------ initialisers


def _hidden_kernels(model):
    return [
        layer.kernel
        for layer in model.layers
        if hasattr(layer, "kernel") and layer.name != "predictions"
    ]


@pytest.mark.parametrize(
    "name, init, expected",
    [
        ("mlp-6", "he", "HeNormal"),
        ("mlp-6", "glorot", "GlorotUniform"),
        ("mlp-6", "orthogonal", "Orthogonal"),
        ("cnn-5", "glorot", "GlorotUniform"),
        ("resnet-nobn-8", "orthogonal", "Orthogonal"),
        ("resnet-8", "glorot", "GlorotUniform"),
    ],
)
def test_builders_use_the_requested_initializer(name, init, expected):
    model = build_model(name, (8, 8, 1), 10, init=init)
    classes = {
        type(layer.kernel_initializer).__name__
        for layer in model.layers
        if hasattr(layer, "kernel_initializer") and layer.name != "predictions"
    }
    assert classes == {expected}


def test_default_init_is_he_and_kernel_statistics_follow_init():
    keras.utils.set_random_seed(0)
    width, fan_in = 256, 256
    variances = {}
    for init in ("he", "glorot", "orthogonal", None):
        options = {} if init is None else {"init": init}
        model = mlp(input_shape=(width,), depth=4, width=width, **options)
        kernel = np.concatenate([np.ravel(k) for k in _hidden_kernels(model)[1:]])
        variances[init] = kernel.var()
    # He: 2/fan_in; Glorot: 2/(fan_in+fan_out) = 1/fan_in; orthogonal with gain sqrt(2):
    # every column of norm sqrt(2), so 2/fan_in. Two 256x256 kernels: 131,072 draws, the
    # relative standard error of a variance is sqrt(2/n) ~ 0.4%, 5% is > 10 standard errors.
    assert variances[None] == pytest.approx(variances["he"], rel=0.05)
    assert variances["he"] == pytest.approx(2 / fan_in, rel=0.05)
    assert variances["glorot"] == pytest.approx(1 / fan_in, rel=0.05)
    assert variances["orthogonal"] == pytest.approx(2 / fan_in, rel=0.05)
    kernel = np.asarray(
        _hidden_kernels(mlp(input_shape=(width,), depth=3, width=width, init="orthogonal"))[1]
    )
    np.testing.assert_allclose(kernel.T @ kernel, 2 * np.eye(width), atol=1e-4)


@pytest.mark.parametrize("build", [mlp, plain_cnn, cifar_resnet])
def test_unknown_init_is_a_clear_error(build):
    with pytest.raises(ValueError, match="init='lecun'"):
        build(input_shape=(8, 8, 1), init="lecun")


def test_batchnorm_free_resnet_has_no_batch_norm_and_keeps_the_signal():
    model = build_model("resnet-nobn-56", (8, 8, 1), 10)
    assert model.name == "resnet-nobn-56"
    assert not [layer for layer in model.layers if "BatchNormalization" in type(layer).__name__]
    convolutions = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert len(convolutions) == 55 and all(layer.use_bias for layer in convolutions)
    # The residual scaling keeps the last block's activations within a factor e of the
    # stem's second moment (without it: 2^27); measured on a batch of 64 random images.
    keras.utils.set_random_seed(1)
    probe = keras.Model(
        model.inputs,
        [model.get_layer("stem_relu").output, model.get_layer("stage3_block9_out").output],
    )
    stem, last = (
        np.asarray(t)
        for t in probe(np.random.default_rng(0).random((64, 8, 8, 1), dtype=np.float32))
    )
    ratio = np.mean(last**2) / np.mean(stem**2)
    assert 0.1 < ratio < 10.0
