"""What every dataset source declares and returns; free of TensorFlow.

A source module (`digits.py`, `tfds.py`) declares its datasets in a `DATASETS` dict,
name -> :class:`Dataset`, and may declare published per-channel statistics in
`CHANNEL_STATS`; the registry (`applications.data`) collects them. A dataset's `load`
function returns a :class:`Source`, the raw splits that the pipeline (`pipeline.py`)
turns into batches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

Stats = tuple[tuple[float, ...], tuple[float, ...]]


class Source(NamedTuple):
    """The raw data of a dataset, before any conversion.

    Attributes:
        train / test: ``tf.data.Dataset`` of ``(image, label)`` examples.
        native_shape: ``(height, width, channels)`` of the stored images.
        num_classes: number of classes.
        scale: divisor that maps the stored values to ``[0, 1]``.
        stats: per-channel ``(mean, std)`` of the ``[0, 1]`` training images.
    """

    train: Any
    test: Any
    native_shape: tuple[int, int, int]
    num_classes: int
    scale: float
    stats: Stats


class Dataset(NamedTuple):
    """A registered dataset.

    Attributes:
        load: ``load(data_dir, download) -> Source``.
        image_size: image size when ``image_size`` is None (None: the native size).
        flip: whether the standard augmentation flips horizontally by default.
    """

    load: Callable[[str | None, bool], Source]
    image_size: int | None
    flip: bool
