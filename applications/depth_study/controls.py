"""The two controls of Layer Langevin, built on the library's public classes.

* Isotropic noise of matched scale (:func:`isotropic`): the Layer Langevin optimizer whose
  preconditioner hook (`_langevin_preconditioner`, the documented extension point of
  `keras_langevin`'s Langevin optimizers) returns, for each noisy variable, the square of the
  mean of sqrt(P_t) over the variable instead of P_t itself. Same layers, same sigma schedule,
  same random numbers xi; every coordinate of a variable gets the noise standard deviation
  that Layer Langevin gives that variable's coordinates on average, so only the shape of the
  noise changes, not its typical size. (Matching the mean of P_t, the total variance, would
  be dominated by the coordinates whose gradient is zero, where P_t is about 1/epsilon.)
* Norm matching (:class:`NormRecorder`, :class:`NormRescaler`): Layer Langevin's runs
  record, after every epoch, the L2 norm of each variable it adds noise to; the noiseless
  control multiplies the same variables, at the end of the same epoch's training steps (before
  its evaluation), by the factor that gives them those norms.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from applications.depth_study.plan import study_kind


def isotropic(optimizer_class):
    """The subclass of a Langevin optimizer class with the isotropic, matched-scale noise."""

    class Isotropic(optimizer_class):
        def _langevin_preconditioner(self, variable, index, pre_update):
            preconditioner = super()._langevin_preconditioner(variable, index, pre_update)
            if preconditioner is None:  # P = 1 (SGD): already isotropic
                return None
            return ops.square(ops.mean(ops.sqrt(preconditioner)))

    Isotropic.__name__ = f"Isotropic{optimizer_class.__name__}"
    return Isotropic


def build_optimizer(name, settings, steps_per_epoch, seed):
    """The Keras optimizer of study name `name`, from the resolved `settings` of its Keras
    twin (`plan.keras_name`)."""
    optimizer = settings.build(steps_per_epoch, seed=seed)
    if study_kind(name)[1] != "iso":
        return optimizer
    config = optimizer.get_config()
    return isotropic(type(optimizer)).from_config(config)


def noisy_paths(optimizer):
    """The paths of the variables `optimizer` adds noise to (after `build`)."""
    return [variable.path for variable in getattr(optimizer, "langevin_variables", [])]


def _norms(model, paths):
    by_path = {variable.path: variable for variable in model.trainable_variables}
    return {path: float(np.linalg.norm(ops.convert_to_numpy(by_path[path]))) for path in paths}


class NormRecorder(keras.callbacks.Callback):
    """Records, after every epoch, the norms of the variables the optimizer adds noise to:
    `norms[path]` is the list of per-epoch norms."""

    def on_train_begin(self, logs=None):
        self.paths = noisy_paths(self.model.optimizer)
        self.norms = {path: [] for path in self.paths}

    def on_epoch_end(self, epoch, logs=None):
        for path, norm in _norms(self.model, self.paths).items():
            self.norms[path].append(norm)


class NormRescaler(keras.callbacks.Callback):
    """At the end of epoch k's last training step (before that epoch's evaluation), rescales
    each variable of `norms` (path -> per-epoch norms) to norm `norms[path][k]`, and records
    the factors applied (`factors[path]`)."""

    def __init__(self, norms):
        super().__init__()
        self.targets = norms
        self.factors = {path: [] for path in norms}
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 != self.params.get("steps"):
            return
        by_path = {variable.path: variable for variable in self.model.trainable_variables}
        for path, targets in self.targets.items():
            variable = by_path[path]
            value = ops.convert_to_numpy(variable)
            norm = float(np.linalg.norm(value))
            factor = targets[self._epoch] / norm if norm > 0 else 1.0
            variable.assign(value * factor)
            self.factors[path].append(factor)
