"""The paper's Layer Langevin optimizers.

The paper presents "Layer Langevin" optimizers (noise only on the layers nearest the input) as
separate classes. Here the layer filter is one mechanism shared by every optimizer, the
`langevin_layers` argument; the classes below are the Langevin optimizers with the paper's
default of 30% of the layers, under the paper's names.
"""

from __future__ import annotations

import inspect

import keras

from keras_langevin.adadelta import LAdadelta
from keras_langevin.adam import LAdam
from keras_langevin.adamw import LAdamW
from keras_langevin.nadam import LNadam
from keras_langevin.rmsprop import LRMSprop
from keras_langevin.selection import LayerSelection
from keras_langevin.sgd import LSGD

PAPER_LAYER_FRACTION = 0.3

_DOC = """Layer Langevin {base} (Bras, arXiv 2212.14718): `keras_langevin.{base}` with noise on
    the first 30% of the weighted layers, nearest the input.

    The same class as `{base}`, with `langevin_layers=0.3` by default: the variables of the
    first `ceil(0.3 * L)` of the `L` layers that own trainable variables, in forward order.
    Every argument, its position and its default are those of `{base}` (the Keras arguments
    positional, the Langevin ones keyword-only), except `sigma`, which is required: a Layer
    Langevin optimizer constructed with `sigma=0` would add no noise, ever (it would be the
    Keras optimizer), so it is refused. See `keras_langevin.{base}`.
    """


def _with_layer_default(cls):
    """Gives `cls.__init__` the signature of its base with the paper's layer fraction."""
    signature = inspect.signature(cls.__bases__[0].__init__)
    defaults = {"langevin_layers": PAPER_LAYER_FRACTION, "sigma": inspect.Parameter.empty}
    parameters = [
        p.replace(default=defaults[p.name]) if p.name in defaults else p
        for p in signature.parameters.values()
    ]
    cls.langevin_requires_noise = True  # sigma=0 at construction is refused (no noise ever)
    cls.__init__.__signature__ = signature.replace(parameters=parameters)
    if cls.__doc__ is not None:  # None under python -OO
        cls.__doc__ = _DOC.format(base=cls.__bases__[0].__name__)
    return keras.saving.register_keras_serializable(package="keras_langevin")(cls)


@_with_layer_default
class LayerLSGD(LSGD):
    """Layer Langevin SGD (documentation filled in below)."""

    def __init__(
        self, *args, langevin_layers: LayerSelection = PAPER_LAYER_FRACTION, **kwargs
    ) -> None:
        super().__init__(*args, langevin_layers=langevin_layers, **kwargs)


@_with_layer_default
class LayerLAdam(LAdam):
    """Layer Langevin Adam (documentation filled in below)."""

    def __init__(
        self, *args, langevin_layers: LayerSelection = PAPER_LAYER_FRACTION, **kwargs
    ) -> None:
        super().__init__(*args, langevin_layers=langevin_layers, **kwargs)


@_with_layer_default
class LayerLRMSprop(LRMSprop):
    """Layer Langevin RMSprop (documentation filled in below)."""

    def __init__(
        self, *args, langevin_layers: LayerSelection = PAPER_LAYER_FRACTION, **kwargs
    ) -> None:
        super().__init__(*args, langevin_layers=langevin_layers, **kwargs)


@_with_layer_default
class LayerLAdadelta(LAdadelta):
    """Layer Langevin Adadelta (documentation filled in below)."""

    def __init__(
        self, *args, langevin_layers: LayerSelection = PAPER_LAYER_FRACTION, **kwargs
    ) -> None:
        super().__init__(*args, langevin_layers=langevin_layers, **kwargs)


@_with_layer_default
class LayerLAdamW(LAdamW):
    """Layer Langevin AdamW (documentation filled in below)."""

    def __init__(
        self, *args, langevin_layers: LayerSelection = PAPER_LAYER_FRACTION, **kwargs
    ) -> None:
        super().__init__(*args, langevin_layers=langevin_layers, **kwargs)


@_with_layer_default
class LayerLNadam(LNadam):
    """Layer Langevin Nadam (documentation filled in below)."""

    def __init__(
        self, *args, langevin_layers: LayerSelection = PAPER_LAYER_FRACTION, **kwargs
    ) -> None:
        super().__init__(*args, langevin_layers=langevin_layers, **kwargs)
