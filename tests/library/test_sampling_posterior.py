"""Statistical tests: Langevin optimizers at `posterior_sigma` sample the Bayesian posterior.

Bayesian linear regression with a conjugate posterior. The model is Keras's own loss: for `N`
examples `(x_i, y_i)`, weights `theta` in R^2, and an `L2(lam)` regulariser,

    loss(theta) = mean_i (y_i - x_i . theta)^2 + lam * |theta|^2        ("mse" + L2)

which is `U(theta) / N` for the likelihood `y_i ~ N(x_i . theta, 1/2)` (Keras "mse" is a
Gaussian negative log-likelihood of variance 1/2 up to a constant) and the prior
`theta ~ N(0, I / (2 N lam))`.
The tempered posterior `exp(-U / T)` is Gaussian:

    mean = (X'X + N lam I)^-1 X'y,        covariance = T / 2 * (X'X + N lam I)^-1.

How the chains run. Thousands of independent chains in one `(chains, 2)` weight of a Keras layer,
trained by `model.fit` with the optimizer under test (so the chains use the real train step,
noise state included, on TensorFlow and on JAX). Every optimizer used here is elementwise, so
the chains do not interact. At every step each chain draws its own mini-batch: one of about 4096
batches of `B < N` distinct examples, the batches being the blocks of random permutations of
the data (every example appears equally often, so the mini-batch gradient is exactly unbiased).
The layer adds, per chain, Keras's `mean_squared_error` on that mini-batch, computed from the
batch's sufficient statistics (a test below checks it equals `keras.losses.mean_squared_error`),
and the L2 term is a `keras.regularizers.L2` on the weight.

Tolerances. The chains start at the posterior mean and run a burn-in of `6 / (2 eps lambda_min)`
steps (eps: the effective step, lambda_min: the smallest curvature of the loss), after which the
variance lacks at most e^-6 = 0.25% of its stationary value; then one snapshot of every chain is
taken. The chains are independent (each draws its own noise and its own batches), so the
snapshots are independent draws and the effective sample size is the number of chains: no
autocorrelation to estimate. The statistics are computed in whitened coordinates
`z = S^-1/2 (theta - mean)` (S: the posterior covariance), where the target is `E z = 0`,
`E z z' = I`. For each statistic (z_j, z_j z_k) the band is 4 standard errors, the standard error
being its standard deviation over sqrt(chains).

Known biases. SGLD's stationary law is not exactly the posterior at a finite step: the Euler
scheme's O(lr) bias and the mini-batch noise, whose variance per step is O(lr^2) against O(lr)
for the injected noise. For this linear problem with a finite set of batches, the stationary
covariance of the discrete chain is known exactly (a linear equation in the covariance, solved
below); the tests assert that its whitened deviation from the posterior is below one standard error
(a quarter of the band) before checking the samples.
"""

import math

import keras
import numpy as np
import pytest
from keras import ops

import keras_langevin as kl
from keras_langevin.sampling import posterior_sigma

pytestmark = pytest.mark.multibackend

DIM = 2
TABLE_SIZE = 4096
STEPS_PER_EXECUTION = 50
BAND = 4.0  # standard errors


class Problem:
    """Data, the mini-batch table and the analytic posterior."""

    def __init__(self, num_examples, batch_size, l2=0.05, correlation=0.3, seed=0):
        rng = np.random.default_rng(seed)
        mix = np.array([[1.0, 0.0], [correlation, math.sqrt(1 - correlation**2)]])
        x = rng.standard_normal((num_examples, DIM)) @ mix.T
        y = x @ np.array([0.5, -1.0]) + math.sqrt(0.5) * rng.standard_normal(num_examples)
        permutations = [
            rng.permutation(num_examples) for _ in range(TABLE_SIZE * batch_size // num_examples)
        ]
        batches = np.concatenate([p.reshape(-1, batch_size) for p in permutations])
        self.x, self.y, self.batches = x, y, batches
        self.num_examples, self.batch_size, self.l2 = num_examples, batch_size, l2
        # Sufficient statistics of every batch: sum x x', sum x y, sum y^2.
        self.xx = np.einsum("mbi,mbj->mij", x[batches], x[batches])
        self.xy = np.einsum("mbi,mb->mi", x[batches], y[batches])
        self.yy = np.einsum("mb,mb->m", y[batches], y[batches])
        precision = x.T @ x + num_examples * l2 * np.eye(DIM)
        self.mean = np.linalg.solve(precision, x.T @ y)
        self.unit_covariance = np.linalg.inv(precision) / 2  # the posterior's at T = 1
        self.hessian = 2 * (x.T @ x / num_examples + l2 * np.eye(DIM))  # of the mean loss
        # The mini-batch gradient at the posterior mean, per batch (the mean over batches is 0).
        self.batch_hessians = 2 * (self.xx / batch_size + l2 * np.eye(DIM))
        self.gradients_at_mean = self.batch_hessians @ self.mean - 2 * self.xy / batch_size

    def covariance(self, temperature):
        return temperature * self.unit_covariance

    def predicted_sgd_covariance(self, learning_rate, sigma, momentum=0.0):
        """The exact stationary covariance of Keras SGD (momentum: heavy ball) plus the noise
        `sigma * sqrt(lr) * xi` on the weights, on this problem with these batches.

        State `s = (theta - mean, m)`: `s' = F_j s + G_j + noise`, with `j` a uniform batch. The
        mean of `s` stays 0 (the batch gradients at the mean average to 0), and the second moment
        solves `M = E[F_j M F_j'] + E[G_j G_j'] + Q`: a linear equation for `vec(M)`.
        """
        eye = np.eye(DIM)
        transitions, offsets = [], []
        for hessian, gradient in zip(self.batch_hessians, self.gradients_at_mean):
            step = -learning_rate * hessian
            # m' = momentum m - lr g;  theta' = theta + m' (+ noise)
            transitions.append(np.block([[eye + step, momentum * eye], [step, momentum * eye]]))
            offsets.append(np.concatenate([-learning_rate * gradient] * 2))
        transitions, offsets = np.array(transitions), np.array(offsets)
        size = 2 * DIM
        kron = np.einsum("mij,mkl->ikjl", transitions, transitions).reshape(size**2, size**2)
        kron /= len(transitions)
        q = np.einsum("mi,mj->ij", offsets, offsets) / len(offsets)
        q[:DIM, :DIM] += sigma**2 * learning_rate * eye
        moment = np.linalg.solve(np.eye(size**2) - kron, q.reshape(-1)).reshape(size, size)
        return moment[:DIM, :DIM]

    def burn_in_steps(self, effective_step):
        """Steps after which the variance lacks at most e^-6 of its stationary value, a
        multiple of the steps per execution."""
        slowest = np.linalg.eigvalsh(self.hessian).min()
        burn_in = 6.0 / (2 * effective_step * slowest)
        return int(math.ceil(burn_in / STEPS_PER_EXECUTION) * STEPS_PER_EXECUTION)


class Chains(keras.layers.Layer):
    """Independent chains, one row of `theta` each, each on its own random mini-batch."""

    def __init__(self, problem, chains, seed, **kwargs):
        super().__init__(**kwargs)
        self.problem = problem
        self.chains = chains
        self.theta = self.add_weight(
            shape=(chains, DIM),
            initializer=keras.initializers.Constant(np.tile(problem.mean, (chains, 1))),
            regularizer=keras.regularizers.L2(problem.l2),
            name="theta",
        )
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        p = self.problem
        batch = keras.random.randint((self.chains,), 0, len(p.batches), seed=self.seed_generator)
        xx = ops.take(ops.convert_to_tensor(p.xx.astype("float32")), batch, axis=0)
        xy = ops.take(ops.convert_to_tensor(p.xy.astype("float32")), batch, axis=0)
        yy = ops.take(ops.convert_to_tensor(p.yy.astype("float32")), batch, axis=0)
        theta = self.theta
        quadratic = ops.sum(theta * ops.sum(xx * theta[:, None, :], axis=-1), axis=-1)
        squared_errors = quadratic - 2.0 * ops.sum(xy * theta, axis=-1) + yy
        self.add_loss(ops.sum(squared_errors) / p.batch_size)  # per chain: its batch's mse
        return ops.zeros_like(inputs)


def run_chains(problem, optimizer, chains, burn_in, seed=3):
    """One snapshot `(chains, DIM)` of the chains after `burn_in` steps."""
    inputs = keras.Input((1,))
    layer = Chains(problem, chains, seed)
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer=optimizer, steps_per_execution=STEPS_PER_EXECUTION)
    model.fit(np.zeros((burn_in, 1), "float32"), batch_size=1, verbose=0, shuffle=False)
    assert int(ops.convert_to_numpy(optimizer.iterations)) == burn_in
    return np.array(ops.convert_to_numpy(layer.theta), dtype="float64")


def whitening(covariance):
    values, vectors = np.linalg.eigh(covariance)
    return vectors @ np.diag(values**-0.5) @ vectors.T


def posterior_check(snapshot, mean, covariance, variance_allowance=0.0):
    """Compares independent draws `(chains, DIM)` with N(mean, covariance); returns
    (failures, report).

    Statistics in whitened coordinates: z_j (target 0), z_j^2 (target 1), z_j z_k (target 0).
    Band: BAND standard errors of each statistic's mean over the chains, plus
    `variance_allowance` above 1 for z_j^2 (a known one-sided bias, LRMSprop).
    """
    z = (snapshot - mean) @ whitening(covariance)  # (chains, DIM)
    chains = z.shape[0]
    statistics = {f"mean z{j}": (z[:, j], 0.0) for j in range(DIM)}
    for j in range(DIM):
        for k in range(j, DIM):
            name = f"var z{j}" if j == k else f"cov z{j} z{k}"
            statistics[name] = (z[:, j] * z[:, k], 1.0 if j == k else 0.0)
    failures, report = [], {"chains": chains}
    for name, (values, target) in statistics.items():
        estimate = values.mean()
        standard_error = values.std() / math.sqrt(chains)
        upper = BAND * standard_error + (variance_allowance if name.startswith("var") else 0.0)
        report[name] = (estimate, standard_error)
        if not -BAND * standard_error <= estimate - target <= upper:
            failures.append(
                f"{name}: {estimate:.4f} vs {target} (standard error {standard_error:.4f})"
            )
    return failures, report


def whitened_deviation(covariance, target):
    w = whitening(target)
    return np.abs(w @ covariance @ w - np.eye(DIM)).max()


# SGLD problem: N = 100 examples, batches of 50. Posterior standard deviations about 0.07.
SGD_PROBLEM = {"num_examples": 100, "batch_size": 50}
SGD_CHAINS = 16000
SGD_LR = 0.0025


def _sgd_run(temperature, sigma, momentum=0.0, learning_rate=SGD_LR):
    problem = Problem(**SGD_PROBLEM)
    burn_in = problem.burn_in_steps(learning_rate / (1 - momentum))
    optimizer = kl.LSGD(learning_rate=learning_rate, momentum=momentum, sigma=sigma, seed=7)
    snapshots = run_chains(problem, optimizer, SGD_CHAINS, burn_in)
    return problem, snapshots


def test_sufficient_statistics_are_keras_mse():
    problem = Problem(**SGD_PROBLEM)
    theta = np.array([0.3, -0.7])
    for j in (0, 1, 4095):
        rows = problem.batches[j]
        keras_mse = keras.losses.mean_squared_error(
            problem.y[rows][None], (problem.x[rows] @ theta)[None]
        )
        ours = (
            theta @ problem.xx[j] @ theta - 2 * problem.xy[j] @ theta + problem.yy[j]
        ) / problem.batch_size
        np.testing.assert_allclose(float(ops.convert_to_numpy(keras_mse)[0]), ours, rtol=1e-5)
    l2 = keras.regularizers.L2(problem.l2)(ops.convert_to_tensor(theta.astype("float32")))
    np.testing.assert_allclose(
        float(ops.convert_to_numpy(l2)), problem.l2 * theta @ theta, rtol=1e-5
    )
    # Each example is in as many batches as any other: the mini-batch gradient is unbiased.
    np.testing.assert_allclose(problem.gradients_at_mean.mean(axis=0), 0.0, atol=1e-9)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_lsgd_samples_the_tempered_posterior(temperature):
    """SGLD: mean and covariance of the samples match the posterior; covariance scales with T."""
    sigma = posterior_sigma(SGD_PROBLEM["num_examples"], temperature)
    problem, snapshots = _sgd_run(temperature, sigma)
    target = problem.covariance(temperature)
    failures, report = posterior_check(snapshots, problem.mean, target)
    # The finite-step bias (Euler and mini-batch noise), exactly: below one standard error.
    bias = whitened_deviation(problem.predicted_sgd_covariance(SGD_LR, sigma), target)
    assert bias < report["var z0"][1], (bias, report)
    assert not failures, (failures, report)


def test_lsgd_with_sigma_too_small_by_sqrt2_fails_the_check():
    """The same check rejects sigma / sqrt(2): the covariance is then half the posterior's."""
    sigma = posterior_sigma(SGD_PROBLEM["num_examples"]) / math.sqrt(2)
    problem, snapshots = _sgd_run(1.0, sigma)
    failures, report = posterior_check(snapshots, problem.mean, problem.covariance(1.0))
    assert any(f.startswith("var z0") for f in failures), report
    assert any(f.startswith("var z1") for f in failures), report
    assert abs(report["var z0"][0] - 0.5) < 0.05 and abs(report["var z1"][0] - 0.5) < 0.05


def test_lsgd_momentum_samples_the_posterior_with_its_sigma():
    """Heavy-ball momentum with the noise on the weights: sigma = sqrt(2 T / (N (1 - mu)))."""
    momentum, learning_rate = 0.5, 0.001
    sigma = posterior_sigma(SGD_PROBLEM["num_examples"], momentum=momentum)
    problem, snapshots = _sgd_run(1.0, sigma, momentum=momentum, learning_rate=learning_rate)
    target = problem.covariance(1.0)
    failures, report = posterior_check(snapshots, problem.mean, target)
    predicted = problem.predicted_sgd_covariance(learning_rate, sigma, momentum=momentum)
    bias = whitened_deviation(predicted, target)
    assert bias < report["var z0"][1], (bias, report)
    assert not failures, (failures, report)


# pSGLD problem: N = 500 examples, batches of 50, so that the mini-batch noise dominates the
# squared gradients RMSprop averages (as in deep learning) and its preconditioner varies little
# across the posterior.
RMSPROP_PROBLEM = {"num_examples": 500, "batch_size": 50}
RMSPROP_RHO = 0.99  # pSGLD's own choice of the decay (Li et al., 2016)
RMSPROP_STEP = 0.0025  # the effective step lr * P, as for SGLD above


def rmsprop_allowance(problem, effective_step, temperature=1.0):
    """The one-sided band (above) for the variances of pSGLD as LRMSprop runs it.

    Per coordinate i, with V_i the mini-batch gradient variance and s_i = (H S H)_ii the
    variance of the full gradient over the posterior (S its covariance, H the loss Hessian):

    - Gamma dropped: without it the chain samples exp(-U/T) / P(theta), and P = 1/sqrt(v) with
      v about V_i + (H delta)_i^2 tilts the law by sqrt(1 + (H delta)_i^2 / V_i); if v tracked
      the current gradient fully, a variance would grow by at most about s_i / V_i (less, as v
      averages over 1/(1 - rho) steps while the weights move).
    - v_t includes g_t^2: a larger gradient gets a smaller step, so the drift is weaker by about
      (1 - rho) * E[g^2 P^2] ~ (1 - rho), and the variance larger by as much.
    - Mini-batch noise: extra variance per step lr^2 P^2 V_i against the injected 2 T lr P / N:
      relative eps * V_i * N / (2 T) with eps = lr * P, P^2 V ~ 1.
    - Euler: eps * lambda_max / 2.
    All of them make the variances larger; their sum is the allowance.
    """
    v = problem.gradients_at_mean.var(axis=0)
    signal = np.diag(problem.hessian @ problem.covariance(temperature) @ problem.hessian)
    gamma = np.max(signal / v)
    correlation = 1 - RMSPROP_RHO
    minibatch = effective_step * v.max() * problem.num_examples / (2 * temperature)
    euler = effective_step * np.linalg.eigvalsh(problem.hessian).max() / 2
    return gamma + correlation + minibatch + euler


def test_lrmsprop_samples_the_posterior_within_the_psgld_band():
    """pSGLD: the mean within the statistical band, variances within it plus the allowance."""
    problem = Problem(**RMSPROP_PROBLEM)
    v = problem.gradients_at_mean.var(axis=0)
    # P_i ~ 1 / sqrt(V_i): lr such that the largest effective step lr * P_i is RMSPROP_STEP.
    learning_rate = RMSPROP_STEP * math.sqrt(v.min())
    burn_in = problem.burn_in_steps(learning_rate / math.sqrt(v.max()))
    sigma = posterior_sigma(problem.num_examples)
    optimizer = kl.LRMSprop(learning_rate=learning_rate, rho=RMSPROP_RHO, sigma=sigma, seed=7)
    snapshots = run_chains(problem, optimizer, SGD_CHAINS, burn_in)
    allowance = rmsprop_allowance(problem, RMSPROP_STEP)
    assert allowance < 0.2, allowance  # the band stays tight enough to reject sigma / sqrt(2)
    failures, report = posterior_check(
        snapshots, problem.mean, problem.covariance(1.0), variance_allowance=allowance
    )
    print(f"pSGLD, mini-batch regime ({keras.backend.backend()}): {report}")  # pytest -s
    assert not failures, (failures, report, allowance)
