"""Batch-level augmentation policies: keras-cv's layers where keras-cv works, else Keras's own.

This is the only module of the project that imports ``keras_cv``. The import happens lazily
(inside :func:`implementation`), so that importing ``applications`` (or ``applications.data``)
does not pay for keras-cv.

Which layers (:func:`implementation`, decided once per process and printed on stderr):

``"keras-cv"``
    keras-cv's ``RandAugment``, ``CutMix``, ``MixUp`` and ``RandomChoice``, the design's
    layers, wherever keras-cv imports and runs them (a probe batch through ``tf.data``).
``"keras"``
    Keras's own ``keras.layers.RandAugment``, ``CutMix`` and ``MixUp`` wherever keras-cv does
    not (keras-cv 0.9.0, its last release, fails to import with keras-nightly 3.16).

Policies (names as accepted by :func:`applications.data.load_dataset`):

``"randaugment"``
    RandAugment with ``value_range=(0, 1)``, applied to images scaled to ``[0, 1]`` (before
    any standardization). keras-cv's colour operations only accept RGB images, so grayscale
    batches are replicated to three channels, augmented, and averaged back to one channel
    (with either implementation; every RandAugment operation maps gray RGB images to gray
    RGB images, so nothing is lost by the round trip).
``"cutmix"`` / ``"mixup"``
    CutMix / MixUp mix pairs of images *and their labels* inside a batch, so they need
    one-hot (float) labels; the returned function takes one-hot labels. When both are
    requested, one of the two is chosen at random for every batch.

Options (``load_dataset(augment_options=...)``) are keras-cv's arguments, the project's
vocabulary. With keras-cv they are passed as they are. With Keras's layers they are mapped
(:func:`keras_arguments`), and an argument that Keras's layer cannot honour is refused with a
``ValueError`` when the augmenter is built:

=========================================  ====================================================
keras-cv (defaults)                        Keras's layers
=========================================  ====================================================
``RandAugment(augmentations_per_image=3)`` ``num_ops=3`` (Keras's own default is 2)
``RandAugment(magnitude=0.5)``             ``factor=0.5``: every operation draws its strength
                                           uniformly in ``[0, factor]`` of its range (keras-cv:
                                           a normal around ``magnitude``, clipped to [0, 1])
``RandAugment(magnitude_stddev=0.15)``     none: refused when given
``RandAugment(rate=10/11)``                Keras applies every drawn operation (``rate=1.0``);
                                           the keras-cv default ``10/11`` (an identity drawn
                                           1 time in 11) is not available: other values refused
``RandAugment(geometric=True)``            always geometric: ``False`` refused
``MixUp(alpha=0.2)``                       ``alpha=0.2``: the same weight, Beta(alpha, alpha)
                                           per image
``CutMix(alpha=1.0)``                      ``factor=(alpha, alpha)``: Keras draws its Beta
                                           parameter uniformly in the ``factor`` range, so a
                                           range of one point gives Beta(alpha, alpha); Keras
                                           bounds it to ``[0, 1]``, a larger ``alpha`` refused
=========================================  ====================================================

The operations differ too: Keras's RandAugment draws from 11 operations (shear, translation,
rotation, brightness, colour degeneration, contrast, sharpness, posterization, solarization,
auto-contrast, equalization), keras-cv's from 10 (no rotation, sharpness or posterization; shear
and translation per axis). Keras's CutMix places the box wholly inside the image and weights
the labels by its area; keras-cv centres it anywhere and clips it at the edges, weighting the
labels by the unclipped area.

All functions returned here operate on whole batches ``(images, labels)`` and are meant to be
used with ``tf.data.Dataset.map`` after ``batch``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tensorflow as tf

#: Policies implemented by the batch layers of this module.
BATCH_POLICIES = ("randaugment", "cutmix", "mixup")
KERAS_CV_POLICIES = BATCH_POLICIES  # the name before Keras's own layers were an option
#: Policies that mix labels (and so need one-hot labels).
MIXING_POLICIES = ("cutmix", "mixup")
#: The two implementations, in order of preference.
IMPLEMENTATIONS = ("keras-cv", "keras")

BatchFn = Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


# --------------------------------------------------------------------------- the choice


@dataclasses.dataclass(frozen=True)
class Choice:
    """The implementation in use (one of :data:`IMPLEMENTATIONS`) and why."""

    name: str
    reason: str


_CHOICE: Choice | None = None


def _keras_cv():
    import keras_cv

    return keras_cv


def _probe(keras_cv) -> None:
    """Runs keras-cv's layers once as the pipeline does (inside ``tf.data``); raises if not."""
    layers = keras_cv.layers
    rand_augment = layers.RandAugment(value_range=(0, 1), seed=0)
    mixer = layers.RandomChoice([layers.CutMix(seed=1), layers.MixUp(seed=2)], batchwise=True)

    def apply(images, labels):
        images = rand_augment(images, training=True)
        out = mixer({"images": images, "labels": labels}, training=True)
        return out["images"], out["labels"]

    images = tf.fill((2, 8, 8, 3), 0.5)
    labels = tf.one_hot([0, 1], 2)
    probe = tf.data.Dataset.from_tensors((images, labels)).map(apply)
    next(iter(probe))


def _choose() -> Choice:
    import keras

    try:
        keras_cv = _keras_cv()
        _probe(keras_cv)
    except Exception as error:  # noqa: BLE001 - whatever fails, keras-cv is unusable here
        reason = (
            f"keras-cv does not work with Keras {keras.__version__} "
            f"({type(error).__name__}: {str(error)[:200]})"
        )
        return Choice("keras", reason)
    version = getattr(keras_cv, "__version__", "?")
    return Choice("keras-cv", f"keras-cv {version} works with Keras {keras.__version__}")


def choice() -> Choice:
    """The implementation of the batch policies, decided at the first call of the process
    (keras-cv where it imports and runs, else Keras's own layers) and printed on stderr."""
    global _CHOICE
    if _CHOICE is None:
        _CHOICE = _choose()
        print(f"Batch augmentation: {_CHOICE.name} layers; {_CHOICE.reason}.", file=sys.stderr)
    return _CHOICE


def implementation() -> str:
    """``"keras-cv"`` or ``"keras"``: see :func:`choice`."""
    return choice().name


def reset_choice() -> None:
    """Forgets the choice, so that the next :func:`choice` decides again (tests)."""
    global _CHOICE
    _CHOICE = None


# --------------------------------------------------------------------------- Keras's layers


def _refuse(policy: str, name: str, value: Any, why: str) -> ValueError:
    return ValueError(
        f"augment_options[{policy!r}][{name!r}]={value!r} cannot be used with Keras's own "
        f"{policy} layer (keras-cv is unusable here): {why}"
    )


def _keras_rand_augment(options: Mapping[str, Any]) -> dict[str, Any]:
    options = dict(options)
    out = {
        "num_ops": options.pop("augmentations_per_image", 3),
        "factor": options.pop("magnitude", 0.5),
    }
    if "magnitude_stddev" in options:
        value = options.pop("magnitude_stddev")
        raise _refuse("randaugment", "magnitude_stddev", value, "Keras draws strengths uniformly")
    if options.get("rate", 1.0) != 1.0:
        raise _refuse("randaugment", "rate", options["rate"], "Keras applies every operation")
    if options.get("geometric", True) is not True:
        raise _refuse("randaugment", "geometric", options["geometric"], "Keras's is geometric")
    options.pop("rate", None)
    options.pop("geometric", None)
    return _no_others("randaugment", options, out)


def _keras_cut_mix(options: Mapping[str, Any]) -> dict[str, Any]:
    options = dict(options)
    alpha = options.pop("alpha", 1.0)
    if not 0 < alpha <= 1:
        raise _refuse("cutmix", "alpha", alpha, "Keras's CutMix takes a Beta parameter in (0, 1]")
    return _no_others("cutmix", options, {"factor": (float(alpha), float(alpha))})


def _keras_mix_up(options: Mapping[str, Any]) -> dict[str, Any]:
    options = dict(options)
    return _no_others("mixup", options, {"alpha": options.pop("alpha", 0.2)})


def _no_others(policy: str, left: Mapping[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    left = {k: v for k, v in left.items() if k not in ("seed", "value_range")}
    if left:
        name, value = next(iter(left.items()))
        raise _refuse(policy, name, value, "no counterpart in Keras's layer")
    return out


_KERAS_MAPPINGS = {
    "randaugment": _keras_rand_augment,
    "cutmix": _keras_cut_mix,
    "mixup": _keras_mix_up,
}


def keras_arguments(policy: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The arguments of Keras's layer for ``policy`` given keras-cv's ``options`` (see the
    module's table; seed and value range apart). Raises ``ValueError`` naming an option that
    Keras's layer cannot honour."""
    return _KERAS_MAPPINGS[policy](options or {})


# --------------------------------------------------------------------------- layers


def rand_augment_layer(seed: int | None = 0, **kwargs: Any):
    """Return a RandAugment layer for images in ``[0, 1]`` (keras-cv's or Keras's).

    ``kwargs`` are keras-cv's (e.g. ``magnitude``, ``augmentations_per_image``, ``rate``),
    mapped for Keras's layer; ``value_range`` is fixed to ``(0, 1)``.
    """
    kwargs.pop("value_range", None)
    if implementation() == "keras-cv":
        return _keras_cv().layers.RandAugment(value_range=(0, 1), seed=seed, **kwargs)
    import keras

    arguments = keras_arguments("randaugment", kwargs)
    return keras.layers.RandAugment(value_range=(0, 1), seed=seed, **arguments)


def _mixing_layers(policies, seed, options):
    names = []
    for name in policies:
        if name not in MIXING_POLICIES:
            raise ValueError(f"Unknown mixing policy {name!r}; expected one of {MIXING_POLICIES}.")
        names.append(name)
    if not names:
        raise ValueError("mixing_layer needs at least one of 'cutmix' or 'mixup'.")
    if implementation() == "keras-cv":
        layers_mod = _keras_cv().layers
        constructors = {"cutmix": layers_mod.CutMix, "mixup": layers_mod.MixUp}
        mapping = {name: dict(options.get(name, {})) for name in names}
    else:
        import keras

        constructors = {"cutmix": keras.layers.CutMix, "mixup": keras.layers.MixUp}
        mapping = {name: keras_arguments(name, options.get(name)) for name in names}
    return [
        constructors[name](seed=None if seed is None else seed + 1 + offset, **mapping[name])
        for offset, name in enumerate(names)
    ]


class _KerasRandomChoice:
    """One of Keras's mixing layers per batch, drawn from a seeded generator (what keras-cv's
    ``RandomChoice(batchwise=True)`` does; Keras has no such layer)."""

    def __init__(self, layers, seed):
        self.layers = layers
        if seed is None:
            self.generator = tf.random.Generator.from_non_deterministic_state()
        else:
            self.generator = tf.random.Generator.from_seed(seed)

    def __call__(self, inputs, training=True):
        index = self.generator.uniform((), 0, len(self.layers), dtype=tf.int32)
        branches = [lambda layer=layer: layer(inputs, training=training) for layer in self.layers]
        return tf.switch_case(index, branches)


def mixing_layer(
    policies: Sequence[str],
    seed: int | None = 0,
    options: Mapping[str, Mapping[str, Any]] | None = None,
):
    """Return one layer that applies CutMix and/or MixUp to ``{"images", "labels"}``.

    ``policies`` is a non-empty subset of :data:`MIXING_POLICIES`. With both, one of them is
    chosen at random for each batch.
    """
    layers = _mixing_layers(policies, seed, options or {})
    if len(layers) == 1:
        return layers[0]
    if implementation() == "keras-cv":
        return _keras_cv().layers.RandomChoice(layers, batchwise=True, seed=seed)
    return _KerasRandomChoice(layers, seed)


def build_batch_augmenter(
    policies: Sequence[str],
    seed: int | None = 0,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> BatchFn | None:
    """Build a ``(images, labels) -> (images, labels)`` batch function.

    Args:
        policies: names from :data:`BATCH_POLICIES`; others are ignored
            (the caller handles e.g. ``"standard"`` itself). RandAugment is
            applied first, then CutMix/MixUp.
        seed: base seed of the layers. Note that keras-cv's and Keras's layers keep
            their random state in a variable, so with parallel ``map`` calls
            the exact sequence of random draws is not guaranteed to be
            reproducible (unlike the per-element standard augmentation).
        options: optional per-policy keyword arguments, keras-cv's names (mapped for
            Keras's layers, see the module's table), e.g.
            ``{"randaugment": {"magnitude": 0.3}, "mixup": {"alpha": 0.2}}``.

    Returns:
        ``None`` if no batch policy is requested. Otherwise a function on
        batches, whose ``implementation`` attribute names the layers used. If a
        mixing policy is requested, it expects (and returns) one-hot float labels.
    """
    options = options or {}
    wanted = [p for p in policies if p in BATCH_POLICIES]
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
            images, labels = tf.cast(out["images"], tf.float32), out["labels"]
        return images, labels

    apply.implementation = implementation()
    return apply
