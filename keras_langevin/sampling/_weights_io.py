"""Model weights in Keras's `.weights.h5` format, without the optimizer's state.

`Model.save_weights` also writes the optimizer's variables (what `BackupAndRestore` needs); a
posterior sample is the model's weights only: every layer variable, BatchNormalization's moving
statistics included. Keras's saving library can skip objects; where that option is missing
(older Keras), the public `save_weights`/`load_weights` are used and the optimizer is written
too.
"""

import inspect
import os
import warnings


def _weights_only_functions():
    try:
        from keras.src.saving import saving_lib
    except ImportError:  # pragma: no cover - layout of another Keras version
        return None, None
    save = getattr(saving_lib, "save_weights_only", None)
    load = getattr(saving_lib, "load_weights_only", None)
    for function in (save, load):
        if function is None or "objects_to_skip" not in inspect.signature(function).parameters:
            return None, None
    return save, load


def save_model_weights(model, path):
    save, _ = _weights_only_functions()
    optimizer = getattr(model, "optimizer", None)
    if save is not None and optimizer is not None:
        save(model, os.fspath(path), objects_to_skip=[optimizer])
    else:
        model.save_weights(os.fspath(path))


def load_model_weights(model, path):
    _, load = _weights_only_functions()
    optimizer = getattr(model, "optimizer", None)
    if load is not None and optimizer is not None:
        load(model, os.fspath(path), objects_to_skip=[optimizer])
        return
    with warnings.catch_warnings():
        # A file without optimizer variables loaded into a model with a built optimizer.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(os.fspath(path))
