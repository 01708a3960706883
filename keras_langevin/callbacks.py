"""Callbacks for `model.fit`: the noise level in the logs."""

from __future__ import annotations

import keras
from keras import ops

from keras_langevin.base import langevin_optimizer


def current_sigma(optimizer: keras.optimizers.Optimizer) -> float:
    """The noise level of `optimizer` at its current step, as a Python float.

    `optimizer` may be a Langevin optimizer, a `LossScaleOptimizer` around one, or any other
    Keras optimizer (whose noise level is 0).
    """
    try:
        optimizer = langevin_optimizer(optimizer)
    except ValueError:
        return 0.0
    return float(ops.convert_to_numpy(optimizer.sigma))


class SigmaLogger(keras.callbacks.Callback):
    """Puts the optimizer's current noise level into the epoch logs.

    At the end of every epoch, `logs[key]` is set to `sigma` at the optimizer's current step
    (the schedule's value when `sigma` is a schedule; 0 for a plain Keras optimizer), so that
    `History`, `CSVLogger` and `TensorBoard` record it next to the loss. Put it before those
    loggers in the `callbacks` list (`History` always runs last):

        model.fit(x, y, callbacks=[kl.callbacks.SigmaLogger(),
                                   keras.callbacks.CSVLogger("log.csv")])

    Args:
        key: the name of the entry in the logs. Defaults to `"sigma"`.
    """

    def __init__(self, key: str = "sigma") -> None:
        super().__init__()
        if not isinstance(key, str) or not key:
            raise ValueError(f"Argument `key` must be a non-empty string. Received: key={key!r}")
        self.key = key

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs[self.key] = current_sigma(self.model.optimizer)
