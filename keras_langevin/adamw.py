"""Langevin AdamW."""

from __future__ import annotations

import keras
from keras.optimizers.schedules import LearningRateSchedule

from keras_langevin.adam import LAdam
from keras_langevin.base import LangevinMixin, Sigma, fill_docstring
from keras_langevin.selection import LayerSelection


@fill_docstring
@keras.saving.register_keras_serializable(package="keras_langevin")
class LAdamW(LangevinMixin, keras.optimizers.AdamW):
    """Langevin AdamW: Adam with decoupled weight decay (Loshchilov and Hutter, 2019), plus
    Adam's preconditioned Langevin noise (Bras, arXiv 2212.14718).

    Update, for a variable selected for noise:

        theta_{t+1} = theta_t - [Keras AdamW update]_t + sigma_t * sqrt(lr_t * P_t) * xi_t
        P_t = sqrt(1 - beta_2^t) / ((1 - beta_1^t) * (sqrt(v_t) + epsilon))

    (`v_t` replaced by `max_{s<=t} v_s` with `amsgrad=True`), elementwise, with
    `xi_t ~ N(0, I)` drawn fresh for every step and variable. Keras's AdamW is Adam's update
    after the decoupled decay `theta <- theta - lr * weight_decay * theta`; the decay is not
    preconditioned, so `P_t` is Adam's, the factor through which Adam turns `lr * m_t` into
    its step (see `keras_langevin.LAdam`). With `sigma=0` it is exactly
    `keras.optimizers.AdamW`.

    The decay is applied outside the preconditioner, so under noise it is not the Gaussian
    prior it would be in the loss (see `keras_langevin.sampling.posterior_sigma`).

    The other arguments of `keras.optimizers.AdamW` (`clipnorm`, `clipvalue`, `global_clipnorm`,
    `use_ema`, `ema_momentum`, `ema_overwrite_frequency`, `loss_scale_factor`,
    `gradient_accumulation_steps`, `name`) are as in Keras, in the same positions and with the
    same defaults. `name=None` gives a unique name (`ladamw`, `ladamw_1`, ...).

    Args:
        learning_rate: Float or `LearningRateSchedule`. Defaults to `0.001`.
        weight_decay: Float, the decoupled decay rate (required, as in Keras).
            Defaults to `0.004`.
        beta_1: Float, decay of the first moment. Defaults to `0.9`.
        beta_2: Float, decay of the second moment. Defaults to `0.999`.
        epsilon: Float added to `sqrt(v_t)`. Defaults to `1e-7`.
        amsgrad: Bool, the AMSGrad variant (Reddi et al., 2018). Defaults to `False`.
        {{langevin_args}}

    References:
        - Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019
          (arXiv 1711.05101).
        - Kingma and Ba, "Adam: A Method for Stochastic Optimization", arXiv 1412.6980.
        - Bras, "Langevin algorithms for very deep Neural Networks with application to image
          classification", arXiv 2212.14718.
    """

    langevin_slots = ("_momentums", "_velocities", "_velocity_hats")

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule = 0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
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
            weight_decay=weight_decay,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
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

    # Adam's preconditioner, the same function: AdamW's slots and moments are Adam's.
    _langevin_preconditioner = LAdam._langevin_preconditioner
