"""Langevin SGD with the noise in the momentum: stochastic gradient Hamiltonian Monte Carlo."""

from __future__ import annotations

import math
from numbers import Real

import keras
from keras import ops
from keras.optimizers.schedules import LearningRateSchedule

from keras_langevin import _compat
from keras_langevin.base import LangevinMixin, Sigma, fill_docstring
from keras_langevin.selection import LayerSelection


def _validate_momentum(momentum):
    if isinstance(momentum, bool) or not isinstance(momentum, Real):
        raise TypeError(
            f"Argument `momentum` must be a float in (0, 1). Received: momentum={momentum!r}"
        )
    value = float(momentum)
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError(
            "Argument `momentum` must be in (0, 1) for LSGHMC: the friction `1 - momentum` "
            "must be positive, and a momentum of 0 leaves no momentum buffer for the noise "
            f"(use `LSGD` then). Received: momentum={momentum!r}"
        )
    return value


@fill_docstring
@keras.saving.register_keras_serializable(package="keras_langevin")
class LSGHMC(LangevinMixin, keras.optimizers.SGD):
    """Stochastic gradient Hamiltonian Monte Carlo (Chen, Fox and Guestrin, 2014) in the form
    of Keras's SGD with momentum: the noise enters the momentum buffer.

    Update, for a variable selected for noise (`mu = momentum`, friction `1 - mu`):

        m_{t+1} = mu * m_t - lr_t * g_t + s_t * xi_t,     s_t = (1 - mu) * sigma_t * sqrt(lr_t)
        theta_{t+1} = theta_t + m_{t+1}

    with `xi_t ~ N(0, I)` drawn fresh for every step and variable; with `nesterov=True`
    Keras's Nesterov form `theta_{t+1} = theta_t + mu * m_{t+1} - lr_t * g_t` (the variable then
    receives `(1 + mu) * s_t * xi_t`). Everything else is the Keras SGD update, and with
    `sigma=0` it is exactly `keras.optimizers.SGD`.

    The scale makes the same `sigma` mean the same thing as for `LSGD(momentum=mu)`, where
    the noise `sigma * sqrt(lr) * xi` goes on the weights: noise `s * xi` in the momentum
    reaches the weights through the geometric sum `1 + mu + mu^2 + ...`, a variance
    `s^2 / (1 - mu)^2 = sigma^2 * lr` per step, over the drift `lr / (1 - mu)` times the
    gradient. With a batch-mean loss over `N` examples,
    `sigma=keras_langevin.sampling.posterior_sigma(N, T, momentum=mu)` samples
    `p(theta | D) ** (1 / T)`, as for `LSGD`; it is then Chen et al.'s SGHMC with friction
    `alpha = 1 - mu`, step `eta = lr * T / N` and no gradient-noise correction. The
    derivation is in docs/guide/sghmc.md. With zero gradient and without Nesterov,
    successive weight increments have correlation `mu` (those of `LSGD` are independent).

    The variable's momentum receives the same draw as the variable (read back as the
    difference the noise made to the variable, so up to the variable's rounding).

    The other arguments of `keras.optimizers.SGD` (`weight_decay`, `clipnorm`, `clipvalue`,
    `global_clipnorm`, `use_ema`, `ema_momentum`, `ema_overwrite_frequency`,
    `loss_scale_factor`, `gradient_accumulation_steps`, `name`) are as in Keras, in the same
    positions and with the same defaults. `name=None` gives a unique name (`lsghmc`, `lsghmc_1`,
    ...).

    Args:
        learning_rate: Float or `LearningRateSchedule`, as in `keras.optimizers.SGD`.
            Defaults to `0.01`.
        momentum: Float in (0, 1), as in `keras.optimizers.SGD`; the friction is
            `1 - momentum`. Defaults to `0.9` (Keras's SGD defaults to 0, which has no
            momentum buffer to carry the noise).
        nesterov: Bool, as in `keras.optimizers.SGD`. Defaults to `False`.
        {{langevin_args}}

    References:
        - Chen, Fox and Guestrin, "Stochastic Gradient Hamiltonian Monte Carlo", ICML 2014
          (arXiv 1402.4102).
        - Zhang, Li, Zhang, Chen and Wilson, "Cyclical Stochastic Gradient MCMC for Bayesian
          Deep Learning", ICLR 2020 (arXiv 1902.03932), for the cyclical schedules.
    """

    langevin_slots = ("momentums",)

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule = 0.01,
        momentum: float = 0.9,
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
        momentum = _validate_momentum(momentum)
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

    def _langevin_preconditioner(self, variable, index, pre_update):
        mu = ops.cast(self.momentum, variable.dtype)
        reach = (1 - mu) * (1 + mu) if self.nesterov else 1 - mu
        return ops.square(reach)

    def _langevin_add_noise(self, variable, index, increment):
        # The variable's momentum receives the noise the variable received, read back as the
        # difference it made to the variable (so up to the variable's rounding).
        drift_end = ops.copy(variable)
        self.assign_add(variable, increment)
        added = ops.subtract(ops.copy(variable), drift_end)
        if self.nesterov:
            added = ops.divide(added, ops.cast(1 + self.momentum, variable.dtype))
        self.assign_add(_compat.slot(self, "momentums", index), added)
