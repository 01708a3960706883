"""The noise level that makes a Langevin optimizer sample a (tempered) posterior.

See docs/posterior_sampling.md for the derivation. In short: a Keras loss that is the batch mean
of per-example negative log-likelihoods plus regularisers, over `N` training examples, is
`U(theta) / N` with `U = -log p(D | theta) - log p(theta)` the negative log posterior (the
regularisers are the prior, see below). The Langevin update

    theta <- theta - lr * P * grad(loss) + sigma * sqrt(lr * P) * xi

is the Euler step of the Langevin diffusion of `exp(-U / T)` with step `epsilon = lr / N` when
`sigma = sqrt(2 * T / N)`.
"""

import math

from keras_langevin.sampling import _checks


def posterior_sigma(num_examples, temperature=1.0, *, momentum=0.0):
    """The `sigma` with which a Langevin optimizer samples `p(theta | D) ** (1 / temperature)`.

    `sigma = sqrt(2 * temperature / (num_examples * (1 - momentum)))`.

    Valid when the model's loss is the batch mean of per-example negative log-likelihoods over
    `num_examples` training examples, plus regularisers that are the negative log prior divided
    by `num_examples` (an `L2(lam)` regulariser is a Gaussian prior of variance
    `1 / (2 * num_examples * lam)` on each weight), in the limit of small learning rates:

    - `LSGD` without momentum: this is SGLD (Welling and Teh, 2011).
    - `LRMSprop`: pSGLD (Li et al., 2016), without its correction term `Gamma`, as pSGLD's
      authors drop it too.
    - `LSGD` with momentum `momentum` (Nesterov or not): pass the same `momentum` here. The
      noise enters the weights, the momentum buffer carries the gradient only, and the drift is
      then `lr / (1 - momentum)` times the gradient; the step size must satisfy
      `lr * curvature << (1 - momentum) ** 2` for the bias to be small.
    - `LAdam`: a heuristic (its preconditioner follows a momentum average of gradients, not
      the gradient); no guarantee. `LAdadelta`: no sampler analogue (its preconditioner depends
      on past updates, noise included).

    The optimizer's own `weight_decay` is not a prior for `LAdam` or `LRMSprop` (it is not
    preconditioned, so the stationary law is not `exp(-U / T)`); put the prior in the loss as a
    regulariser instead.

    Args:
        num_examples: int >= 1, the number `N` of training examples the loss averages over.
        temperature: float > 0. `1` samples the posterior; `T < 1` a "cold" posterior.
        momentum: float in [0, 1), the `momentum` of `LSGD`. Defaults to `0.0`.

    Returns:
        A Python float, to pass as `sigma=` (or to `CyclicalSigma`).
    """
    num_examples = _checks.positive_int("num_examples", num_examples)
    temperature = _checks.real("temperature", temperature, low=0.0, low_open=True)
    momentum = _checks.real("momentum", momentum, low=0.0, high=1.0, high_open=True)
    return math.sqrt(2.0 * temperature / (num_examples * (1.0 - momentum)))
