"""LAdamW and LNadam: the preconditioner is the factor of Keras's own step.

An independent float64 numpy transcription of each Keras update (from its published formula)
is checked against Keras's optimizer on a few steps; from it, the step is split into
`lr * P_t * direction` (AdamW: Adam's `m_t` after the decoupled decay; Nadam: its
bias-corrected Nesterov estimate `m_hat_t`), and the `P_t` that the Langevin optimizer uses for
its noise must be that factor at every step.
"""

import math

import keras
import numpy as np
import pytest
from keras import ops

import keras_langevin as kl

pytestmark = pytest.mark.multibackend

SHAPE = (50,)
STEPS = 6
LR = 0.05


def _gradients():
    rng = np.random.default_rng(4)
    # Scales spread over 1e-4..1e1, so that epsilon matters for some elements. Float32
    # values, so that numpy and Keras start from the same numbers.
    scales = 10.0 ** rng.uniform(-4, 1, SHAPE)
    return [(scales * rng.standard_normal(SHAPE)).astype("float32") for _ in range(STEPS)]


def numpy_adamw(theta, grads, lr, weight_decay, beta_1, beta_2, epsilon, amsgrad):
    """Keras's AdamW, step by step: yields (theta after the step, step, direction, P)."""
    m, v, v_max = np.zeros_like(theta), np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        theta = theta - lr * weight_decay * theta  # decoupled decay, before the update
        m = m + (g - m) * (1 - beta_1)
        v = v + (g * g - v) * (1 - beta_2)
        v_max = np.maximum(v_max, v)
        root = np.sqrt(v_max if amsgrad else v)
        step = lr * math.sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (root + epsilon)
        preconditioner = math.sqrt(1 - beta_2**t) / ((1 - beta_1**t) * (root + epsilon))
        theta = theta - step
        yield theta, step, m, preconditioner


def numpy_nadam(theta, grads, lr, beta_1, beta_2, epsilon):
    """Keras's Nadam (momentum schedule u_t = beta_1 (1 - 0.96^t / 2)), step by step."""
    m, v, u_product = np.zeros_like(theta), np.zeros_like(theta), 1.0

    def u(t):
        return beta_1 * (1 - 0.5 * 0.96**t)

    for t, g in enumerate(grads, start=1):
        u_product *= u(t)
        m = m + (g - m) * (1 - beta_1)
        v = v + (g * g - v) * (1 - beta_2)
        m_hat = u(t + 1) * m / (1 - u_product * u(t + 1)) + (1 - u(t)) * g / (1 - u_product)
        v_hat = v / (1 - beta_2**t)
        step = lr * m_hat / (np.sqrt(v_hat) + epsilon)
        theta = theta - step
        yield theta, step, m_hat, 1.0 / (np.sqrt(v_hat) + epsilon)


def _recording(cls):
    class Recording(cls):
        """Records the preconditioner the noise is scaled with (eager: jit_compile=False)."""

        def _langevin_preconditioner(self, variable, index, pre_update):
            value = super()._langevin_preconditioner(variable, index, pre_update)
            self.recorded.append(np.array(ops.convert_to_numpy(value), dtype="float64"))
            return value

    return Recording


CASES = [
    pytest.param(kl.LAdamW, {}, id="LAdamW"),
    pytest.param(kl.LAdamW, {"amsgrad": True, "weight_decay": 0.1}, id="LAdamW-amsgrad"),
    pytest.param(kl.LAdamW, {"beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3}, id="LAdamW-betas"),
    pytest.param(kl.LNadam, {}, id="LNadam"),
    pytest.param(kl.LNadam, {"beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3}, id="LNadam-betas"),
]


def _reference(cls, options, theta0, grads):
    keras_optimizer = {kl.LAdamW: keras.optimizers.AdamW, kl.LNadam: keras.optimizers.Nadam}
    full = keras_optimizer[cls](learning_rate=LR, **options).get_config()
    if cls is kl.LAdamW:
        names = ("weight_decay", "beta_1", "beta_2", "epsilon", "amsgrad")
        return list(numpy_adamw(theta0, grads, LR, *(full[n] for n in names)))
    names = ("beta_1", "beta_2", "epsilon")
    return list(numpy_nadam(theta0, grads, LR, *(full[n] for n in names)))


@pytest.mark.parametrize("cls,options", CASES)
def test_preconditioner_is_the_factor_of_the_keras_step(cls, options):
    grads = _gradients()
    theta0 = np.random.default_rng(1).standard_normal(SHAPE).astype("float32")
    reference = _reference(cls, options, theta0.astype("float64"), grads)

    # The numpy transcription is Keras's update (float32 against float64: 1e-5 is about 100
    # float32 roundings of the weights, far below the step's 5e-2 and the decay's 2e-4).
    clean = keras.Variable(theta0)
    base = {kl.LAdamW: keras.optimizers.AdamW, kl.LNadam: keras.optimizers.Nadam}[cls]
    keras_optimizer = base(learning_rate=LR, **options)
    for g, (theta, step, direction, preconditioner) in zip(grads, reference):
        keras_optimizer.apply([ops.convert_to_tensor(g)], [clean])
        np.testing.assert_allclose(ops.convert_to_numpy(clean), theta, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(step, LR * preconditioner * direction, rtol=1e-12)

    # The optimizer's P_t is that factor at every step. The gradients do not depend on the
    # weights, so the noise leaves the moments, hence P_t, as in the noiseless run.
    optimizer = _recording(cls)(LR, sigma=0.1, seed=0, jit_compile=False, **options)
    optimizer.recorded = []
    noisy = keras.Variable(theta0)
    for g in grads:
        optimizer.apply([ops.convert_to_tensor(g)], [noisy])
    assert len(optimizer.recorded) == STEPS
    for recorded, (_, _, _, preconditioner) in zip(optimizer.recorded, reference):
        np.testing.assert_allclose(recorded, preconditioner, rtol=1e-4)


def test_the_check_tells_the_preconditioners_apart():
    """Adam's P_t (momentum m_t as the direction) is not Nadam's (m_hat_t): a Langevin Nadam
    with Adam's preconditioner would fail the test above, by a factor 1 / (1 - beta_1^t)."""
    grads = _gradients()
    theta0 = np.zeros(SHAPE)
    nadam = _reference(kl.LNadam, {}, theta0, grads)
    adam = list(numpy_adamw(theta0, grads, LR, 0.0, 0.9, 0.999, 1e-7, False))
    for t, ((*_, p_nadam), (*_, p_adam)) in enumerate(zip(nadam, adam), start=1):
        ratio = p_adam / p_nadam
        assert np.all(np.abs(ratio - 1) > 1e-2), t
    # And the decoupled decay is really in the AdamW reference: without it, other weights.
    with_decay = _reference(kl.LAdamW, {"weight_decay": 0.1}, np.ones(SHAPE), grads)
    without = _reference(kl.LAdamW, {"weight_decay": 0.0}, np.ones(SHAPE), grads)
    assert not np.allclose(with_decay[-1][0], without[-1][0], rtol=1e-3)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_nadam_schedule_advances_when_every_variable_is_noisy(jit_compile):
    """Nadam advances its momentum schedule once per step outside the variables' updates; the
    XLA-compiled noisy update (TensorFlow) must not skip it. With a tiny sigma the noisy
    optimizer stays next to Keras's Nadam (a skipped advance divides by 1 - 1 = 0)."""
    grads = _gradients()
    theta0 = np.random.default_rng(1).standard_normal(SHAPE).astype("float32")
    ours = kl.LNadam(LR, sigma=1e-9, seed=0, jit_compile=jit_compile)
    theirs = keras.optimizers.Nadam(LR)
    a, b = keras.Variable(theta0), keras.Variable(theta0)
    for g in grads:
        ours.apply([ops.convert_to_tensor(g)], [a])
        theirs.apply([ops.convert_to_tensor(g)], [b])
    assert [v.name for v in ours.langevin_variables] == [a.name]
    np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b), atol=1e-4)
