"""Callbacks for `model.fit`: the noise level in the logs (the mean over each epoch)."""

from __future__ import annotations

import keras
import numpy as np
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


def _sigma_schedule(optimizer):
    """The optimizer's sigma schedule, or None for a float sigma or a plain Keras optimizer."""
    try:
        optimizer = langevin_optimizer(optimizer)
    except ValueError:
        return None
    schedule = getattr(optimizer, "_sigma", None)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return schedule
    return None


def mean_sigma(schedule, start: int, stop: int) -> float:
    """The mean of a sigma schedule over the updates `start, ..., stop - 1` (the update at
    step `t` uses `schedule(t)`), as a Python float."""
    steps = np.arange(start, stop, dtype="int64")
    values = np.asarray(ops.convert_to_numpy(schedule(ops.convert_to_tensor(steps))))
    if values.shape != steps.shape:  # a schedule that does not map over a vector of steps
        values = np.array([float(ops.convert_to_numpy(schedule(int(t)))) for t in steps])
    return float(np.mean(values.astype("float64")))


class SigmaLogger(keras.callbacks.Callback):
    """Puts the noise level each epoch used into the epoch logs.

    At the end of every epoch, `logs[key]` is set to the mean of sigma over the epoch's
    updates: for a schedule, the mean of its values at the steps the epoch ran (so a cyclical
    sigma whose sampling part lies inside an epoch shows its share of that epoch, not the
    value at the first step of the next cycle); for a float sigma, its value (it changes only
    when set, e.g. by a callback at the start of an epoch); 0 for a plain Keras optimizer.
    `History`, `CSVLogger` and `TensorBoard` then record it next to the loss. Put it before
    those loggers in the `callbacks` list (`History` always runs last):

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
        self._start = None

    def _step(self) -> int:
        return int(ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = self._step()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        schedule = _sigma_schedule(self.model.optimizer)
        stop = self._step()
        if schedule is not None and self._start is not None and stop > self._start:
            logs[self.key] = mean_sigma(schedule, self._start, stop)
        else:
            logs[self.key] = current_sigma(self.model.optimizer)
