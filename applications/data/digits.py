"""The embedded dataset: scikit-learn's bundled 8x8 digits with a fixed split.

:func:`load_digits_arrays` (numpy arrays) is kept free of TensorFlow so that any Keras
backend (JAX on a GPU machine) can use it; importing this module imports neither
TensorFlow nor Keras. :func:`load_digits` is the ``"digits"`` source of
:func:`applications.data.load_dataset` and imports TensorFlow when called.
"""

from __future__ import annotations

import numpy as np

from applications.data._source import Dataset, Source, Stats

DIGITS_SPLIT = {"test_size": 0.2, "random_state": 0}


def load_digits_arrays():
    """The fixed digits split: ``(x_train, y_train, x_test, y_test)``.

    1,797 real images, stratified 80/20 split with a fixed seed (1,437 train, 360 test).
    Images are ``float32`` of shape (n, 8, 8, 1) scaled to [0, 1]; labels int32.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images.astype(np.float32) / 16.0)[..., None]
    labels = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, stratify=labels, **DIGITS_SPLIT
    )
    return x_train, y_train, x_test, y_test


def digits_stats(x_train) -> Stats:
    """Per-channel ``(mean, std)`` of the fixed training split (one gray channel)."""
    return (float(x_train.mean()),), (float(x_train.std()),)


def load_digits(data_dir: str | None = None, download: bool = False) -> Source:
    """The ``"digits"`` source: the fixed split as ``tf.data`` (needs no files or network).

    ``data_dir`` and ``download`` are ignored. The arrays are already in ``[0, 1]``.
    """
    import tensorflow as tf

    x_train, y_train, x_test, y_test = load_digits_arrays()
    return Source(
        train=tf.data.Dataset.from_tensor_slices((x_train, y_train)),
        test=tf.data.Dataset.from_tensor_slices((x_test, y_test)),
        native_shape=(8, 8, 1),
        num_classes=10,
        scale=1.0,
        stats=digits_stats(x_train),
    )


#: Resized to 16x16 by default; never flipped (a mirrored digit is another glyph or none).
DATASETS = {"digits": Dataset(load=load_digits, image_size=16, flip=False)}
