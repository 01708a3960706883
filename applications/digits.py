"""The embedded dataset: scikit-learn's bundled 8x8 digits with a fixed split.

Kept free of TensorFlow so that any Keras backend (JAX on a GPU machine) can use it.
"""

import numpy as np

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
