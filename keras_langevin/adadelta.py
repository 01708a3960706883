"""Langevin Adadelta."""

from __future__ import annotations

import keras
from keras import ops
from keras.optimizers.schedules import LearningRateSchedule

from keras_langevin import _compat
from keras_langevin.base import LangevinMixin, Sigma, fill_docstring
from keras_langevin.selection import LayerSelection


@fill_docstring
@keras.saving.register_keras_serializable(package="keras_langevin")
class LAdadelta(LangevinMixin, keras.optimizers.Adadelta):
    """Langevin Adadelta (Bras, arXiv 2212.14718).

    Update, for a variable selected for noise:

        theta_{t+1} = theta_t - [Keras Adadelta update]_t + sigma_t * sqrt(lr_t * P_t) * xi_t
        P_t = sqrt(E[dx^2]_{t-1} + epsilon) / sqrt(E[g^2]_t + epsilon)

    elementwise, with `xi_t ~ N(0, I)` drawn fresh for every step and variable: the ratio of
    the root mean squares of past updates (before this step's) and of gradients (including
    this step's), the factor through which Keras's Adadelta turns `lr * g_t` into its step.
    With `sigma=0` it is exactly `keras.optimizers.Adadelta`.

    The other arguments of `keras.optimizers.Adadelta` (`weight_decay`, `clipnorm`,
    `clipvalue`, `global_clipnorm`, `use_ema`, `ema_momentum`, `ema_overwrite_frequency`,
    `loss_scale_factor`, `gradient_accumulation_steps`, `name`) are as in Keras, in the same
    positions and with the same defaults. `name=None` gives a unique name
    (`ladadelta`, `ladadelta_1`, ...).

    Args:
        learning_rate: Float or `LearningRateSchedule`. Defaults to `0.001` as in Keras (the
            paper used 0.1).
        rho: Float, decay of the moving averages. Defaults to `0.95`.
        epsilon: Float added inside the square roots. Defaults to `1e-7`.
        {{langevin_args}}
    """

    langevin_slots = ("_accumulated_grads", "_accumulated_delta_vars")

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule = 0.001,
        rho: float = 0.95,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        *,
        sigma: Sigma = 0.0,
        langevin_layers: LayerSelection = None,
        seed: int | None = None,
        noise: str = "gaussian",
        jit_compile: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(
            learning_rate=learning_rate,
            rho=rho,
            epsilon=epsilon,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
            sigma=sigma,
            langevin_layers=langevin_layers,
            seed=seed,
            noise=noise,
            jit_compile=jit_compile,
            **kwargs,
        )

    def _langevin_pre_update(self, variable, index):
        # E[dx^2]_{t-1}, which the Keras update overwrites with E[dx^2]_t. A copy, not the
        # variable (on TensorFlow, converting a variable still reads it later).
        return ops.copy(_compat.slot(self, "_accumulated_delta_vars", index))

    def _langevin_preconditioner(self, variable, index, pre_update):
        return ops.divide(
            ops.sqrt(ops.add(pre_update, self.epsilon)),
            ops.sqrt(ops.add(_compat.slot(self, "_accumulated_grads", index), self.epsilon)),
        )
