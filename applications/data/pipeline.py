"""The ``tf.data`` pipeline that turns a :class:`~applications.data._source.Source` into
batches: conversion, cache, shuffle, standard augmentation, batch, keras-cv policies,
standardization, prefetch.

Also :class:`LoadedDataset` (what :func:`applications.data.load_dataset` returns), the
augmentation names (:data:`AUGMENTATIONS`) and the standard augmentation
(:func:`pad_for_size`, :func:`standard_augment`). The order of the steps: (take) ->
cache (raw data, before any augmentation) -> shuffle (seeded, reshuffled each epoch) ->
per-example preprocessing and standard augmentation (``map`` with ``AUTOTUNE``) -> batch
-> batch-level keras-cv policies -> standardization -> prefetch. The per-example random
augmentation uses stateless ops with seeds drawn from a seeded ``tf.data.Dataset.random``,
so the training stream is reproducible given ``seed``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from applications.data._source import Source, Stats

#: Names accepted in ``augment`` (besides ``"none"``).
AUGMENTATIONS = ("standard", "randaugment", "cutmix", "mixup")
#: The stages that mix labels (and so need one-hot labels).
MIXING = ("cutmix", "mixup")


@dataclasses.dataclass(frozen=True)
class LoadedDataset:
    """Result of :func:`load_dataset`.

    Attributes:
        name: dataset name.
        train: batched, shuffled, augmented, prefetched training dataset of
            ``(images, labels)``; iterate it once per epoch.
        test: batched test dataset (no shuffling, no augmentation).
        input_shape: ``(height, width, channels)`` of one image.
        num_classes: number of classes.
        train_size / test_size: number of examples (after ``*_take``).
        batch_size: batch size of both datasets (the last batch may be smaller).
        one_hot: True if labels are one-hot ``float32`` (categorical
            cross-entropy), False if they are ``int32`` indices (sparse).
        augment: the augmentation stages applied to ``train``.
        flip: whether the standard augmentation flips horizontally.
        pad: ``(pad_h, pad_w)`` of the standard augmentation ((0, 0) if unused).
        standardized: whether images are standardized (else in ``[0, 1]``).
        mean / std: the per-channel constants used when ``standardized``.
    """

    name: str
    train: tf.data.Dataset
    test: tf.data.Dataset
    input_shape: tuple[int, int, int]
    num_classes: int
    train_size: int
    test_size: int
    batch_size: int
    one_hot: bool
    augment: tuple[str, ...]
    flip: bool
    pad: tuple[int, int]
    standardized: bool
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.train_size / self.batch_size)

    @property
    def test_steps(self) -> int:
        return math.ceil(self.test_size / self.batch_size)

    @property
    def loss(self) -> str:
        """Matching Keras loss name for the label format."""
        return "categorical_crossentropy" if self.one_hot else "sparse_categorical_crossentropy"


@dataclasses.dataclass(frozen=True)
class Options:
    """How :func:`build` converts, augments and batches a source (see ``load_dataset``)."""

    name: str
    batch_size: int
    hw: tuple[int, int]
    channels: int
    stages: tuple[str, ...]
    one_hot: bool
    flip: bool
    pad: tuple[int, int]
    seed: int
    shuffle_buffer: int | None
    cache: bool | str
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    augment_options: Mapping[str, Mapping[str, Any]] | None


# --------------------------------------------------------------------------- arguments


def parse_augment(augment: str | Sequence[str] | None) -> tuple[str, ...]:
    """The augmentation stages, in canonical order, from a name, a list or ``"a+b"``."""
    if augment is None:
        return ()
    if isinstance(augment, str):
        items = [a for part in augment.split("+") for a in part.split(",")]
    else:
        items = list(augment)
    stages = []
    for item in items:
        item = item.strip().lower().replace("-", "").replace("_", "")
        if item in ("", "none"):
            continue
        if item not in AUGMENTATIONS:
            raise ValueError(
                f"Unknown augmentation {item!r}; expected 'none' or any of {AUGMENTATIONS} "
                "(a list, or names joined with '+')."
            )
        if item not in stages:
            stages.append(item)
    # canonical order: per-example crop/flip, then keras-cv policies
    return tuple(a for a in AUGMENTATIONS if a in stages)


def check_arguments(batch_size, channels, augment, one_hot) -> tuple[tuple[str, ...], bool]:
    """Validate the pipeline arguments; return the stages and whether labels are one-hot."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if channels not in (None, 1, 3):
        raise ValueError("channels must be None, 1 or 3")
    stages = parse_augment(augment)
    mixing = any(s in MIXING for s in stages)
    if one_hot is False and mixing:
        raise ValueError("CutMix/MixUp mix labels and need one_hot=True (or None).")
    return stages, mixing if one_hot is None else bool(one_hot)


def image_hw(image_size: int | Sequence[int] | None, native: tuple[int, int]) -> tuple[int, int]:
    """``(height, width)`` from an int, a pair, or None (the native size)."""
    if image_size is None:
        return native
    if isinstance(image_size, (int, np.integer)):
        return int(image_size), int(image_size)
    height, width = image_size
    return int(height), int(width)


def pad_for_size(height: int, width: int | None = None) -> tuple[int, int]:
    """Padding of the standard augmentation: ``size // 8`` per dimension (>= 1)."""
    width = height if width is None else width
    return max(1, height // 8), max(1, width // 8)


def adapt_stats(stats: Stats, channels: int) -> Stats:
    """Per-channel statistics for ``channels`` channels (gray replicated, RGB averaged)."""
    mean, std = stats
    if len(mean) == channels:
        return tuple(mean), tuple(std)
    if len(mean) == 1:  # grayscale replicated to RGB
        return tuple(mean) * channels, tuple(std) * channels
    # RGB converted to gray: approximate with the channel average
    return (float(np.mean(mean)),) * channels, (float(np.mean(std)),) * channels


# --------------------------------------------------------------------------- per example


def _convert_image(image: tf.Tensor, hw: tuple[int, int], channels: int, scale: float) -> tf.Tensor:
    """uint8/float image -> float32 in [0, 1], resized and with ``channels`` channels."""
    image = tf.cast(image, tf.float32) / scale
    if tuple(image.shape[-3:-1]) != hw:
        image = tf.image.resize(image, hw, method="bilinear")
    have = image.shape[-1]
    if have != channels:
        if have == 1:
            image = tf.repeat(image, channels, axis=-1)
        elif channels == 1:
            image = tf.image.rgb_to_grayscale(image)
        else:
            raise ValueError(f"Cannot convert {have} channels to {channels}.")
    return image


def standard_augment(
    image: tf.Tensor, seed: tf.Tensor, pad: tuple[int, int], flip: bool
) -> tf.Tensor:
    """Zero-pad by ``pad``, random crop back, optional random horizontal flip.

    Stateless: the result depends only on ``image`` and ``seed`` (shape [2]).
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = tf.shape(image)
    padded = tf.pad(image, [[pad[0], pad[0]], [pad[1], pad[1]], [0, 0]])
    image_out = tf.image.stateless_random_crop(padded, size=shape, seed=crop_seed)
    if flip:
        image_out = tf.image.stateless_random_flip_left_right(image_out, seed=flip_seed)
    return image_out


def size(ds: tf.data.Dataset) -> int:
    """Number of examples of ``ds``, counted when its cardinality is unknown."""
    n = int(ds.cardinality())
    if n < 0:  # unknown: count (only for small/odd sources)
        n = int(ds.reduce(np.int64(0), lambda count, _: count + 1))
    return n


# --------------------------------------------------------------------------- datasets


def _apply_cache(ds: tf.data.Dataset, options: Options, suffix: str) -> tf.data.Dataset:
    if options.cache is True:
        return ds.cache()
    if isinstance(options.cache, str) and options.cache:
        return ds.cache(f"{options.cache}_{options.name}_{suffix}")
    return ds


def _finish(ds: tf.data.Dataset, options: Options, num_classes: int, batch_fn) -> tf.data.Dataset:
    """batch -> (batch augment) -> one-hot -> standardize -> prefetch."""
    ds = ds.batch(options.batch_size)
    if options.one_hot:
        ds = ds.map(
            lambda x, y: (x, tf.one_hot(y, num_classes, dtype=tf.float32)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    if batch_fn is not None:
        ds = ds.map(batch_fn, num_parallel_calls=tf.data.AUTOTUNE)
    if options.mean is not None:
        mean_t = tf.constant(options.mean, tf.float32)
        std_t = tf.constant(options.std, tf.float32)
        ds = ds.map(lambda x, y: ((x - mean_t) / std_t, y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _batch_augmenter(options: Options):
    """The keras-cv batch function of the requested policies, or None."""
    if not any(s in ("randaugment", *MIXING) for s in options.stages):
        return None
    from applications.data import augment as augment_lib

    return augment_lib.build_batch_augmenter(
        options.stages, seed=options.seed, options=options.augment_options
    )


def _train(raw: tf.data.Dataset, train_size: int, options: Options, convert) -> tf.data.Dataset:
    """cache -> shuffle -> convert (and standard augmentation), before batching."""
    train = _apply_cache(raw, options, "train")
    buffer = train_size if options.shuffle_buffer is None else options.shuffle_buffer
    train = train.shuffle(max(1, buffer), seed=options.seed, reshuffle_each_iteration=True)
    if "standard" not in options.stages:
        return train.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
    seeds = tf.data.Dataset.random(seed=options.seed, rerandomize_each_iteration=True).batch(2)

    def convert_augment(example, element_seed):
        image, label = convert(*example)
        return standard_augment(image, element_seed, options.pad, options.flip), label

    train = tf.data.Dataset.zip(train, seeds)
    return train.map(convert_augment, num_parallel_calls=tf.data.AUTOTUNE)


def build(source: Source, options: Options, train_take=None, test_take=None) -> LoadedDataset:
    """The training and test pipelines of ``source``, as a :class:`LoadedDataset`."""
    train_raw, test_raw = source.train, source.test
    if train_take is not None:
        train_raw = train_raw.take(train_take)
    if test_take is not None:
        test_raw = test_raw.take(test_take)
    train_size, test_size = size(train_raw), size(test_raw)

    def convert(image, label):
        image = _convert_image(image, options.hw, options.channels, source.scale)
        return image, tf.cast(label, tf.int32)

    train = _train(train_raw, train_size, options, convert)
    train = _finish(train, options, source.num_classes, _batch_augmenter(options))
    # test pipeline: deterministic, no augmentation
    test = _apply_cache(test_raw, options, "test").map(convert, num_parallel_calls=tf.data.AUTOTUNE)
    test = _finish(test, options, source.num_classes, None)
    return LoadedDataset(
        name=options.name,
        train=train,
        test=test,
        input_shape=(*options.hw, options.channels),
        num_classes=source.num_classes,
        train_size=train_size,
        test_size=test_size,
        batch_size=options.batch_size,
        one_hot=options.one_hot,
        augment=options.stages,
        flip=options.flip and "standard" in options.stages,
        pad=options.pad,
        standardized=options.mean is not None,
        mean=options.mean,
        std=options.std,
    )
