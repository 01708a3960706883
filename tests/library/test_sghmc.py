"""LSGHMC: SGD with momentum whose noise enters the momentum buffer (SGHMC).

The posterior tests run `CHAINS` independent chains, one element each of a weight, on a
conjugate Gaussian model: `N` observations `y_i ~ N(theta, 1)`, a `N(0, PRIOR_STD**2)` prior,
the batch-mean loss `f(theta) = mean_i (y_i - theta)^2 / 2 + theta^2 / (2 N PRIOR_STD^2)` with
its exact full-batch gradient, and `sigma = posterior_sigma(N, T, momentum=mu)`. The sampled law
must be `p(theta | y)^(1 / T)`, a Gaussian of known mean and variance. The chains start at
draws from that law (momentum 0) and run `BURN_IN` steps before `DRAWS` are recorded.
Tolerances: `BAND` standard errors, each from ArviZ's effective sample size over the chains
(`arviz.ess(..., method="mean")`); the finite-step bias of each setting is computed exactly
(a discrete Lyapunov equation for the linear chain) and asserted to be far below the band.
"""

import math

import keras
import numpy as np
import pytest
import scipy.linalg
from keras import ops

import keras_langevin as kl

arviz = pytest.importorskip("arviz")

pytestmark = pytest.mark.multibackend

N = 100
PRIOR_STD = 1.0
Y_BAR = 0.3  # mean of the observations
CURVATURE = 1.0 + 1.0 / (N * PRIOR_STD**2)  # of the batch-mean loss
CHAINS = 256
BURN_IN = 100
DRAWS = 1500
BAND = 5.0


def _posterior(temperature):
    """Mean and variance of p(theta | y)^(1 / T)."""
    precision = N * CURVATURE / temperature
    return N * Y_BAR / (N * CURVATURE), 1.0 / precision


def _chain_variance(learning_rate, momentum, nesterov, sigma, friction=True):
    """Exact stationary variance of LSGHMC's linear chain on this model: state (theta, m)."""
    step = learning_rate * CURVATURE
    s = (1 - momentum if friction else 1.0) * sigma * math.sqrt(learning_rate)
    mu = momentum
    if nesterov:  # Keras's Nesterov variable: phi' = phi + mu m' - lr g + (1 + mu) s xi
        transition = np.array([[1 - step - mu * step, mu * mu], [-step, mu]])
        noise = np.array([(1 + mu) * s, s])
    else:  # m' = mu m - lr g + s xi, theta' = theta + m'
        transition = np.array([[1 - step, mu], [-step, mu]])
        noise = np.array([s, s])
    return scipy.linalg.solve_discrete_lyapunov(transition, np.outer(noise, noise))[0, 0]


def _run_chains(optimizer, temperature, draws=DRAWS):
    """`(CHAINS, draws)` values of theta after `BURN_IN` steps."""
    mean, variance = _posterior(temperature)
    start = np.random.default_rng(0).normal(mean, math.sqrt(variance), CHAINS)
    theta = keras.Variable(start.astype("float32"), name="theta")
    trace = []
    for step in range(BURN_IN + draws):
        gradient = ops.subtract(ops.multiply(CURVATURE, theta.value), Y_BAR)
        optimizer.apply([gradient], [theta])
        if step >= BURN_IN:
            trace.append(np.array(ops.convert_to_numpy(theta), dtype="float64"))
    return np.stack(trace, axis=1)


def _moments(chains, temperature):
    """{statistic: (estimate, expected, standard error)} of the mean and the variance."""
    mean, variance = _posterior(temperature)
    squares = (chains - mean) ** 2
    mean_ess = float(arviz.ess(chains, method="mean"))
    square_ess = float(arviz.ess(squares, method="mean"))
    return {
        "mean": (float(chains.mean()), mean, float(chains.std()) / math.sqrt(mean_ess)),
        "variance": (float(squares.mean()), variance, float(squares.std()) / math.sqrt(square_ess)),
    }


def _within_band(report):
    return all(
        abs(estimate - expected) < BAND * error for estimate, expected, error in report.values()
    )


SETTINGS = [
    pytest.param(0.01, 0.9, False, 1.0, id="mu0.9"),
    pytest.param(0.01, 0.5, True, 0.5, id="mu0.5-nesterov-T0.5"),
]


@pytest.mark.parametrize("learning_rate,momentum,nesterov,temperature", SETTINGS)
def test_samples_the_conjugate_gaussian_posterior(learning_rate, momentum, nesterov, temperature):
    sigma = kl.sampling.posterior_sigma(N, temperature, momentum=momentum)
    _, variance = _posterior(temperature)
    # The finite-step bias of this setting is far below the band (1 standard error is ~1.5%).
    exact = _chain_variance(learning_rate, momentum, nesterov, sigma)
    assert abs(exact / variance - 1) < 0.005
    optimizer = kl.LSGHMC(learning_rate, momentum, nesterov, sigma=sigma, seed=3)
    report = _moments(_run_chains(optimizer, temperature), temperature)
    assert report["variance"][2] / variance < 0.03  # the band is tight enough to mean something
    assert _within_band(report), report


class _WithoutFriction(kl.LSGHMC):
    """A wrong noise scale: `sigma * sqrt(lr)` into the momentum, the (1 - mu) factor left out."""

    def _langevin_preconditioner(self, variable, index, pre_update):
        super()._langevin_preconditioner(variable, index, pre_update)
        return ops.ones(())


def test_the_bands_reject_a_noise_scale_without_the_friction_factor():
    learning_rate, momentum, temperature = 0.01, 0.9, 1.0
    sigma = kl.sampling.posterior_sigma(N, temperature, momentum=momentum)
    wrong = _chain_variance(learning_rate, momentum, False, sigma, friction=False)
    assert wrong / _posterior(temperature)[1] > 50  # (1 - mu)^-2 = 100 times the variance
    optimizer = _WithoutFriction(learning_rate, momentum, sigma=sigma, seed=3)
    report = _moments(_run_chains(optimizer, temperature, draws=300), temperature)
    assert not _within_band(report), report


def _zero_gradient_increments(optimizer, size=40_000, steps=40):
    """Weight increments `(steps, size)` under a zero gradient."""
    theta = keras.Variable(np.zeros(size, "float32"))
    values = [np.zeros(size)]
    for _ in range(steps):
        optimizer.apply([ops.zeros(size)], [theta])
        values.append(np.array(ops.convert_to_numpy(theta), dtype="float64"))
    return np.diff(np.stack(values), axis=0)


def _correlation(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def test_zero_gradient_increments_are_correlated_by_the_momentum():
    """Increments m_{t+1} = mu m_t + s xi_t: stationary AR(1), lag-k correlation mu^k and
    variance s^2 / (1 - mu^2), where LSGD's increments (noise on the weights) are independent.
    After 40 steps the AR(1) is stationary to mu^80 = 2e-4. Each correlation pairs 40,000
    independent elements: its standard error is (1 - rho^2) / sqrt(n)."""
    lr, mu, sigma = 0.04, 0.9, 0.5
    sghmc = _zero_gradient_increments(kl.LSGHMC(lr, mu, sigma=sigma, seed=1))
    sgd = _zero_gradient_increments(kl.LSGD(lr, mu, sigma=sigma, seed=1))
    n = sghmc.shape[1]
    for lag in (1, 2):
        rho = mu**lag
        assert abs(_correlation(sghmc[-1 - lag], sghmc[-1]) - rho) < BAND * (1 - rho**2) / n**0.5
        assert abs(_correlation(sgd[-1 - lag], sgd[-1])) < BAND / n**0.5
    s = (1 - mu) * sigma * math.sqrt(lr)
    expected_std = s / math.sqrt(1 - mu**2)
    assert abs(sghmc[-1].std() / expected_std - 1) < BAND * math.sqrt(0.5 / n)
    # LSGD: sigma * sqrt(lr) * xi on the weight at every step.
    assert abs(sgd[-1].std() / (sigma * math.sqrt(lr)) - 1) < BAND * math.sqrt(0.5 / n)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("jit_compile", [True, False])
def test_the_momentum_buffer_receives_the_noise(nesterov, jit_compile):
    """One step from rest with zero gradient: m_1 = s xi, and the variable moves by s xi
    (Nesterov: (1 + mu) s xi); on the second step the buffer carries mu m_1 forward."""
    lr, mu, sigma = 0.04, 0.8, 0.5
    optimizer = kl.LSGHMC(lr, mu, nesterov, sigma=sigma, seed=2, jit_compile=jit_compile)
    theta = keras.Variable(np.zeros(10_000, "float32"))
    optimizer.apply([ops.zeros(10_000)], [theta])
    moved = np.array(ops.convert_to_numpy(theta))
    buffer = np.array(ops.convert_to_numpy(optimizer.momentums[0]))
    reach = 1 + mu if nesterov else 1.0
    np.testing.assert_allclose(buffer * reach, moved, rtol=1e-5, atol=1e-8)
    xi = buffer / ((1 - mu) * sigma * math.sqrt(lr))
    assert abs(xi.std() - 1) < BAND * math.sqrt(0.5 / xi.size)
    optimizer.apply([ops.zeros(10_000)], [theta])
    second = np.array(ops.convert_to_numpy(optimizer.momentums[0]))
    fresh = (second - mu * buffer) / ((1 - mu) * sigma * math.sqrt(lr))
    assert abs(fresh.std() - 1) < BAND * math.sqrt(0.5 / xi.size)
    assert abs(_correlation(fresh, xi)) < BAND / xi.size**0.5  # a fresh draw


@pytest.mark.parametrize(
    "momentum,error",
    [
        (0.0, ValueError),
        (1.0, ValueError),
        (-0.1, ValueError),
        (1.5, ValueError),
        (float("nan"), ValueError),
        ("0.9", TypeError),
        (True, TypeError),
        (None, TypeError),
    ],
)
def test_momentum_must_be_in_the_open_unit_interval(momentum, error):
    with pytest.raises(error, match=r"`momentum`.*Received: momentum="):
        kl.LSGHMC(0.01, momentum)
    with pytest.raises(error, match=r"`momentum`"):
        kl.LSGHMC(momentum=momentum, sigma=0.1)


def test_numpy_momentum_is_accepted_and_configured_as_keras():
    optimizer = kl.LSGHMC(0.05, np.float32(0.5), sigma=0.1)
    assert optimizer.momentum == 0.5 and isinstance(optimizer.momentum, float)
    config = optimizer.get_config()
    assert config["momentum"] == 0.5 and config["nesterov"] is False
    assert kl.LSGHMC.from_config(config).get_config() == config
