"""Model weights in Keras's `.weights.h5` format, without the optimizer's state.

`Model.save_weights` also writes the optimizer's variables (what `BackupAndRestore` needs); a
posterior sample is the model's weights only: every layer variable, BatchNormalization's moving
statistics included. Keras's saving library can skip objects (reached through
`keras_langevin._compat`); where that option is missing (older Keras), the public
`save_weights`/`load_weights` are used and the optimizer is written too.
"""

import os
import warnings

from keras_langevin import _compat


def save_model_weights(model, path):
    save, _ = _compat.weights_only_saving()
    optimizer = getattr(model, "optimizer", None)
    if save is not None and optimizer is not None:
        save(model, os.fspath(path), objects_to_skip=[optimizer])
    else:
        model.save_weights(os.fspath(path))


def load_model_weights(model, path):
    _, load = _compat.weights_only_saving()
    optimizer = getattr(model, "optimizer", None)
    if load is not None and optimizer is not None:
        load(model, os.fspath(path), objects_to_skip=[optimizer])
        return
    with warnings.catch_warnings():
        # A file without optimizer variables loaded into a model with a built optimizer.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(os.fspath(path))
