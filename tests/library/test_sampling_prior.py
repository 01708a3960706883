"""`gaussian_prior` and `weight_decay` as priors: a weight whose only gradient is the prior.

Thousands of independent chains in one `(chains,)` weight of a Keras layer whose loss is zero:
the only force on the weight is its regulariser (`gaussian_prior(STD, N)`) or the optimizer's
`weight_decay`, so the sampled law must be the prior `N(0, STD**2)` (or what the decay gives).
The chains start at 0 (a wrong or missing noise, or a wrong drift, cannot pass by staying at the
initial values), run a burn-in after which the variance lacks at most e^-6 of its stationary
value, then `DRAWS` snapshots `thin` steps apart are taken, all steps run by `model.fit`.

Tolerances: the statistics of `z = theta / STD` (mean 0, second moment 1) must lie within
`BAND` standard errors, each standard error from ArviZ's effective sample size of the chains
(`arviz.ess(..., method="mean")`). Where a chain has a known finite-step bias, its exact
stationary variance (a discrete Lyapunov equation) is computed and asserted to be small first.
"""

import math

import keras
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
from keras import ops

import keras_langevin as kl
from keras_langevin import sampling

arviz = pytest.importorskip("arviz")

pytestmark = pytest.mark.multibackend

N = 100  # training examples the (empty) loss stands for
STD = 0.5  # prior standard deviation
LAM = 1.0 / (2 * N * STD**2)  # gaussian_prior's L2 factor: 0.02
CURVATURE = 2 * LAM  # of the mean loss lam * theta^2
CHAINS = 2000
DRAWS = 20
BAND = 4.0


def test_gaussian_prior_is_the_l2_of_the_prior():
    prior = sampling.gaussian_prior(STD, N)
    assert isinstance(prior, keras.regularizers.L2)
    assert prior.l2 == pytest.approx(LAM)
    # N * lam * w^2 is -log N(w; 0, STD^2) up to a constant.
    w = np.array([0.3, -1.2], "float32")
    penalty = float(ops.convert_to_numpy(prior(ops.convert_to_tensor(w))))
    np.testing.assert_allclose(N * penalty, np.sum(w**2) / (2 * STD**2), rtol=1e-6)
    assert sampling.gaussian_prior(2.0, 10).l2 == pytest.approx(1 / 80)


@pytest.mark.parametrize(
    "args,error,argument",
    [
        ((0.0, 10), ValueError, "std"),
        ((-1.0, 10), ValueError, "std"),
        ((float("inf"), 10), ValueError, "std"),
        (("1", 10), TypeError, "std"),
        ((1.0, 0), ValueError, "num_examples"),
        ((1.0, 2.5), TypeError, "num_examples"),
        ((1e-200, 10), ValueError, "std"),  # lam = 1 / (2 N std^2) overflows
    ],
)
def test_gaussian_prior_rejects_bad_input(args, error, argument):
    with pytest.raises(error, match=f"`{argument}`.*Received: {argument}="):
        sampling.gaussian_prior(*args)


class PriorOnly(keras.layers.Layer):
    """`(chains,)` independent weights whose data loss is zero (a zero gradient, not None)."""

    def __init__(self, chains, regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.theta = self.add_weight(
            shape=(chains,), initializer="zeros", regularizer=regularizer, name="theta"
        )

    def call(self, inputs):
        self.add_loss(0.0 * ops.sum(self.theta))
        return ops.zeros_like(inputs)


class EpochSnapshots(keras.callbacks.Callback):
    """The weight at the end of every epoch (Keras syncs JAX's state for epoch ends)."""

    def __init__(self, layer):
        super().__init__()
        self.layer, self.values = layer, []

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(np.array(ops.convert_to_numpy(self.layer.theta), dtype="float64"))


def run_prior_chains(optimizer, burn_in, thin, regularizer=True, draws=DRAWS, chains=CHAINS):
    """Snapshots `(chains, draws)` after `burn_in` steps, `thin` steps apart (an epoch each)."""
    inputs = keras.Input((1,))
    layer = PriorOnly(chains, sampling.gaussian_prior(STD, N) if regularizer else None)
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer=optimizer, steps_per_execution=thin)
    model.fit(np.zeros((burn_in, 1), "float32"), batch_size=1, verbose=0, shuffle=False)
    snapshots = EpochSnapshots(layer)
    x = np.zeros((thin, 1), "float32")
    model.fit(x, batch_size=1, epochs=draws, verbose=0, shuffle=False, callbacks=[snapshots])
    assert int(ops.convert_to_numpy(optimizer.iterations)) == burn_in + draws * thin
    assert len(snapshots.values) == draws
    return np.stack(snapshots.values, axis=1)


def moments(theta, std=STD):
    """{name: (estimate, standard error)} of z = theta / std: mean and second moment, the
    standard errors from ArviZ's effective sample size over the chains."""
    z = theta / std
    result = {}
    for name, values in (("mean", z), ("second moment", z**2)):
        ess = float(arviz.ess(values, method="mean"))
        result[name] = (float(values.mean()), float(values.std()) / math.sqrt(ess))
    return result


def assert_prior(theta, variance, label):
    """The chains' mean is 0 and their variance `variance` (in units of STD^2), within BAND
    standard errors."""
    report = moments(theta)
    print(f"{label} ({keras.backend.backend()}): expected {variance:.4f}, {report}")  # pytest -s
    mean, mean_error = report["mean"]
    second, second_error = report["second moment"]
    assert abs(mean) < BAND * mean_error, report
    assert abs(second - variance) < BAND * second_error * variance, report
    return report


def heavy_ball_variance(learning_rate, curvature, momentum, sigma):
    """Exact stationary variance of Keras SGD (heavy ball) on `curvature * theta^2 / 2` plus
    the noise `sigma * sqrt(lr) * xi` on the weight: state (theta, m), m' = mu m - lr c theta,
    theta' = theta + m' + noise."""
    step = learning_rate * curvature
    transition = np.array([[1 - step, momentum], [-step, momentum]])
    noise = np.diag([sigma**2 * learning_rate, 0.0])
    return scipy.linalg.solve_discrete_lyapunov(transition, noise)[0, 0]


def relaxation(effective_step):
    """(burn-in, thin) in steps for a weight relaxing at rate `effective_step * CURVATURE`:
    the variance deficit e^-6 after burn-in, and a thin of a third of the relaxation time."""
    rate = effective_step * CURVATURE
    return int(math.ceil(3.0 / rate / 50) * 50), int(math.ceil(1.0 / rate / 3 / 50) * 50)


@pytest.mark.parametrize("momentum,learning_rate", [(0.0, 0.1), (0.9, 0.0025)])
def test_lsgd_samples_gaussian_prior(momentum, learning_rate):
    """SGLD and heavy-ball SGLD: the regulariser route samples N(0, STD^2)."""
    sigma = sampling.posterior_sigma(N, momentum=momentum)
    exact = heavy_ball_variance(learning_rate, CURVATURE, momentum, sigma) / STD**2
    assert abs(exact - 1) < 0.01, exact  # the finite-step bias, exactly: under 1%
    optimizer = kl.LSGD(learning_rate, momentum=momentum, sigma=sigma, seed=11)
    theta = run_prior_chains(optimizer, *relaxation(learning_rate / (1 - momentum)))
    assert_prior(theta, exact, f"LSGD, momentum {momentum}, gaussian_prior")


def test_lsgd_weight_decay_under_momentum_is_a_wider_prior():
    """Keras's decoupled `weight_decay=wd` bypasses the momentum buffer: with
    `posterior_sigma(N, momentum=mu)` a prior-only weight has variance 1 / (N wd (1 - mu)),
    ten times `1 / (N wd)` at mu = 0.9; `wd = 1 / (N STD^2 (1 - mu))` gives N(0, STD^2)."""
    momentum = 0.9
    sigma = sampling.posterior_sigma(N, momentum=momentum)
    for weight_decay, learning_rate in ((1 / (N * STD**2), 0.1), (0.4, 0.01)):
        documented = 1 / (N * weight_decay * (1 - momentum)) / STD**2
        decay = learning_rate * weight_decay  # theta' = (1 - decay) theta + noise
        exact = sigma**2 * learning_rate / (1 - (1 - decay) ** 2) / STD**2
        assert abs(exact / documented - 1) < 0.01, (exact, documented)
        optimizer = kl.LSGD(
            learning_rate, momentum=momentum, weight_decay=weight_decay, sigma=sigma, seed=12
        )
        burn_in, thin = relaxation(learning_rate * weight_decay / CURVATURE)
        theta = run_prior_chains(optimizer, burn_in, thin, regularizer=False)
        assert_prior(theta, exact, f"LSGD, momentum {momentum}, weight_decay {weight_decay}")
    assert documented == pytest.approx(1.0)  # the mapping wd = 1 / (N STD^2 (1 - mu))


# pSGLD in the prior-dominated regime. With no mini-batch noise, RMSprop's average of squared
# gradients follows the prior's own gradient, v ~ (2 lam theta)^2, so the preconditioner
# P = 1 / sqrt(v + eps) ~ 1 / (2 lam |theta|) varies with the weight. Without pSGLD's dropped
# correction term the chain samples the prior divided by P: in the limit where v follows the
# current gradient instantly, a density proportional to |theta| exp(-theta^2 / (2 STD^2)),
# whose variance is exactly 2 STD^2; with v constant it would be STD^2. The measured ratios
# (identical on TensorFlow and JAX: the noise is counter-based), documented in
# docs/guide/posterior_sampling.md:
PSGLD_PRIOR_RATIOS = {0.003: 1.45, 0.001: 1.68, 0.0003: 1.84}


@pytest.mark.parametrize("learning_rate", sorted(PSGLD_PRIOR_RATIOS))
def test_lrmsprop_prior_only_weights_sample_a_wider_law(learning_rate):
    """LRMSprop (pSGLD, rho = 0.99) on prior-only weights: the variance is between 1 and 2
    times the prior's, significantly above 1 (the dropped term's bias), and at the documented
    figure; the smaller the learning rate, the closer to 2."""
    sigma = sampling.posterior_sigma(N)
    optimizer = kl.LRMSprop(learning_rate, rho=0.99, sigma=sigma, seed=13)
    theta = run_prior_chains(optimizer, burn_in=4000, thin=200, draws=40)
    report = moments(theta)
    mean, mean_error = report["mean"]
    ratio, error = report["second moment"]
    print(f"pSGLD, prior only, lr {learning_rate} ({keras.backend.backend()}): {report}")
    assert abs(mean) < BAND * mean_error, report
    assert 1 + BAND * error < ratio < 2 + BAND * error, report
    assert abs(ratio - PSGLD_PRIOR_RATIOS[learning_rate]) < BAND * error, report


def test_finite_step_bias_formulas_of_the_docs():
    """The formulas docs/guide/posterior_sampling.md states for the exact chains: SGLD's
    stationary variance is the target's times 1 / (1 - lr c / 2); heavy ball's is the target's
    times 1 + lr c (1 + mu) / (2 (1 - mu)^2) + O(lr^2), 9.5% at mu = 0.9, lr c = 1e-3; the
    density |theta| exp(-theta^2 / 2) of pSGLD's prior-only limit has variance 2."""
    for step in (1e-3, 1e-2, 0.1):
        sigma = math.sqrt(2.0)  # target variance 1 / c at c = 1
        exact = heavy_ball_variance(step, 1.0, 0.0, sigma)
        assert exact == pytest.approx(1 / (1 - step / 2), rel=1e-9)
    for momentum in (0.5, 0.9):
        sigma = math.sqrt(2.0 / (1 - momentum))
        for step in (1e-5, 1e-4):
            first_order = step * (1 + momentum) / (2 * (1 - momentum) ** 2)
            exact = heavy_ball_variance(step, 1.0, momentum, sigma) - 1
            assert exact == pytest.approx(first_order, rel=20 * first_order)
    ratio = heavy_ball_variance(1e-3, 1.0, 0.9, math.sqrt(20.0))
    assert ratio - 1 == pytest.approx(0.095, abs=0.0015)
    moment = scipy.integrate.quad(lambda t: t**3 * math.exp(-(t**2) / 2), 0, math.inf)[0]
    mass = scipy.integrate.quad(lambda t: t * math.exp(-(t**2) / 2), 0, math.inf)[0]
    assert moment / mass == pytest.approx(2.0, rel=1e-9)
