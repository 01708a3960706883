"""Langevin RMSprop."""

from __future__ import annotations

import keras
from keras import ops
from keras.optimizers.schedules import LearningRateSchedule

from keras_langevin import _compat
from keras_langevin.base import LangevinMixin, Sigma, fill_docstring
from keras_langevin.selection import LayerSelection


@fill_docstring
@keras.saving.register_keras_serializable(package="keras_langevin")
class LRMSprop(LangevinMixin, keras.optimizers.RMSprop):
    """Langevin RMSprop (Bras, arXiv 2212.14718).

    Update, for a variable selected for noise:

        theta_{t+1} = theta_t - [Keras RMSprop update]_t + sigma_t * sqrt(lr_t * P_t) * xi_t
        P_t = 1 / sqrt(v_t + epsilon)                 (Keras puts epsilon inside the root)
        P_t = 1 / sqrt(v_t - g_bar_t^2 + epsilon)     (centered=True)

    elementwise, with `xi_t ~ N(0, I)` drawn fresh for every step and variable; `v_t` is the
    moving average of squared gradients and `g_bar_t` that of gradients. With `sigma=0` it is
    exactly `keras.optimizers.RMSprop`.

    The other arguments of `keras.optimizers.RMSprop` (`weight_decay`, `clipnorm`,
    `clipvalue`, `global_clipnorm`, `use_ema`, `ema_momentum`, `ema_overwrite_frequency`,
    `loss_scale_factor`, `gradient_accumulation_steps`, `name`) are as in Keras, in the same
    positions and with the same defaults. `name=None` gives a unique name
    (`lrmsprop`, `lrmsprop_1`, ...).

    Args:
        learning_rate: Float or `LearningRateSchedule`. Defaults to `0.001`.
        rho: Float, decay of the moving averages. Defaults to `0.9`.
        momentum: Float >= 0, as in `keras.optimizers.RMSprop`. Defaults to `0.0`.
        epsilon: Float added inside the square root. Defaults to `1e-7`.
        centered: Bool, normalise by the variance instead of the second moment.
            Defaults to `False`.
        {{langevin_args}}
    """

    langevin_slots = ("_velocities", "_momentums", "_average_gradients")

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
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
            momentum=momentum,
            epsilon=epsilon,
            centered=centered,
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

    def _langevin_preconditioner(self, variable, index, pre_update):
        second_moment = _compat.slot(self, "_velocities", index)
        if self.centered:
            average = _compat.slot(self, "_average_gradients", index)
            second_moment = ops.subtract(second_moment, ops.square(average))
        return ops.reciprocal(ops.sqrt(ops.add(second_moment, self.epsilon)))
