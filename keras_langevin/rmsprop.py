"""Langevin RMSprop."""

import keras
from keras import ops

from keras_langevin.base import LangevinMixin, langevin_args_doc


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

    Args:
        learning_rate: Float or `LearningRateSchedule`. Defaults to `0.001`.
        rho: Float, decay of the moving averages. Defaults to `0.9`.
        momentum: Float >= 0, as in `keras.optimizers.RMSprop`. Defaults to `0.0`.
        epsilon: Float added inside the square root. Defaults to `1e-7`.
        centered: Bool, normalise by the variance instead of the second moment.
            Defaults to `False`.
        {{langevin_args}}
    """

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-7,
        centered=False,
        sigma=0.0,
        langevin_layers=None,
        seed=None,
        noise="gaussian",
        jit_compile=True,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            rho=rho,
            momentum=momentum,
            epsilon=epsilon,
            centered=centered,
            sigma=sigma,
            langevin_layers=langevin_layers,
            seed=seed,
            noise=noise,
            jit_compile=jit_compile,
            **kwargs,
        )

    def _langevin_preconditioner(self, variable, index, pre_update):
        second_moment = self._velocities[index]
        if self.centered:
            second_moment = ops.subtract(
                second_moment, ops.square(self._average_gradients[index])
            )
        return ops.reciprocal(ops.sqrt(ops.add(second_moment, self.epsilon)))


LRMSprop.__doc__ = LRMSprop.__doc__.replace("{{langevin_args}}", langevin_args_doc)
