"""The paper's Layer Langevin names.

The paper presents "Layer Langevin" optimizers (noise only on the layers nearest the input) as
separate classes. Here the layer filter is one mechanism shared by every optimizer, the
`langevin_layers` argument; these names are the same classes with the paper's default of 30%
of the layers, so a reader of the paper finds them.
"""

import keras

from keras_langevin.adadelta import LAdadelta
from keras_langevin.adam import LAdam
from keras_langevin.rmsprop import LRMSprop
from keras_langevin.sgd import LSGD

PAPER_LAYER_FRACTION = 0.3


def _layer_variant(base):
    def __init__(self, *args, langevin_layers=PAPER_LAYER_FRACTION, **kwargs):
        base.__init__(self, *args, langevin_layers=langevin_layers, **kwargs)

    name = f"Layer{base.__name__}"
    cls = type(
        name,
        (base,),
        {
            "__init__": __init__,
            "__module__": __name__,
            "__doc__": f"`{base.__name__}` with `langevin_layers={PAPER_LAYER_FRACTION}` by "
            "default (Layer Langevin: noise on the first 30% of the weighted layers, "
            f"nearest the input).\n\n    See `keras_langevin.{base.__name__}` for the "
            "arguments.",
        },
    )
    return keras.saving.register_keras_serializable(package="keras_langevin")(cls)


LayerLSGD = _layer_variant(LSGD)
LayerLAdam = _layer_variant(LAdam)
LayerLRMSprop = _layer_variant(LRMSprop)
LayerLAdadelta = _layer_variant(LAdadelta)
