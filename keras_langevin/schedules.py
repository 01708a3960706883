"""Noise-level schedules.

`sigma` accepts any `keras.optimizers.schedules.LearningRateSchedule`, Keras's own included
(`PiecewiseConstantDecay([step], [sigma0, 0.0])` switches the noise off after a given step). This
module adds the annealing used in the paper.
"""

from __future__ import annotations

import math
from numbers import Real

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="keras_langevin")
class LogAnnealing(keras.optimizers.schedules.LearningRateSchedule):
    """Logarithmic annealing of the noise level.

    `sigma_t = initial_sigma / sqrt(log(e + decay * t))`, so `sigma_0 = initial_sigma` and the
    noise decreases slowly enough for simulated-annealing-type convergence. The paper's setting
    is `decay = 1 / T` with `T` the number of steps in 20 epochs.

    Args:
        initial_sigma: float >= 0, the noise level at step 0.
        decay: float >= 0, the rate in steps^-1.
        name: optional name of the schedule.
    """

    def __init__(self, initial_sigma: float, decay: float, name: str = "LogAnnealing") -> None:
        super().__init__()
        limit = float(np.finfo("float32").max)
        for arg, value in (("initial_sigma", initial_sigma), ("decay", decay)):
            if isinstance(value, bool) or not isinstance(value, Real):
                raise TypeError(f"Argument `{arg}` must be a float. Received: {arg}={value!r}")
            if not math.isfinite(value) or value < 0 or value > limit:
                raise ValueError(
                    f"Argument `{arg}` must be >= 0 and finite in float32. "
                    f"Received: {arg}={value!r}"
                )
        self.initial_sigma = float(initial_sigma)
        self.decay = float(decay)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        return self.initial_sigma / ops.sqrt(ops.log(math.e + self.decay * step))

    def get_config(self) -> dict:
        return {"initial_sigma": self.initial_sigma, "decay": self.decay, "name": self.name}
