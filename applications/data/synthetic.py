"""Random data for benchmarks: :func:`synthetic_arrays` (numpy) and
:func:`synthetic_dataset` (``tf.data``); no I/O, no augmentation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf


def synthetic_arrays(
    num_samples: int,
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Random ``float32`` images uniform in [0, 1) and ``int32`` labels (seeded)."""
    rng = np.random.default_rng(seed)
    images = rng.random((num_samples, *input_shape), dtype=np.float32)
    labels = rng.integers(0, num_classes, size=num_samples).astype(np.int32)
    return images, labels


def synthetic_dataset(
    num_samples: int,
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    batch_size: int = 128,
    seed: int = 0,
    one_hot: bool = False,
) -> tf.data.Dataset:
    """CIFAR-shaped random data for benchmarks (no I/O, no augmentation).

    Returns a cached, batched, prefetched dataset of ``(images, labels)`` with
    ``num_samples`` examples (labels ``int32``, or one-hot ``float32``).
    Identical for identical arguments.
    """
    images, labels = synthetic_arrays(num_samples, input_shape, num_classes, seed)
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).cache().batch(batch_size)
    if one_hot:
        ds = ds.map(lambda x, y: (x, tf.one_hot(y, num_classes, dtype=tf.float32)))
    return ds.prefetch(tf.data.AUTOTUNE)
