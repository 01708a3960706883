"""The law of the Langevin term (mean, variance, preconditioner), the stationary variance of
LSGD, and noise fresh at every step yet reproducible from the seed."""

import math

import keras
import numpy as np
import pytest
from helpers import make_variables, values
from keras import ops

import keras_langevin as kl

pytestmark = pytest.mark.multibackend

N = 40_000  # elements per noisy variable: tolerances below are a few standard errors for N
SHAPES = [(200, 200), (30,), (200, 200)]
SIGMA = 0.3
LR = 0.01
WARMUP = 3  # noisy steps before the measured one, so the preconditioner is not trivial


def expected_preconditioner(optimizer, index, before):
    """P_t written from the contract (GUIDE.md section 2), read off the optimizer's slots."""
    t = int(ops.convert_to_numpy(optimizer.iterations))  # already incremented: t = local step
    if isinstance(optimizer, kl.LSGD):
        return 1.0
    if isinstance(optimizer, (kl.LAdam, kl.LAdamW)):
        v = ops.convert_to_numpy(optimizer._velocities[index])
        b1, b2 = optimizer.beta_1, optimizer.beta_2
        return math.sqrt(1 - b2**t) / ((1 - b1**t) * (np.sqrt(v) + optimizer.epsilon))
    if isinstance(optimizer, kl.LNadam):
        v_hat = ops.convert_to_numpy(optimizer._velocities[index]) / (1 - optimizer.beta_2**t)
        return 1.0 / (np.sqrt(v_hat) + optimizer.epsilon)
    if isinstance(optimizer, kl.LRMSprop):
        v = ops.convert_to_numpy(optimizer._velocities[index])
        if optimizer.centered:
            v = v - ops.convert_to_numpy(optimizer._average_gradients[index]) ** 2
        return 1.0 / np.sqrt(v + optimizer.epsilon)
    if isinstance(optimizer, kl.LAdadelta):
        eg2 = ops.convert_to_numpy(optimizer._accumulated_grads[index])
        return np.sqrt(before[index] + optimizer.epsilon) / np.sqrt(eg2 + optimizer.epsilon)
    raise AssertionError(optimizer)


CASES = [
    (kl.LSGD, {}),
    (kl.LSGD, {"momentum": 0.9, "nesterov": True}),
    (kl.LAdam, {}),
    (kl.LAdam, {"amsgrad": True}),
    (kl.LRMSprop, {}),
    (kl.LRMSprop, {"centered": True}),
    (kl.LAdadelta, {}),
    # Without decay: AdamW's decay also scales the noise of earlier steps, whose P is much
    # larger where the first gradients were small; it moved the Rademacher |xi| off 1 by 2%.
    (kl.LAdamW, {"weight_decay": 0.0}),
    (kl.LAdamW, {"weight_decay": 0.0, "amsgrad": True}),
    (kl.LNadam, {}),
]


@pytest.mark.parametrize("noise", ["gaussian", "rademacher"])
@pytest.mark.parametrize("cls,options", CASES, ids=lambda c: getattr(c, "__name__", str(c)))
def test_increment_law(cls, options, noise):
    """Noisy minus noiseless increment = sigma * sqrt(lr * P) * xi with xi standard."""
    rng = np.random.default_rng(5)
    # Same gradients for both: the optimizer slots then coincide, and the two weight
    # trajectories differ by the accumulated noise only.
    grads = [[rng.standard_normal(s).astype("float32") for s in SHAPES] for _ in range(WARMUP + 1)]
    selected = ["v0", "v1"]  # v2 is not selected: it must get exactly the noiseless update
    noisy = cls(
        learning_rate=LR,
        sigma=SIGMA,
        seed=11,
        noise=noise,
        langevin_layers=lambda v: v.name in selected,
        **options,
    )
    clean = cls(learning_rate=LR, sigma=0.0, **options)
    noisy_vars, clean_vars = make_variables(0, SHAPES), make_variables(0, SHAPES)
    noisy.build(noisy_vars)
    clean.build(clean_vars)
    for step_grads in grads:
        before_noisy, before_clean = values(noisy_vars), values(clean_vars)
        slots_before = None
        if cls is kl.LAdadelta:
            slots_before = values(clean._accumulated_delta_vars)
        noisy.apply([ops.convert_to_tensor(g) for g in step_grads], noisy_vars)
        clean.apply([ops.convert_to_tensor(g) for g in step_grads], clean_vars)
    after_noisy, after_clean = values(noisy_vars), values(clean_vars)
    assert [v.name for v in noisy.langevin_variables] == selected

    np.testing.assert_array_equal(
        after_noisy[2] - before_noisy[2], after_clean[2] - before_clean[2]
    )
    for index in (0, 1):
        increment = (after_noisy[index] - before_noisy[index]) - (
            after_clean[index] - before_clean[index]
        )
        p = expected_preconditioner(clean, index, slots_before)
        xi = (increment / (SIGMA * np.sqrt(LR * p))).ravel()
        n = xi.size
        if index == 0:  # the large variable carries the statistics
            assert abs(xi.mean()) < 5 / math.sqrt(n)
            assert abs(xi.std() - 1) < 5 * math.sqrt(0.5 / n) + 1e-3
        else:
            assert np.all(np.abs(xi) < 6)
        if noise == "rademacher":
            np.testing.assert_allclose(np.abs(xi), 1.0, rtol=2e-3)


def test_lsgd_stationary_variance():
    """LSGD on f = theta^2 / 2: the Euler chain has stationary variance sigma^2 / (2 - gamma)."""
    gamma, sigma, n = 0.2, 1.0, 20_000
    variable = keras.Variable(np.zeros(n, "float32"))
    optimizer = kl.LSGD(learning_rate=gamma, sigma=sigma, seed=2)
    snapshots = []
    for step in range(1, 401):
        optimizer.apply([ops.copy(variable.value)], [variable])  # grad of theta^2 / 2 is theta
        if step > 100 and step % 30 == 0:  # 0.8^30 = 1e-3: nearly independent snapshots
            snapshots.append(ops.convert_to_numpy(variable).var())
    expected = sigma**2 / (2 - gamma)
    standard_error = expected * math.sqrt(2 / n) / math.sqrt(len(snapshots))
    assert abs(np.mean(snapshots) - expected) < 5 * standard_error


def _zero_gradient_increments(seed, steps=3, shapes=((64,), (64,)), optimizer_cls=kl.LSGD):
    variables = make_variables(0, shapes)
    optimizer = optimizer_cls(learning_rate=0.04, sigma=0.5, seed=seed)
    increments = []
    for _ in range(steps):
        before = values(variables)
        optimizer.apply([ops.zeros(s) for s in shapes], variables)
        increments.append([a - b for a, b in zip(values(variables), before)])
    return increments


def test_zero_gradient_increment_is_sigma_sqrt_lr_xi():
    increments = _zero_gradient_increments(seed=4, steps=1, shapes=((100_000,),))
    xi = increments[0][0] / (0.5 * math.sqrt(0.04))
    assert abs(xi.mean()) < 5 / math.sqrt(xi.size)
    assert abs(xi.std() - 1) < 5 * math.sqrt(0.5 / xi.size)


def test_noise_is_fresh_and_reproducible():
    first = _zero_gradient_increments(seed=4)
    again = _zero_gradient_increments(seed=4)
    other = _zero_gradient_increments(seed=5)
    for a, b in zip(first, again):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)  # same seed, same noise
    assert not np.allclose(first[0][0], other[0][0])  # another seed, other noise
    assert not np.allclose(first[0][0], first[1][0])  # another step
    assert not np.allclose(first[0][0], first[0][1])  # another variable of the same shape
    assert np.unique(first[0][0]).size == first[0][0].size  # every element its own draw
