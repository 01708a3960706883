"""applications.data.augment: the batch policies on keras-cv's layers and on Keras's own.

The choice is made once per process; every policy test runs on both implementations, Keras's
forced by making `import keras_cv` fail. keras-cv is skipped only on Keras 3.16 and later,
where its last release (0.9.0) does not work; on older Keras a failing keras-cv fails here.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import ast
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from applications import _keras_patches
from applications.data import augment, load_dataset

MOCK_EXAMPLES = 24
KERAS_CV_BREAKS_FROM = (3, 16)  # keras-cv 0.9.0 does not import with keras-nightly 3.16


def _first_batch(ds):
    x, y = next(iter(ds))
    return x.numpy(), y.numpy()


def _force_keras(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_cv", None)  # `import keras_cv` raises ImportError


@pytest.fixture(autouse=True)
def _fresh_choice():
    augment.reset_choice()
    yield
    augment.reset_choice()


@pytest.fixture(params=augment.IMPLEMENTATIONS)
def implementation(request, monkeypatch):
    if request.param == "keras":
        _force_keras(monkeypatch)
    chosen = augment.choice()
    if request.param == "keras-cv" and chosen.name != "keras-cv":
        if _keras_patches.keras_release() >= KERAS_CV_BREAKS_FROM:
            pytest.skip(chosen.reason)
        pytest.fail(f"keras-cv should work with Keras {keras.__version__}: {chosen.reason}")
    assert chosen.name == request.param
    return chosen.name


# ---------------------------------------------------------------------------- the choice


def test_keras_cv_is_imported_lazily():
    """keras_cv may only be imported inside functions of applications/data/augment.py."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    package = os.path.join(root, "applications", "data")
    modules = sorted(name[:-3] for name in os.listdir(package) if name.endswith(".py"))
    assert "augment" in modules and "pipeline" in modules
    for module in modules:
        allowed = module == "augment"
        with open(os.path.join(package, f"{module}.py")) as f:
            tree = ast.parse(f.read())
        top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top_level for a in n.names] + [
            n.module or "" for n in top_level if isinstance(n, ast.ImportFrom)
        ]
        assert not any(name.split(".")[0] == "keras_cv" for name in names), module
        nested = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Import) and any(a.name == "keras_cv" for a in n.names)
        ]
        assert bool(nested) == allowed, module


def test_keras_layers_when_keras_cv_does_not_import(monkeypatch, capsys):
    _force_keras(monkeypatch)
    chosen = augment.choice()
    assert chosen.name == "keras" and "import of keras_cv halted" in chosen.reason
    assert keras.__version__ in chosen.reason
    assert "Batch augmentation: keras layers" in capsys.readouterr().err
    fn = augment.build_batch_augmenter(["mixup"])
    assert fn.implementation == "keras"


def test_keras_layers_when_keras_cv_imports_but_fails(monkeypatch):
    def broken(keras_cv):
        raise AttributeError("convert_to_numpy")

    monkeypatch.setattr(augment, "_keras_cv", lambda: "keras_cv stand-in")  # imports
    monkeypatch.setattr(augment, "_probe", broken)
    chosen = augment.choice()
    assert chosen.name == "keras" and "AttributeError: convert_to_numpy" in chosen.reason


def test_the_choice_is_made_once_per_process(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(augment, "_choose", lambda: calls.append(1) or augment.Choice("x", "y"))
    assert [augment.implementation() for _ in range(3)] == ["x"] * 3
    assert calls == [1] and capsys.readouterr().err.count("Batch augmentation") == 1


# ---------------------------------------------------------------------------- the mapping


def test_keras_cv_arguments_map_to_keras_layers():
    assert augment.keras_arguments("randaugment") == {"num_ops": 3, "factor": 0.5}
    assert augment.keras_arguments(
        "randaugment", {"augmentations_per_image": 1, "magnitude": 0.2, "rate": 1.0}
    ) == {"num_ops": 1, "factor": 0.2}
    assert augment.keras_arguments("cutmix") == {"factor": (1.0, 1.0)}
    assert augment.keras_arguments("cutmix", {"alpha": 0.4}) == {"factor": (0.4, 0.4)}
    assert augment.keras_arguments("mixup", {"alpha": 0.3}) == {"alpha": 0.3}


@pytest.mark.parametrize(
    "policy, name, value",
    [
        ("randaugment", "magnitude_stddev", 0.15),
        ("randaugment", "rate", 10 / 11),
        ("randaugment", "geometric", False),
        ("randaugment", "interpolation", "nearest"),
        ("cutmix", "alpha", 2.0),
        ("mixup", "beta", 1.0),
    ],
)
def test_keras_layers_refuse_what_they_cannot_honour(monkeypatch, policy, name, value):
    _force_keras(monkeypatch)
    with pytest.raises(ValueError, match=rf"\['{policy}'\]\['{name}'\]={value!r}"):
        augment.build_batch_augmenter([policy], options={policy: {name: value}})


def test_the_mapped_arguments_reach_keras_layers(monkeypatch):
    _force_keras(monkeypatch)
    layer = augment.rand_augment_layer(seed=3, augmentations_per_image=1, magnitude=0.2)
    assert isinstance(layer, keras.layers.RandAugment)
    assert (layer.num_ops, tuple(layer.factor), tuple(layer.value_range)) == (1, (0, 0.2), (0, 1))
    cut = augment.mixing_layer(["cutmix"], options={"cutmix": {"alpha": 0.5}})
    assert isinstance(cut, keras.layers.CutMix) and tuple(cut.factor) == (0.5, 0.5)


# ---------------------------------------------------------------------------- the policies


def test_randaugment_grayscale_shapes_range_and_labels(implementation):
    args = {"batch_size": 32, "train_take": 64, "channels": 1}
    d = load_dataset("digits", augment="standard+randaugment", **args)
    assert d.augment == ("standard", "randaugment") and d.one_hot is False
    x, y = _first_batch(d.train)
    assert x.shape == (32, 16, 16, 1) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert y.shape == (32,) and y.dtype == np.int32
    x_plain, y_plain = _first_batch(load_dataset("digits", augment="standard", **args).train)
    np.testing.assert_array_equal(y, y_plain)  # the same examples, labels untouched
    assert not np.allclose(x, x_plain)  # and augmented


def test_randaugment_on_mock_cifar10(implementation):
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
        d = load_dataset("cifar10", batch_size=12, augment=["randaugment"])
        x, y = _first_batch(d.train)
    assert x.shape == (12, 32, 32, 3) and y.shape == (12,)
    assert x.min() >= 0.0 and x.max() <= 1.0


@pytest.mark.parametrize("policy", ["cutmix", "mixup", "cutmix+mixup"])
def test_mixing_policies_one_hot(implementation, policy):
    d = load_dataset(
        "digits", batch_size=32, train_take=64, test_take=40, augment=f"standard+{policy}"
    )
    assert d.one_hot is True and d.loss == "categorical_crossentropy"
    x, y = _first_batch(d.train)
    assert x.shape == (32, 16, 16, 1) and x.dtype == np.float32
    assert y.shape == (32, 10) and y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    assert y.min() >= 0.0
    assert (y.max(axis=1) < 1.0).any()  # labels were actually mixed
    _, yt = _first_batch(d.test)  # test labels are one-hot too, unmixed
    assert yt.shape == (32, 10)
    np.testing.assert_array_equal(np.sort(yt, axis=1)[:, -1], 1.0)


def test_mixup_on_mock_cifar10_standardized(implementation):
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
        d = load_dataset("cifar10", batch_size=12, augment="mixup", standardize=True)
        x, y = _first_batch(d.train)
    assert x.shape == (12, 32, 32, 3) and y.shape == (12, 10)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)


# Label consistency: example k of a batch is a constant image of value (k + 1) / 11 with the
# one-hot label of class k, so every pixel says which example it came from.
CLASSES, SIZE = 10, 32


def _mixed_batches(policy, batches=1):
    images = np.broadcast_to(
        ((np.arange(CLASSES) + 1) / (CLASSES + 1)).reshape(-1, 1, 1, 1), (CLASSES, SIZE, SIZE, 3)
    ).astype("float32")
    labels = np.eye(CLASSES, dtype="float32")
    fn = augment.build_batch_augmenter(policy.split("+"), seed=1)
    data = tf.data.Dataset.from_tensors((images, labels)).repeat(batches).map(fn)
    return [(x.numpy(), y.numpy()) for x, y in data]


def _pixel_classes(image):
    return np.rint(image * (CLASSES + 1)).astype(int) - 1


def test_mixup_labels_weigh_the_images_as_the_pixels_do(implementation):
    ((x, y),) = _mixed_batches("mixup")
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    assert (y.max(axis=1) < 0.999).any()  # mixed
    assert ((y > 1e-6).sum(axis=1) <= 2).all()  # each image mixes two examples at most
    values = (np.arange(CLASSES) + 1) / (CLASSES + 1)
    np.testing.assert_allclose(x.std(axis=(1, 2, 3)), 0.0, atol=1e-5)  # one blend per image
    np.testing.assert_allclose(x.mean(axis=(1, 2, 3)), y @ values, atol=1e-5)


def test_cutmix_labels_weigh_the_images_as_the_pixels_do(implementation):
    ((x, y),) = _mixed_batches("cutmix")
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    assert (y.max(axis=1) < 0.999).any()  # mixed
    pixels = _pixel_classes(x[..., 0])
    np.testing.assert_allclose(x[..., 0], (pixels + 1) / (CLASSES + 1), atol=1e-5)  # pasted
    # Keras counts the pixels of a box of real-valued sides: each side off by under one pixel
    area_error = (2 * SIZE + 1) / SIZE**2
    for k in range(CLASSES):
        fractions = np.bincount(pixels[k].ravel(), minlength=CLASSES) / SIZE**2
        assert set(np.flatnonzero(fractions)) <= set(np.flatnonzero(y[k] > 1e-6)) | {k}
        foreign = [c for c in range(CLASSES) if c != k]
        if implementation == "keras":
            np.testing.assert_allclose(fractions[foreign], y[k, foreign], atol=area_error)
        else:  # keras-cv: the labels count the box before it is clipped at the image's edges
            assert (fractions[foreign] <= y[k, foreign] + 1e-6).all()


def test_cutmix_or_mixup_chooses_both_over_batches(implementation):
    kinds = set()
    for x, _ in _mixed_batches("cutmix+mixup", batches=12):
        pasted = np.allclose(x[..., 0], (_pixel_classes(x[..., 0]) + 1) / (CLASSES + 1))
        kinds.add("cutmix" if pasted else "mixup")
    assert kinds == {"cutmix", "mixup"}


# ------------------------------------------------------------------------- in a run's record


def test_the_run_summary_records_which_layers_augmented(implementation, tmp_path):
    from applications import engine

    config = engine.RunConfig(model="mlp-2", model_options=(("width", 8),), augment="mixup",
                              optimizer="ladam", epochs=1, train_take=64, test_take=32)  # fmt: skip
    summary, _ = engine.run(config, str(tmp_path / "run"), verbose=0, tensorboard=False)
    assert summary["augmentation"] == {
        "policies": ["mixup"],
        "batch_implementation": implementation,
    }
