"""Langevin Adam."""

from __future__ import annotations

import keras
from keras import ops
from keras.optimizers.schedules import LearningRateSchedule

from keras_langevin import _compat
from keras_langevin.base import LangevinMixin, Sigma, fill_docstring
from keras_langevin.selection import LayerSelection


@fill_docstring
@keras.saving.register_keras_serializable(package="keras_langevin")
class LAdam(LangevinMixin, keras.optimizers.Adam):
    """Langevin Adam (Bras, arXiv 2212.14718).

    Update, for a variable selected for noise:

        theta_{t+1} = theta_t - [Keras Adam update]_t + sigma_t * sqrt(lr_t * P_t) * xi_t
        P_t = sqrt(1 - beta_2^t) / ((1 - beta_1^t) * (sqrt(v_t) + epsilon))

    (`v_t` replaced by `max_{s<=t} v_s` with `amsgrad=True`), elementwise, with
    `xi_t ~ N(0, I)` drawn fresh for every step and variable. `P_t` is the factor through which
    Keras's Adam turns `lr * m_t` into its step, so the noise is preconditioned like the drift.
    With `sigma=0` it is exactly `keras.optimizers.Adam`.

    Mind `epsilon` where gradients are always zero. Where `v_t` stays 0 (embedding rows no
    batch uses, weights from always-blank input pixels, weights into dead units), `P_t` is
    about `1 / epsilon` (1e7 with the default `1e-7`), so those weights random-walk with
    steps of `sigma * sqrt(lr / epsilon)`: at `lr = sigma = 5e-3`, unseen embedding rows move
    about 40 times their initial scale in 8 steps. The formula is the paper's; the remedy is a
    larger `epsilon` (`LAdam(epsilon=1e-3, ...)` bounds `P_t` by about `0.3 / epsilon`), or
    keeping such layers out of the noise (`langevin_layers=["conv*", "dense*"]`, or a
    fraction that stops before them).

    The other arguments of `keras.optimizers.Adam` (`weight_decay`, `clipnorm`,
    `clipvalue`, `global_clipnorm`, `use_ema`, `ema_momentum`, `ema_overwrite_frequency`,
    `loss_scale_factor`, `gradient_accumulation_steps`, `name`) are as in Keras, in the same
    positions and with the same defaults. `name=None` gives a unique name
    (`ladam`, `ladam_1`, ...).

    Args:
        learning_rate: Float or `LearningRateSchedule`. Defaults to `0.001`.
        beta_1: Float, decay of the first moment. Defaults to `0.9`.
        beta_2: Float, decay of the second moment. Defaults to `0.999`.
        epsilon: Float added to `sqrt(v_t)`. Defaults to `1e-7`.
        amsgrad: Bool, the AMSGrad variant. Defaults to `False`.
        {{langevin_args}}
    """

    langevin_slots = ("_momentums", "_velocities", "_velocity_hats")

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
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
            amsgrad=amsgrad,
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
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), local_step)
        beta_2_power = ops.power(ops.cast(self.beta_2, dtype), local_step)
        v = _compat.slot(self, "_velocity_hats" if self.amsgrad else "_velocities", index)
        return ops.divide(
            ops.sqrt(1 - beta_2_power),
            ops.multiply(1 - beta_1_power, ops.add(ops.sqrt(v), self.epsilon)),
        )
