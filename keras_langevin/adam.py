"""Langevin Adam."""

import keras
from keras import ops

from keras_langevin.base import LangevinMixin, langevin_args_doc


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

    Args:
        learning_rate: Float or `LearningRateSchedule`. Defaults to `0.001`.
        beta_1: Float, decay of the first moment. Defaults to `0.9`.
        beta_2: Float, decay of the second moment. Defaults to `0.999`.
        epsilon: Float added to `sqrt(v_t)`. Defaults to `1e-7`.
        amsgrad: Bool, the AMSGrad variant. Defaults to `False`.
        {{langevin_args}}
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        sigma=0.0,
        langevin_layers=None,
        seed=None,
        noise="gaussian",
        jit_compile=True,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
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
        v = (self._velocity_hats if self.amsgrad else self._velocities)[index]
        return ops.divide(
            ops.sqrt(1 - beta_2_power),
            ops.multiply(1 - beta_1_power, ops.add(ops.sqrt(v), self.epsilon)),
        )


LAdam.__doc__ = LAdam.__doc__.replace("{{langevin_args}}", langevin_args_doc)
