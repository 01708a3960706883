"""The noise level that makes a Langevin optimizer sample a (tempered) posterior.

See docs/guide/posterior_sampling.md for the derivation. In short: a Keras loss that is the batch mean
of per-example negative log-likelihoods plus regularisers, over `N` training examples, is
`U(theta) / N` with `U = -log p(D | theta) - log p(theta)` the negative log posterior (the
regularisers are the prior, see below). The Langevin update

    theta <- theta - lr * P * grad(loss) + sigma * sqrt(lr * P) * xi

is the Euler step of the Langevin diffusion of `exp(-U / T)` with step `epsilon = lr / N` when
`sigma = sqrt(2 * T / N)`. `gaussian_prior(std, N)` is the `keras.regularizers.L2` whose term in
such a loss is a `N(0, std**2)` prior on each weight it regularises.
"""

import math

import keras

from keras_langevin.sampling import _checks


def posterior_sigma(num_examples, temperature=1.0, *, momentum=0.0):
    """The `sigma` with which a Langevin optimizer samples `p(theta | D) ** (1 / temperature)`.

    `sigma = sqrt(2 * temperature / (num_examples * (1 - momentum)))`.

    Valid when the model's loss is the batch mean of per-example negative log-likelihoods over
    `num_examples` training examples, plus regularisers that are the negative log prior divided
    by `num_examples` (`gaussian_prior(std, num_examples)` is the `L2` regulariser of a
    `N(0, std**2)` prior), in the limit of small learning rates:

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

    Put the prior in the loss, as `gaussian_prior(std, num_examples)` on the layers' weights:
    it goes through the optimizer's preconditioner and momentum like the likelihood, so it is
    the prior for every optimizer above. The optimizer's own `weight_decay` (`wd`) is applied
    by Keras outside the preconditioner and outside the momentum buffer. Under `LSGD` with
    momentum `mu` and this sigma it is a Gaussian prior of variance
    `1 / (num_examples * wd * (1 - mu))` (not `1 / (num_examples * wd)`, unless `mu = 0`): for
    a prior standard deviation `std`, `weight_decay = 1 / (num_examples * std**2 * (1 - mu))`.
    Under `LAdam` and `LRMSprop` it is no prior at all (the stationary law is not
    `exp(-U / T)` for any fixed prior).

    Args:
        num_examples: int >= 1, the number `N` of training examples the loss averages over
            (the size of the training set, not the number of batches: with `N / B` batches
            the posterior would be `sqrt(B)` times too wide; `PosteriorSampler` warns when
            sigma implies no more examples than batches).
        temperature: float > 0. `1` samples the posterior; `T < 1` a "cold" posterior.
        momentum: float in [0, 1), the `momentum` of `LSGD`. Defaults to `0.0`.

    Returns:
        A Python float, to pass as `sigma=` (or to `CyclicalSigma`).
    """
    num_examples = _checks.positive_int("num_examples", num_examples)
    temperature = _checks.real("temperature", temperature, low=0.0, low_open=True)
    momentum = _checks.real("momentum", momentum, low=0.0, high=1.0, high_open=True)
    return math.sqrt(2.0 * temperature / (num_examples * (1.0 - momentum)))


def gaussian_prior(std, num_examples):
    """The `keras.regularizers.L2` that is a `N(0, std**2)` prior on each weight it regularises.

    For a loss that is the batch mean of per-example negative log-likelihoods over
    `num_examples` training examples (Keras's default reduction), plus this regulariser,
    `num_examples * loss` is the negative log posterior: the term `lam * sum(w**2)` times
    `num_examples` must be `-log N(w; 0, std**2) = sum(w**2) / (2 * std**2) + const`, hence

        lam = 1 / (2 * num_examples * std**2).

    With `sigma=posterior_sigma(num_examples)` (and the same `momentum` for `LSGD`), a weight
    whose only gradient is this prior then samples `N(0, std**2)`: exactly so for `LSGD` in the
    limit of small learning rates; `LRMSprop` (pSGLD) samples a wider law, see
    docs/guide/posterior_sampling.md.

        prior = keras_langevin.sampling.gaussian_prior(1.0, num_examples=len(x_train))
        keras.layers.Dense(10, kernel_regularizer=prior, bias_regularizer=prior)

    Args:
        std: float > 0, the prior's standard deviation of each weight.
        num_examples: int >= 1, the number `N` of training examples the loss averages over.

    Returns:
        A `keras.regularizers.L2` with `l2 = 1 / (2 * num_examples * std**2)`.
    """
    std = _checks.real("std", std, low=0.0, low_open=True)
    num_examples = _checks.positive_int("num_examples", num_examples)
    denominator = 2.0 * num_examples * std**2
    l2 = 1.0 / denominator if denominator > 0.0 else math.inf
    if not (math.isfinite(l2) and l2 > 0.0):
        raise ValueError(
            "Arguments `std` and `num_examples` give an L2 factor 1 / (2 * num_examples * "
            f"std**2) = {l2!r} that is not a positive finite float. Received: std={std!r}, "
            f"num_examples={num_examples!r}"
        )
    return keras.regularizers.L2(l2)
