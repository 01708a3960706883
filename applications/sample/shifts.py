"""The shifted copies of the test split: rotated images and noisy images (fixed seed)."""

import numpy as np

#: The shifted copies of the test split (fixed seed: the same images for every run).
ROTATION_DEGREES = 45.0
NOISE_STD = 0.5
SHIFT_SEED = 20240
SPLITS = ("test", "rotated", "noisy")


def shifted_sets(images):
    """`{"test": images, "rotated": ..., "noisy": ...}`, images `(n, H, W, C)` in [0, 1]."""
    from scipy import ndimage

    rotated = ndimage.rotate(
        images, ROTATION_DEGREES, axes=(1, 2), reshape=False, order=1, mode="constant", cval=0.0
    )
    rng = np.random.default_rng(SHIFT_SEED)
    noisy = images + rng.normal(0.0, NOISE_STD, size=images.shape)
    return {
        "test": images,
        "rotated": np.clip(rotated, 0.0, 1.0).astype(images.dtype),
        "noisy": np.clip(noisy, 0.0, 1.0).astype(images.dtype),
    }
