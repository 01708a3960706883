"""Langevin SGD."""

from __future__ import annotations

import keras
from keras.optimizers.schedules import LearningRateSchedule

from keras_langevin.base import LangevinMixin, Sigma, fill_docstring
from keras_langevin.selection import LayerSelection


@fill_docstring
@keras.saving.register_keras_serializable(package="keras_langevin")
class LSGD(LangevinMixin, keras.optimizers.SGD):
    """Langevin stochastic gradient descent (Bras, arXiv 2212.14718).

    Update, for a variable selected for noise:

        theta_{t+1} = theta_t - [Keras SGD update]_t + sigma_t * sqrt(lr_t) * xi_t

    with `xi_t ~ N(0, I)` drawn fresh for every step and variable. The preconditioner is
    `P_t = 1` (also with momentum or Nesterov), so this is the Euler scheme of the overdamped
    Langevin equation `d theta = -grad f(theta) dt + sigma dW`. With `sigma=0` it is exactly
    `keras.optimizers.SGD`.

    The other arguments of `keras.optimizers.SGD` (`weight_decay`, `clipnorm`,
    `clipvalue`, `global_clipnorm`, `use_ema`, `ema_momentum`, `ema_overwrite_frequency`,
    `loss_scale_factor`, `gradient_accumulation_steps`, `name`) are as in Keras, in the same
    positions and with the same defaults. `name=None` gives a unique name
    (`lsgd`, `lsgd_1`, ...).

    Args:
        learning_rate: Float or `LearningRateSchedule`, as in `keras.optimizers.SGD`.
            Defaults to `0.01`.
        momentum: Float >= 0, as in `keras.optimizers.SGD`. Defaults to `0.0`.
        nesterov: Bool, as in `keras.optimizers.SGD`. Defaults to `False`.
        {{langevin_args}}
    """

    langevin_slots = ("momentums",)

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
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
            momentum=momentum,
            nesterov=nesterov,
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
