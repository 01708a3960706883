"""Datasets and ``tf.data`` input pipelines for the image-classification applications:
the registry of sources and :func:`load_dataset`.

One module per source, and the pipeline apart:

* ``digits.py``: the embedded digits (``load_digits_arrays``, free of TensorFlow);
* ``tfds.py``: the TensorFlow Datasets sources and :class:`DatasetNotAvailableError`;
* ``pipeline.py``: the ``tf.data`` pipeline and :class:`LoadedDataset`;
* ``augment.py``: the keras-cv batch policies (the only module that imports keras-cv);
* ``synthetic.py``: random data for benchmarks;
* ``_source.py``: what a source declares (``Dataset``) and returns (``Source``).

Each source module declares its datasets in ``DATASETS`` (name -> ``Dataset``); adding a
source is one module and one entry in ``_REGISTRANTS``. This package and its source
modules import no TensorFlow: the names that need it (:func:`load_dataset`'s pipeline,
:class:`LoadedDataset`, :func:`standard_augment`, :func:`synthetic_dataset`, ...) load
``pipeline.py`` or ``synthetic.py`` on first use, so that ``applications.data.digits``
serves any Keras backend.

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
  :mod:`applications.data.augment`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from applications.data import digits, tfds
from applications.data._source import Dataset, Source
from applications.data.digits import DIGITS_SPLIT, load_digits_arrays
from applications.data.tfds import DatasetNotAvailableError

if TYPE_CHECKING:
    from applications.data.pipeline import LoadedDataset

#: The modules that register datasets, in the order of :data:`DATASETS`.
_REGISTRANTS = (digits, tfds)


def _collect(attribute):
    collected = {}
    for module in _REGISTRANTS:
        for key, value in getattr(module, attribute, {}).items():
            if key in collected:
                raise ValueError(f"{module.__name__} registers {key!r} a second time")
            collected[key] = value
    return collected


#: Dataset name -> :class:`~applications.data._source.Dataset` (its loader and defaults).
SOURCES: dict[str, Dataset] = _collect("DATASETS")

#: Supported dataset names; ``"digits"`` is the default and needs no download.
DATASETS = tuple(SOURCES)

#: Image size used when ``image_size`` is None (``None`` means the native size).
DEFAULT_IMAGE_SIZE: dict[str, int | None] = {name: d.image_size for name, d in SOURCES.items()}

#: Whether the standard augmentation flips horizontally. Off for digit-like
#: data: a mirrored digit is a different glyph (e.g. 2/5-like shapes, 7) or not a
#: digit at all. fashion_mnist is kept flip-free as well, as specified for this
#: project (pass ``flip=True`` to override).
FLIP_DEFAULT: dict[str, bool] = {name: d.flip for name, d in SOURCES.items()}

#: Per-channel (mean, std) of images scaled to [0, 1], used by ``standardize=True``.
#: "digits" is filled in lazily from its fixed training split.
CHANNEL_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = _collect("CHANNEL_STATS")

#: Names defined in modules that import TensorFlow, loaded on first access.
_LAZY = {
    "AUGMENTATIONS": "pipeline",
    "LoadedDataset": "pipeline",
    "pad_for_size": "pipeline",
    "standard_augment": "pipeline",
    "synthetic_arrays": "synthetic",
    "synthetic_dataset": "synthetic",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"applications.data.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


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
    from applications.data import pipeline

    if name not in SOURCES:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {DATASETS}.")
    stages, use_one_hot = pipeline.check_arguments(batch_size, channels, augment, one_hot)
    source = SOURCES[name].load(data_dir, download)
    options = pipeline.Options(
        name=name,
        batch_size=batch_size,
        stages=stages,
        one_hot=use_one_hot,
        seed=seed,
        shuffle_buffer=shuffle_buffer,
        cache=cache,
        augment_options=augment_options,
        **_image_options(name, source, image_size, channels, standardize, flip, stages),
    )
    return pipeline.build(source, options, train_take=train_take, test_take=test_take)


def _image_options(name, source, image_size, channels, standardize, flip, stages):
    """Size, channels, flip, padding and standardization constants of the images."""
    from applications.data import pipeline

    default_size = DEFAULT_IMAGE_SIZE[name]
    hw = pipeline.image_hw(
        image_size if image_size is not None else default_size, source.native_shape[:2]
    )
    out_channels = source.native_shape[2] if channels is None else channels
    mean = std = None
    if standardize:
        mean, std = pipeline.adapt_stats(CHANNEL_STATS.setdefault(name, source.stats), out_channels)
    return {
        "hw": hw,
        "channels": out_channels,
        "flip": FLIP_DEFAULT[name] if flip is None else bool(flip),
        "pad": pipeline.pad_for_size(*hw) if "standard" in stages else (0, 0),
        "mean": mean,
        "std": std,
    }


__all__ = [
    "AUGMENTATIONS",
    "CHANNEL_STATS",
    "DATASETS",
    "DEFAULT_IMAGE_SIZE",
    "DIGITS_SPLIT",
    "FLIP_DEFAULT",
    "SOURCES",
    "Dataset",
    "DatasetNotAvailableError",
    "LoadedDataset",
    "Source",
    "load_dataset",
    "load_digits_arrays",
    "pad_for_size",
    "standard_augment",
    "synthetic_arrays",
    "synthetic_dataset",
]
