"""Tests for applications.data (tf.data pipelines); the batch policies in test_augment.py."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import math
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from applications import data
from applications.data import (
    DatasetNotAvailableError,
    load_dataset,
    pad_for_size,
    standard_augment,
    synthetic_dataset,
)

MOCK_EXAMPLES = 24


def _batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def _first_batch(ds):
    x, y = next(iter(ds))
    return x.numpy(), y.numpy()


def _shift_matches(aug, orig, pad):
    """Return (matches an unflipped crop, matches a flipped crop) of zero-padded ``orig``."""
    ph, pw = pad
    h, w = orig.shape[:2]
    padded = np.pad(orig, [(ph, ph), (pw, pw), (0, 0)])
    plain = flipped = False
    for dy in range(2 * ph + 1):
        for dx in range(2 * pw + 1):
            crop = padded[dy : dy + h, dx : dx + w]
            plain |= np.array_equal(aug, crop)
            flipped |= np.array_equal(aug, crop[:, ::-1])
    return plain, flipped


# ---------------------------------------------------------------------------- digits


def test_digits_fixed_split_and_sizes():
    a = load_dataset("digits", augment="none", batch_size=512)
    b = load_dataset("digits", augment="none", batch_size=512)
    assert (a.train_size, a.test_size) == (1437, 360)
    assert a.num_classes == 10 and a.name == "digits"
    assert a.input_shape == (16, 16, 1)  # default digits size
    assert a.one_hot is False and a.loss == "sparse_categorical_crossentropy"
    xa = np.concatenate([x for x, _ in _batches(a.test)])
    xb = np.concatenate([x for x, _ in _batches(b.test)])
    np.testing.assert_array_equal(xa, xb)
    ya = np.concatenate([y for _, y in _batches(a.test)])
    # stratified split: every class is present in the test set
    assert set(ya.tolist()) == set(range(10))
    # train and test are disjoint parts of the 1797 images
    x_train, _, x_test, y_test = data.load_digits_arrays()
    assert len(x_train) + len(x_test) == 1797
    np.testing.assert_array_equal(ya, y_test)


@pytest.mark.parametrize("image_size", [8, 16, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_digits_shapes_range_labels_batches(image_size, channels):
    batch_size = 100
    d = load_dataset(
        "digits",
        batch_size=batch_size,
        image_size=image_size,
        channels=channels,
        augment="standard",
    )
    assert d.input_shape == (image_size, image_size, channels)
    assert d.steps_per_epoch == math.ceil(1437 / batch_size)
    for split, size in ((d.train, d.train_size), (d.test, d.test_size)):
        batches = _batches(split)
        assert len(batches) == math.ceil(size / batch_size)
        assert [len(y) for _, y in batches[:-1]] == [batch_size] * (len(batches) - 1)
        assert len(batches[-1][1]) == size - batch_size * (len(batches) - 1)
        x = np.concatenate([b[0] for b in batches])
        y = np.concatenate([b[1] for b in batches])
        assert x.shape == (size, image_size, image_size, channels)
        assert x.dtype == np.float32 and y.dtype == np.int32
        assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.9
        assert y.min() >= 0 and y.max() <= 9
        if channels == 3:
            np.testing.assert_array_equal(x[..., 0], x[..., 2])


def test_digits_native_8x8_matches_sklearn():
    from sklearn.datasets import load_digits

    d = load_dataset("digits", image_size=8, augment="none", batch_size=4096)
    x, y = _first_batch(d.test)
    raw = load_digits()
    lookup = {img.tobytes(): t for img, t in zip(raw.images.astype(np.float32) / 16.0, raw.target)}
    for img, label in zip(x[..., 0], y):
        assert lookup[img.tobytes()] == label


def test_digits_standardize():
    d = load_dataset("digits", image_size=8, augment="none", standardize=True, batch_size=4096)
    assert d.standardized and d.mean is not None and len(d.mean) == 1
    x, _ = _first_batch(d.train)  # whole (unaugmented) training split in one batch
    assert abs(float(x.mean())) < 1e-4
    assert abs(float(x.std()) - 1.0) < 1e-3


# ---------------------------------------------------------------------------- standard augmentation


def test_pad_for_size():
    assert pad_for_size(32) == (4, 4)
    assert pad_for_size(28) == (3, 3)
    assert pad_for_size(16) == (2, 2)
    assert pad_for_size(8) == (1, 1)
    assert pad_for_size(32, 16) == (4, 2)


def test_standard_augment_keeps_shape_and_dtype_and_is_seeded():
    image = tf.random.stateless_uniform((32, 32, 3), seed=(1, 2))
    seed = tf.constant([3, 4], tf.int64)
    out = standard_augment(image, seed, (4, 4), flip=True)
    assert out.shape == image.shape and out.dtype == tf.float32
    np.testing.assert_array_equal(out.numpy(), standard_augment(image, seed, (4, 4), True).numpy())
    outs = {
        standard_augment(image, tf.constant([i, 0]), (4, 4), True).numpy().tobytes()
        for i in range(8)
    }
    assert len(outs) > 1


def test_same_seed_same_first_batch_other_seed_differs():
    kwargs = {"batch_size": 64, "augment": "standard"}
    a = _first_batch(load_dataset("digits", seed=7, **kwargs).train)
    b = _first_batch(load_dataset("digits", seed=7, **kwargs).train)
    c = _first_batch(load_dataset("digits", seed=8, **kwargs).train)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_epochs_reshuffle_and_reaugment():
    d = load_dataset("digits", batch_size=64, seed=0)
    first = _first_batch(d.train)
    second = _first_batch(d.train)
    assert not np.array_equal(first[0], second[0])


def test_asymmetric_image_never_mirrored_without_flip():
    image = np.zeros((8, 8, 1), np.float32)
    image[:, 0] = 1.0  # bright left column
    results = [
        standard_augment(tf.constant(image), tf.constant([s, 1]), (1, 1), flip=False).numpy()
        for s in range(40)
    ]
    assert all(r[:, 4:].max() == 0.0 for r in results)  # never reaches the right half
    flipped = [
        standard_augment(tf.constant(image), tf.constant([s, 1]), (1, 1), flip=True).numpy()
        for s in range(40)
    ]
    assert any(r[:, 4:].max() > 0.0 for r in flipped)  # positive control


def test_digits_pipeline_crops_but_never_flips():
    plain = load_dataset("digits", augment="none", batch_size=64, shuffle_buffer=1)
    aug = load_dataset("digits", augment="standard", batch_size=64, shuffle_buffer=1)
    assert aug.flip is False and aug.pad == (2, 2) and aug.augment == ("standard",)
    x0, y0 = _first_batch(plain.train)
    x1, y1 = _first_batch(aug.train)
    np.testing.assert_array_equal(y0, y1)
    assert not np.array_equal(x0, x1)  # something was cropped
    for orig, out in zip(x0, x1):
        is_plain, _ = _shift_matches(out, orig, aug.pad)
        assert is_plain


# ---------------------------------------------------------------------------- tfds (mocked)


@pytest.mark.parametrize(
    "name, shape, flip",
    [
        ("mnist", (28, 28, 1), False),
        ("fashion_mnist", (28, 28, 1), False),
        ("cifar10", (32, 32, 3), True),
        ("cifar100", (32, 32, 3), True),
        ("svhn_cropped", (32, 32, 3), False),
    ],
)
def test_tfds_mock_shapes_batches(name, shape, flip):
    num_classes = 100 if name == "cifar100" else 10
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
        d = load_dataset(name, batch_size=10, augment="standard")
        assert d.input_shape == shape and d.num_classes == num_classes
        assert (d.train_size, d.test_size) == (MOCK_EXAMPLES, MOCK_EXAMPLES)
        assert d.flip is flip and d.pad == pad_for_size(shape[0])
        for split in (d.train, d.test):
            batches = _batches(split)
            assert [len(y) for _, y in batches] == [10, 10, 4]
            x = np.concatenate([b[0] for b in batches])
            y = np.concatenate([b[1] for b in batches])
            assert x.shape == (MOCK_EXAMPLES, *shape) and x.dtype == np.float32
            assert x.min() >= 0.0 and x.max() <= 1.0
            assert y.dtype == np.int32 and y.min() >= 0 and y.max() < num_classes


def test_tfds_mock_normalization_resize_channels_take():
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
        raw = load_dataset("cifar10", batch_size=64, augment="none")
        std = load_dataset("cifar10", batch_size=64, augment="none", standardize=True)
        small = load_dataset(
            "mnist",
            batch_size=8,
            augment="standard",
            image_size=16,
            channels=3,
            train_take=10,
            test_take=5,
        )
        x_raw, _ = _first_batch(raw.test)
        x_std, _ = _first_batch(std.test)
        xs, _ = _first_batch(small.train)
        xt = np.concatenate([x for x, _ in _batches(small.test)])
    mean, sd = (
        np.array(data.CHANNEL_STATS["cifar10"][0]),
        np.array(data.CHANNEL_STATS["cifar10"][1]),
    )
    assert std.standardized and std.mean == tuple(mean)
    np.testing.assert_allclose(x_std, (x_raw - mean) / sd, rtol=1e-5, atol=1e-5)
    # uint8 -> [0, 1]: values are multiples of 1/255
    np.testing.assert_allclose(x_raw * 255.0, np.round(x_raw * 255.0), atol=1e-3)
    assert small.input_shape == (16, 16, 3) and small.pad == (2, 2)
    assert (small.train_size, small.test_size) == (10, 5)
    assert xs.shape == (8, 16, 16, 3) and xt.shape == (5, 16, 16, 3)


def test_tfds_mock_cifar_flip_happens_mnist_never():
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
        loaded = {}
        for name in ("cifar10", "mnist"):
            plain = load_dataset(name, augment="none", batch_size=MOCK_EXAMPLES, shuffle_buffer=1)
            aug = load_dataset(name, augment="standard", batch_size=MOCK_EXAMPLES, shuffle_buffer=1)
            loaded[name] = (aug.pad, _first_batch(plain.train)[0], _first_batch(aug.train)[0])
    pad, x0, x1 = loaded["cifar10"]
    flags = [_shift_matches(out, orig, pad) for orig, out in zip(x0, x1)]
    assert all(p or f for p, f in flags)
    assert any(f and not p for p, f in flags)  # at least one image was mirrored
    pad, x0, x1 = loaded["mnist"]
    assert all(_shift_matches(out, orig, pad)[0] for orig, out in zip(x0, x1))


def test_missing_tfds_dataset_raises_clear_error_fast(tmp_path):
    start = time.monotonic()
    with pytest.raises(DatasetNotAvailableError) as info:
        load_dataset("cifar10", data_dir=str(tmp_path))
    assert time.monotonic() - start < 20
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "cifar10" in message and "not available" in message
    assert "tfds build cifar10" in message and "download_and_prepare" in message
    assert "--data-dir" in message
    assert not list(tmp_path.iterdir())  # nothing was downloaded/written


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown dataset"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="Unknown augmentation"):
        load_dataset("digits", augment="autoaugment")
    with pytest.raises(ValueError, match="one_hot"):
        load_dataset("digits", augment="cutmix", one_hot=False)


def test_digits_module_imports_without_tensorflow():
    """The embedded digits serve any Keras backend: importing them loads no TensorFlow."""
    code = (
        "import sys, applications.data.digits; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=120)


# ---------------------------------------------------------------------------- synthetic


def test_synthetic_dataset():
    ds = synthetic_dataset(100, batch_size=32, seed=3)
    batches = _batches(ds)
    assert [len(y) for _, y in batches] == [32, 32, 32, 4]
    x, y = batches[0]
    assert x.shape == (32, 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int32
    assert x.min() >= 0.0 and x.max() < 1.0 and y.min() >= 0 and y.max() < 10
    again = _first_batch(synthetic_dataset(100, batch_size=32, seed=3))
    np.testing.assert_array_equal(again[0], x)
    other = _first_batch(synthetic_dataset(100, batch_size=32, seed=4))
    assert not np.array_equal(other[0], x)
    _, y1 = _first_batch(
        synthetic_dataset(10, (8, 8, 1), num_classes=5, batch_size=10, one_hot=True)
    )
    assert y1.shape == (10, 5)
