"""Datasets and ``tf.data`` input pipelines for the image-classification applications.

Supported datasets (:data:`DATASETS`):

``"digits"`` (default)
    scikit-learn's bundled handwritten digits (``sklearn.datasets.load_digits``):
    1,797 real 8x8 grayscale images with values 0..16, 10 classes. Needs no
    network. The train/test split is fixed (stratified, ``random_state=0``,
    20 % test): 1,437 training and 360 test images. Images are resized with
    bilinear interpolation to ``image_size`` (default 16x16).
``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, ``"cifar100"``, ``"svhn_cropped"``
    Loaded with TensorFlow Datasets (``tfds.load(..., as_supervised=True)``),
    "train" and "test" splits, native size unless ``image_size`` is given.
    By default nothing is downloaded: the data must already be prepared in
    ``data_dir`` (default ``~/tensorflow_datasets``), otherwise
    :class:`DatasetNotAvailableError` explains how to prepare it.

Conventions
-----------
* **Images** are ``float32``. They are scaled to ``[0, 1]`` (uint8 / 255,
  digits / 16). With ``standardize=True`` they are additionally standardized
  per channel, ``(x - mean) / std``, with the fixed constants of
  :data:`CHANNEL_STATS` (the usual published training-set statistics; for
  digits they are computed from the fixed training split). Standardization is
  the last step, after every augmentation, so augmentations always see
  ``[0, 1]`` images (RandAugment is configured with ``value_range=(0, 1)``).
* **Labels** are ``int32`` class indices (use a *sparse* categorical
  cross-entropy) unless a mixing augmentation (``"cutmix"``/``"mixup"``) is
  requested or ``one_hot=True``; then both train and test labels are one-hot
  ``float32`` (use categorical cross-entropy). :attr:`LoadedDataset.one_hot`
  tells which.
* **Standard augmentation** (``"standard"``): zero padding by
  ``pad = size // 8`` pixels on each side (4 for 32x32, 3 for 28x28, 2 for
  16x16, 1 for 8x8; computed per spatial dimension), random crop back to the
  original size, and a random horizontal flip. The flip is disabled for the
  digit-like datasets (digits, mnist, fashion_mnist, svhn_cropped), where a
  mirrored image can change or destroy its meaning; see :data:`FLIP_DEFAULT`.
  Zero padding is used (as in the classic CIFAR ResNet recipe); for the digit
  datasets zero is also the background value.
* **Pipeline**: (take) -> cache (raw data, before any augmentation) ->
  shuffle (seeded, reshuffled each epoch) -> per-example preprocessing and
  standard augmentation (``map`` with ``AUTOTUNE``) -> batch -> batch-level
  keras-cv policies -> standardization -> prefetch. The per-example random
  augmentation uses stateless ops with seeds drawn from a seeded
  ``tf.data.Dataset.random``, so the training stream is reproducible given
  ``seed`` (keras-cv layers keep a stateful generator; see
  :mod:`applications.augment`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from applications.digits import load_digits_arrays

#: Supported dataset names; ``"digits"`` is the default and needs no download.
DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn_cropped")

#: Names accepted in ``augment`` (besides ``"none"``).
AUGMENTATIONS = ("standard", "randaugment", "cutmix", "mixup")

#: Image size used when ``image_size`` is None (``None`` means the native size).
DEFAULT_IMAGE_SIZE: dict[str, int | None] = {
    "digits": 16,
    "mnist": None,
    "fashion_mnist": None,
    "cifar10": None,
    "cifar100": None,
    "svhn_cropped": None,
}

#: Whether the standard augmentation flips horizontally. Off for digit-like
#: data: a mirrored digit is a different glyph (e.g. 2/5-like shapes, 7) or not a
#: digit at all. fashion_mnist is kept flip-free as well, as specified for this
#: project (pass ``flip=True`` to override).
FLIP_DEFAULT: dict[str, bool] = {
    "digits": False,
    "mnist": False,
    "fashion_mnist": False,
    "cifar10": True,
    "cifar100": True,
    "svhn_cropped": False,
}

#: Per-channel (mean, std) of images scaled to [0, 1], used by ``standardize=True``.
#: "digits" is filled in lazily from its fixed training split.
CHANNEL_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn_cropped": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}



class DatasetNotAvailableError(RuntimeError):
    """The requested TFDS dataset is not prepared locally and was not downloaded."""


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


# --------------------------------------------------------------------------- helpers


def _parse_augment(augment: str | Sequence[str] | None) -> tuple[str, ...]:
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


def _image_hw(image_size: int | Sequence[int] | None, native: tuple[int, int]) -> tuple[int, int]:
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


def _adapt_stats(
    stats: tuple[tuple[float, ...], tuple[float, ...]], channels: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean, std = stats
    if len(mean) == channels:
        return tuple(mean), tuple(std)
    if len(mean) == 1:  # grayscale replicated to RGB
        return tuple(mean) * channels, tuple(std) * channels
    # RGB converted to gray: approximate with the channel average
    return (float(np.mean(mean)),) * channels, (float(np.mean(std)),) * channels


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


# --------------------------------------------------------------------------- sources


def _digits_stats() -> tuple[tuple[float, ...], tuple[float, ...]]:
    if "digits" not in CHANNEL_STATS:
        x_train = load_digits_arrays()[0]
        CHANNEL_STATS["digits"] = ((float(x_train.mean()),), (float(x_train.std()),))
    return CHANNEL_STATS["digits"]


def _not_available_message(name: str, data_dir: str | None, cause: BaseException | None) -> str:
    where = data_dir or "~/tensorflow_datasets (the TFDS default)"
    build_cmd = f"`tfds build {name}`"
    api_cmd = f"`tfds.builder('{name}').download_and_prepare()`"
    lines = [
        f"Dataset {name!r} is not available in {where}: it has not been downloaded and "
        + "prepared there, and downloading was not possible/allowed.",
        "To fix this, either:",
        f"  * prepare it once on a machine with network access: {build_cmd} or, in Python, "
        + f"{api_cmd} (add `--data_dir DIR` / `data_dir=DIR` to choose the location), or",
        "  * pass --data-dir (data_dir=...) pointing at a directory that already holds the "
        + f"prepared TFDS dataset ({name}/<version>/...), or",
        "  * call load_dataset(..., download=True) where the network is reachable, or",
        "  * use the embedded 'digits' dataset, which needs no download.",
    ]
    if cause is not None:
        reason = str(cause).strip().splitlines()
        lines.append(f"(underlying error: {type(cause).__name__}: {reason[0] if reason else ''})")
    return "\n".join(lines)


def _load_tfds(
    name: str, data_dir: str | None, download: bool
) -> tuple[tf.data.Dataset, tf.data.Dataset, tuple[int, int, int], int]:
    """Load raw ``(uint8 image, label)`` train/test datasets with TFDS."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
        features = builder.info.features
        native_shape = tuple(int(d) for d in features["image"].shape)
        num_classes = int(features["label"].num_classes)
    except Exception as err:
        raise DatasetNotAvailableError(_not_available_message(name, data_dir, err)) from err
    try:
        # download=False: fails immediately (no network access) if not prepared.
        train, test = tfds.load(
            name,
            split=["train", "test"],
            as_supervised=True,
            data_dir=data_dir,
            download=download,
        )
    except Exception as err:
        raise DatasetNotAvailableError(_not_available_message(name, data_dir, err)) from err
    return train, test, native_shape, num_classes


def _size(ds: tf.data.Dataset) -> int:
    n = int(ds.cardinality())
    if n < 0:  # unknown: count (only for small/odd sources)
        n = int(ds.reduce(np.int64(0), lambda count, _: count + 1))
    return n


# --------------------------------------------------------------------------- public API


def load_dataset(
    name: str = "digits",
    batch_size: int = 128,
    image_size: int | Sequence[int] | None = None,
    augment: str | Sequence[str] | None = "standard",
    data_dir: str | None = None,
    seed: int = 0,
    shuffle_buffer: int | None = None,
    cache: bool | str = True,
    train_take: int | None = None,
    test_take: int | None = None,
    channels: int | None = None,
    standardize: bool = False,
    one_hot: bool | None = None,
    flip: bool | None = None,
    download: bool = False,
    augment_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> LoadedDataset:
    """Load a dataset as batched ``tf.data`` pipelines.

    Args:
        name: one of :data:`DATASETS`.
        batch_size: batch size of train and test (last batch may be smaller).
        image_size: int or ``(height, width)``; None = :data:`DEFAULT_IMAGE_SIZE`
            (16 for digits, native otherwise). Bilinear resizing.
        augment: ``"none"``/None, one of ``"standard"``, ``"randaugment"``,
            ``"cutmix"``, ``"mixup"``, or several as a list or joined with
            ``"+"`` (e.g. ``"standard+randaugment+cutmix"``). Each name is one
            stage (``"randaugment"`` alone does *not* include crop/flip).
            Stages run in the order standard -> randaugment -> cutmix/mixup;
            with both cutmix and mixup one is picked at random per batch.
        data_dir: TFDS data directory (ignored for digits).
        seed: seed for shuffling and augmentation.
        shuffle_buffer: shuffle buffer size; None = the whole training set.
        cache: True caches in memory, a string caches to that file prefix,
            False disables. Caching happens before any augmentation.
        train_take / test_take: use only the first N examples of each split.
        channels: 1 or 3 to force grayscale/RGB (gray is replicated to RGB,
            RGB is converted with ``tf.image.rgb_to_grayscale``); None = native.
        standardize: per-channel standardization with :data:`CHANNEL_STATS`
            (otherwise images are in ``[0, 1]``).
        one_hot: force one-hot labels; None = one-hot only if a mixing
            augmentation is used (required by CutMix/MixUp).
        flip: override :data:`FLIP_DEFAULT` for the standard augmentation.
        download: let TFDS download and prepare a missing dataset (needs
            network). Default False: fail fast with
            :class:`DatasetNotAvailableError` if the data is not prepared.
        augment_options: keyword arguments for the keras-cv layers, keyed by
            policy, e.g. ``{"randaugment": {"magnitude": 0.3}}``.

    Returns:
        :class:`LoadedDataset`.

    Raises:
        ValueError: unknown dataset or augmentation name, bad arguments.
        DatasetNotAvailableError: TFDS data missing and not downloadable.
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {DATASETS}.")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if channels not in (None, 1, 3):
        raise ValueError("channels must be None, 1 or 3")
    stages = _parse_augment(augment)
    mixing = any(s in ("cutmix", "mixup") for s in stages)
    if one_hot is False and mixing:
        raise ValueError("CutMix/MixUp mix labels and need one_hot=True (or None).")
    use_one_hot = mixing if one_hot is None else bool(one_hot)

    # ---- sources: raw train/test datasets + how to convert an example
    if name == "digits":
        x_train, y_train, x_test, y_test = load_digits_arrays()
        native = (8, 8, 1)
        num_classes = 10
        train_raw = tf.data.Dataset.from_tensor_slices((x_train, y_train))
        test_raw = tf.data.Dataset.from_tensor_slices((x_test, y_test))
        scale = 1.0
        stats = _digits_stats() if standardize else None
    else:
        train_raw, test_raw, native, num_classes = _load_tfds(name, data_dir, download)
        scale = 255.0
        stats = CHANNEL_STATS[name] if standardize else None

    default_size = DEFAULT_IMAGE_SIZE[name]
    hw = _image_hw(image_size if image_size is not None else default_size, native[:2])
    out_channels = native[2] if channels is None else channels
    input_shape = (hw[0], hw[1], out_channels)

    if train_take is not None:
        train_raw = train_raw.take(train_take)
    if test_take is not None:
        test_raw = test_raw.take(test_take)
    train_size, test_size = _size(train_raw), _size(test_raw)

    do_flip = FLIP_DEFAULT[name] if flip is None else bool(flip)
    pad = pad_for_size(*hw) if "standard" in stages else (0, 0)

    mean = std = None
    if stats is not None:
        mean, std = _adapt_stats(stats, out_channels)

    def convert(image, label):
        return _convert_image(image, hw, out_channels, scale), tf.cast(label, tf.int32)

    def finish(ds: tf.data.Dataset, batch_fn) -> tf.data.Dataset:
        """batch -> (batch augment) -> one-hot -> standardize -> prefetch."""
        ds = ds.batch(batch_size)
        if use_one_hot:
            ds = ds.map(
                lambda x, y: (x, tf.one_hot(y, num_classes, dtype=tf.float32)),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        if batch_fn is not None:
            ds = ds.map(batch_fn, num_parallel_calls=tf.data.AUTOTUNE)
        if mean is not None:
            mean_t = tf.constant(mean, tf.float32)
            std_t = tf.constant(std, tf.float32)
            ds = ds.map(lambda x, y: ((x - mean_t) / std_t, y), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    def apply_cache(ds: tf.data.Dataset, suffix: str) -> tf.data.Dataset:
        if cache is True:
            return ds.cache()
        if isinstance(cache, str) and cache:
            return ds.cache(f"{cache}_{name}_{suffix}")
        return ds

    # ---- training pipeline
    train = apply_cache(train_raw, "train")
    buffer = train_size if shuffle_buffer is None else shuffle_buffer
    train = train.shuffle(max(1, buffer), seed=seed, reshuffle_each_iteration=True)
    if "standard" in stages:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        train = tf.data.Dataset.zip(train, seeds)

        def convert_augment(example, element_seed):
            image, label = convert(*example)
            return standard_augment(image, element_seed, pad, do_flip), label

        train = train.map(convert_augment, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        train = train.map(convert, num_parallel_calls=tf.data.AUTOTUNE)

    batch_fn = None
    if any(s in ("randaugment", "cutmix", "mixup") for s in stages):
        from applications import augment as augment_lib

        batch_fn = augment_lib.build_batch_augmenter(stages, seed=seed, options=augment_options)
    train = finish(train, batch_fn)

    # ---- test pipeline (deterministic, no augmentation)
    test = apply_cache(test_raw, "test").map(convert, num_parallel_calls=tf.data.AUTOTUNE)
    test = finish(test, None)

    return LoadedDataset(
        name=name,
        train=train,
        test=test,
        input_shape=input_shape,
        num_classes=num_classes,
        train_size=train_size,
        test_size=test_size,
        batch_size=batch_size,
        one_hot=use_one_hot,
        augment=stages,
        flip=do_flip and "standard" in stages,
        pad=pad,
        standardized=mean is not None,
        mean=mean,
        std=std,
    )


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
