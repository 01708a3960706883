"""Batch-level augmentation policies backed by keras-cv.

This is the only module of the project that imports ``keras_cv``. The import
happens lazily inside :func:`build_batch_augmenter` so that importing
``applications`` (or ``applications.data``) does not pay for keras-cv.

Policies (names as accepted by :func:`applications.data.load_dataset`):

``"randaugment"``
    ``keras_cv.layers.RandAugment`` with ``value_range=(0, 1)``. It is applied
    to images scaled to ``[0, 1]`` (i.e. *before* any standardization). Several
    of its colour operations only accept RGB images, so grayscale batches are
    replicated to three channels, augmented, and averaged back to one channel
    (every RandAugment operation maps gray RGB images to gray RGB images, so
    nothing is lost by the round trip).
``"cutmix"`` / ``"mixup"``
    ``keras_cv.layers.CutMix`` / ``keras_cv.layers.MixUp``. They mix pairs of
    images *and their labels* inside a batch, so they need one-hot (float)
    labels; the returned function takes one-hot labels. When both are
    requested, one of the two is chosen at random for every batch
    (``keras_cv.layers.RandomChoice`` with ``batchwise=True``).

All functions returned here operate on whole batches ``(images, labels)`` and
are meant to be used with ``tf.data.Dataset.map`` after ``batch``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tensorflow as tf

#: Policies implemented by keras-cv layers in this module.
KERAS_CV_POLICIES = ("randaugment", "cutmix", "mixup")
#: Policies that mix labels (and so need one-hot labels).
MIXING_POLICIES = ("cutmix", "mixup")

BatchFn = Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


def _keras_cv():
    import keras_cv

    return keras_cv


def rand_augment_layer(seed: int | None = 0, **kwargs: Any):
    """Return a ``keras_cv.layers.RandAugment`` for images in ``[0, 1]``.

    ``kwargs`` are forwarded (e.g. ``magnitude``, ``augmentations_per_image``,
    ``rate``); ``value_range`` is fixed to ``(0, 1)``.
    """
    kwargs.pop("value_range", None)
    return _keras_cv().layers.RandAugment(value_range=(0, 1), seed=seed, **kwargs)


def mixing_layer(
    policies: Sequence[str],
    seed: int | None = 0,
    options: Mapping[str, Mapping[str, Any]] | None = None,
):
    """Return one keras-cv layer that applies CutMix and/or MixUp.

    ``policies`` is a non-empty subset of :data:`MIXING_POLICIES`. With both,
    a ``RandomChoice`` picks one of them for each batch.
    """
    options = options or {}
    layers_mod = _keras_cv().layers
    constructors = {"cutmix": layers_mod.CutMix, "mixup": layers_mod.MixUp}
    layers = []
    for offset, name in enumerate(policies):
        if name not in constructors:
            raise ValueError(f"Unknown mixing policy {name!r}; expected one of {MIXING_POLICIES}.")
        layer_seed = None if seed is None else seed + 1 + offset
        layers.append(constructors[name](seed=layer_seed, **dict(options.get(name, {}))))
    if not layers:
        raise ValueError("mixing_layer needs at least one of 'cutmix' or 'mixup'.")
    if len(layers) == 1:
        return layers[0]
    return layers_mod.RandomChoice(layers, batchwise=True, seed=seed)


def build_batch_augmenter(
    policies: Sequence[str],
    seed: int | None = 0,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> BatchFn | None:
    """Build a ``(images, labels) -> (images, labels)`` batch function.

    Args:
        policies: names from :data:`KERAS_CV_POLICIES`; others are ignored
            (the caller handles e.g. ``"standard"`` itself). RandAugment is
            applied first, then CutMix/MixUp.
        seed: base seed of the keras-cv layers. Note that keras-cv layers keep
            their random state in a variable, so with parallel ``map`` calls
            the exact sequence of random draws is not guaranteed to be
            reproducible (unlike the per-element standard augmentation).
        options: optional per-policy keyword arguments for the keras-cv
            layer, e.g. ``{"randaugment": {"magnitude": 0.3},
            "mixup": {"alpha": 0.2}}``.

    Returns:
        ``None`` if no keras-cv policy is requested. Otherwise a function on
        batches. If a mixing policy is requested, it expects (and returns)
        one-hot float labels.
    """
    options = options or {}
    wanted = [p for p in policies if p in KERAS_CV_POLICIES]
    if not wanted:
        return None

    rand_augment = None
    if "randaugment" in wanted:
        rand_augment = rand_augment_layer(seed=seed, **dict(options.get("randaugment", {})))
    mixing = [p for p in MIXING_POLICIES if p in wanted]
    mixer = mixing_layer(mixing, seed=seed, options=options) if mixing else None

    def apply(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if rand_augment is not None:
            channels = images.shape[-1]
            if channels == 1:
                rgb = tf.repeat(images, 3, axis=-1)
                rgb = rand_augment(rgb, training=True)
                images = tf.reduce_mean(rgb, axis=-1, keepdims=True)
            else:
                images = rand_augment(images, training=True)
            images = tf.cast(images, tf.float32)
        if mixer is not None:
            out = mixer({"images": images, "labels": tf.cast(labels, tf.float32)}, training=True)
            images, labels = out["images"], out["labels"]
        return images, labels

    return apply
