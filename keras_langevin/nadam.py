"""Langevin Nadam."""

from __future__ import annotations

import keras
from keras import ops
from keras.optimizers.schedules import LearningRateSchedule

from keras_langevin import _compat
from keras_langevin.base import LangevinMixin, Sigma, fill_docstring
from keras_langevin.selection import LayerSelection


@fill_docstring
@keras.saving.register_keras_serializable(package="keras_langevin")
class LNadam(LangevinMixin, keras.optimizers.Nadam):
    """Langevin Nadam: Adam with Nesterov momentum (Dozat, 2016), plus preconditioned
    Langevin noise (Bras, arXiv 2212.14718).

    Update, for a variable selected for noise:

        theta_{t+1} = theta_t - [Keras Nadam update]_t + sigma_t * sqrt(lr_t * P_t) * xi_t
        P_t = 1 / (sqrt(v_t / (1 - beta_2^t)) + epsilon)

    elementwise, with `xi_t ~ N(0, I)` drawn fresh for every step and variable. Keras's Nadam
    steps by `lr * m_hat_t / (sqrt(v_hat_t) + epsilon)`, where `v_hat_t = v_t / (1 - beta_2^t)`
    and `m_hat_t = u_{t+1} m_t / (1 - prod_{s<=t+1} u_s) + (1 - u_t) g_t / (1 - prod_{s<=t} u_s)`,
    `u_t = beta_1 (1 - 0.96^t / 2)`. `m_hat_t` is Nadam's bias-corrected Nesterov estimate of
    the gradient (for a constant gradient `g` and the default `beta_1`: `1.06 g` at the first
    step, `0.71 g` at steps 3-5, `0.92 g` at step 20, within 0.2% of `g` from step 50 on), so
    `P_t` is the factor that turns `lr * m_hat_t` into the step, and the noise is
    preconditioned like the drift. For large `t` it is `1 / (sqrt(v_t) + epsilon)`, as
    `LAdam`'s. With `sigma=0` it is exactly `keras.optimizers.Nadam`.

    The other arguments of `keras.optimizers.Nadam` (`weight_decay`, `clipnorm`, `clipvalue`,
    `global_clipnorm`, `use_ema`, `ema_momentum`, `ema_overwrite_frequency`,
    `loss_scale_factor`, `gradient_accumulation_steps`, `name`) are as in Keras, in the same
    positions and with the same defaults. `name=None` gives a unique name (`lnadam`, `lnadam_1`,
    ...).

    Args:
        learning_rate: Float or `LearningRateSchedule`. Defaults to `0.001`.
        beta_1: Float, decay of the first moment. Defaults to `0.9`.
        beta_2: Float, decay of the second moment. Defaults to `0.999`.
        epsilon: Float added to `sqrt(v_hat_t)`. Defaults to `1e-7`.
        {{langevin_args}}

    References:
        - Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop.
        - Bras, "Langevin algorithms for very deep Neural Networks with application to image
          classification", arXiv 2212.14718.
    """

    langevin_slots = ("_momentums", "_velocities")

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
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
            beta_1=beta_1,
            beta_2=beta_2,
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

    def _langevin_preconditioner(self, variable, index, pre_update):
        dtype = variable.dtype
        local_step = ops.cast(self.iterations + 1, dtype)
        beta_2_power = ops.power(ops.cast(self.beta_2, dtype), local_step)
        v_hat = ops.divide(_compat.slot(self, "_velocities", index), 1 - beta_2_power)
        return ops.reciprocal(ops.add(ops.sqrt(v_hat), ops.cast(self.epsilon, dtype)))
