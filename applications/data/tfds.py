"""The TensorFlow Datasets sources: mnist, fashion_mnist, cifar10, cifar100, svhn_cropped.

:func:`load_tfds` loads the "train" and "test" splits with ``tfds.load(...,
as_supervised=True)``. By default nothing is downloaded: the data must already be
prepared in ``data_dir`` (default ``~/tensorflow_datasets``), otherwise
:class:`DatasetNotAvailableError` explains how to prepare it. Also holds the published
per-channel statistics of these datasets (:data:`CHANNEL_STATS`). TensorFlow Datasets is
imported when a dataset is loaded, not with this module.
"""

from __future__ import annotations

import functools

from applications.data._source import Dataset, Source, Stats

#: Per-channel (mean, std) of images scaled to [0, 1]: the usual published training-set
#: statistics.
CHANNEL_STATS: dict[str, Stats] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn_cropped": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}

#: Whether the standard augmentation flips horizontally. Off for digit-like data: a
#: mirrored digit is a different glyph (e.g. 2/5-like shapes, 7) or not a digit at all.
#: fashion_mnist is kept flip-free as well, as specified for this project.
FLIP_DEFAULT = {
    "mnist": False,
    "fashion_mnist": False,
    "cifar10": True,
    "cifar100": True,
    "svhn_cropped": False,
}


class DatasetNotAvailableError(RuntimeError):
    """The requested TFDS dataset is not prepared locally and was not downloaded."""


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


def load_tfds(name: str, data_dir: str | None = None, download: bool = False) -> Source:
    """Load raw ``(uint8 image, label)`` train/test datasets with TFDS.

    Raises:
        DatasetNotAvailableError: the data is not prepared in ``data_dir`` and
            ``download`` is False (or downloading failed).
    """
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
    return Source(train, test, native_shape, num_classes, scale=255.0, stats=CHANNEL_STATS[name])


#: Native size by default.
DATASETS = {
    name: Dataset(load=functools.partial(load_tfds, name), image_size=None, flip=flip)
    for name, flip in FLIP_DEFAULT.items()
}
