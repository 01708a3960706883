"""Langevin SGD."""

import keras

from keras_langevin.base import LangevinMixin, langevin_args_doc


@keras.saving.register_keras_serializable(package="keras_langevin")
class LSGD(LangevinMixin, keras.optimizers.SGD):
    """Langevin stochastic gradient descent (Bras, arXiv 2212.14718).

    Update, for a variable selected for noise:

        theta_{t+1} = theta_t - [Keras SGD update]_t + sigma_t * sqrt(lr_t) * xi_t

    with `xi_t ~ N(0, I)` drawn fresh for every step and variable. The preconditioner is
    `P_t = 1` (also with momentum or Nesterov), so this is the Euler scheme of the overdamped
    Langevin equation `d theta = -grad f(theta) dt + sigma dW`. With `sigma=0` it is exactly
    `keras.optimizers.SGD`.

    Args:
        learning_rate: Float or `LearningRateSchedule`, as in `keras.optimizers.SGD`.
            Defaults to `0.01`.
        momentum: Float >= 0, as in `keras.optimizers.SGD`. Defaults to `0.0`.
        nesterov: Bool, as in `keras.optimizers.SGD`. Defaults to `False`.
        {{langevin_args}}
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.0,
        nesterov=False,
        sigma=0.0,
        langevin_layers=None,
        seed=None,
        noise="gaussian",
        jit_compile=True,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            momentum=momentum,
            nesterov=nesterov,
            sigma=sigma,
            langevin_layers=langevin_layers,
            seed=seed,
            noise=noise,
            jit_compile=jit_compile,
            **kwargs,
        )


LSGD.__doc__ = LSGD.__doc__.replace("{{langevin_args}}", langevin_args_doc)
