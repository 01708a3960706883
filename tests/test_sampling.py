"""keras_langevin.sampling: posterior sigma, cyclical schedules, the sample collector, the
ensemble and the calibration metrics. The statistical tests of the sampler itself are in
test_sampling_posterior.py."""

import json
import math

import keras
import numpy as np
import pytest
from keras import ops

import keras_langevin as kl
from keras_langevin import sampling

pytestmark = pytest.mark.multibackend

# ------------------------------------------------------------------------ posterior sigma


def test_posterior_sigma():
    assert sampling.posterior_sigma(200) == pytest.approx(math.sqrt(2 / 200))
    assert sampling.posterior_sigma(200, 0.5) == pytest.approx(math.sqrt(1 / 200))
    assert sampling.posterior_sigma(200, momentum=0.9) == pytest.approx(math.sqrt(2 / 20))


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"num_examples": 0}, "num_examples"),
        ({"num_examples": 1.5}, "num_examples"),
        ({"num_examples": 10, "temperature": 0.0}, "temperature"),
        ({"num_examples": 10, "temperature": float("nan")}, "temperature"),
        ({"num_examples": 10, "momentum": 1.0}, "momentum"),
    ],
)
def test_posterior_sigma_rejects_bad_input(kwargs, argument):
    with pytest.raises(ValueError, match=f"Argument `{argument}`.*Received: {argument}="):
        sampling.posterior_sigma(**kwargs)


# ------------------------------------------------------------------- cyclical schedules


def _values(schedule, steps):
    return np.array([float(ops.convert_to_numpy(schedule(step))) for step in steps])


def test_cyclical_cosine_decay_restarts_every_cycle():
    schedule = sampling.CyclicalCosineDecay(0.1, cycle_steps=8)
    steps = np.arange(24)
    expected = 0.05 * (np.cos(np.pi * (steps % 8) / 8) + 1)
    np.testing.assert_allclose(_values(schedule, steps), expected, rtol=1e-6, atol=1e-8)  # float32
    assert _values(schedule, [0, 8, 16]).tolist() == pytest.approx([0.1] * 3)
    assert schedule.cycle_ends(20) == [8, 16]


def test_cyclical_sigma_is_exactly_zero_in_exploration():
    schedule = sampling.CyclicalSigma(0.3, cycle_steps=10, exploration_fraction=0.7)
    assert schedule.exploration_steps == 7  # 0.7 * 10 is 7.000000000000001 in floating point
    steps = np.arange(30)
    values = _values(schedule, steps)
    exploring = steps % 10 < 7
    assert np.all(values[exploring] == 0.0)  # exactly zero
    np.testing.assert_allclose(values[~exploring], 0.3, rtol=1e-7)
    assert [schedule.is_sampling(s) for s in range(10)] == [False] * 7 + [True] * 3


def test_cyclical_sigma_sampling_epochs():
    # 4 steps per epoch, cycles of 3 epochs, exploration the first 2/3: the cycle ends.
    schedule = sampling.CyclicalSigma(0.1, cycle_steps=12, exploration_fraction=2 / 3)
    assert schedule.sampling_epochs(4, 9) == [3, 6, 9]
    assert schedule.sampling_epochs(4, 8) == [3, 6]
    # Two samples per cycle need two epoch ends in each sampling part.
    wide = sampling.CyclicalSigma(0.1, cycle_steps=12, exploration_fraction=0.25)
    assert wide.sampling_epochs(4, 9, samples_per_cycle=2) == [2, 3, 5, 6, 8, 9]
    with pytest.raises(ValueError, match="Argument `samples_per_cycle`"):
        schedule.sampling_epochs(4, 9, samples_per_cycle=2)


@pytest.mark.parametrize(
    "make,argument",
    [
        (lambda: sampling.CyclicalCosineDecay(0.0, 10), "initial_learning_rate"),
        (lambda: sampling.CyclicalCosineDecay(0.1, 0), "cycle_steps"),
        (lambda: sampling.CyclicalSigma(-1.0, 10, 0.5), "sigma"),
        (lambda: sampling.CyclicalSigma(0.1, 10, 1.0), "exploration_fraction"),
        (lambda: sampling.CyclicalSigma(0.1, 2.5, 0.5), "cycle_steps"),
    ],
)
def test_cyclical_schedules_reject_bad_input(make, argument):
    with pytest.raises(ValueError, match=f"Argument `{argument}`.*Received: {argument}="):
        make()


def test_cyclical_schedules_serialize_and_drive_an_optimizer():
    lr = sampling.CyclicalCosineDecay(0.05, cycle_steps=6)
    sigma = sampling.CyclicalSigma(0.2, cycle_steps=6, exploration_fraction=0.5)
    for schedule in (lr, sigma):
        config = keras.optimizers.schedules.serialize(schedule)
        assert config["registered_name"].startswith("keras_langevin>")
        again = keras.optimizers.schedules.deserialize(json.loads(json.dumps(config)))
        assert type(again) is type(schedule) and again.get_config() == schedule.get_config()
    optimizer = kl.LSGD(learning_rate=lr, sigma=sigma, seed=3)
    restored = kl.LSGD.from_config(json.loads(json.dumps(optimizer.get_config())))
    assert restored.get_config() == optimizer.get_config()


def test_cyclical_noise_adds_exactly_nothing_in_exploration():
    """LSGD with CyclicalSigma equals the noiseless LSGD, bit for bit, in every exploration
    step, and differs from it in the sampling steps."""
    cycle, steps = 6, 18
    sigma = sampling.CyclicalSigma(0.5, cycle_steps=cycle, exploration_fraction=0.5)
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((steps, 50)).astype("float32")
    trajectories = []
    for s in (sigma, 0.0):
        variable = keras.Variable(np.zeros(50, "float32"))
        lr = sampling.CyclicalCosineDecay(0.1, cycle_steps=cycle)
        # jit_compile=False: the drift of both then runs the same (Keras's) ops, so the
        # trajectories can be compared bit for bit; with XLA they differ by rounding.
        optimizer = kl.LSGD(learning_rate=lr, sigma=s, seed=1, jit_compile=False)
        trajectory = []
        for g in grads:
            optimizer.apply([ops.convert_to_tensor(g)], [variable])
            trajectory.append(np.array(ops.convert_to_numpy(variable)))
        trajectories.append(trajectory)
    noisy, clean = trajectories
    for step in range(steps):
        if step < cycle // 2:  # before any noise: identical
            np.testing.assert_array_equal(noisy[step], clean[step])
        increment_noisy = noisy[step] - (noisy[step - 1] if step else 0.0)
        increment_clean = clean[step] - (clean[step - 1] if step else 0.0)
        if sigma.is_sampling(step):
            assert not np.allclose(increment_noisy, increment_clean)
        else:  # the drift alone: the same increment as without noise
            np.testing.assert_allclose(increment_noisy, increment_clean, rtol=1e-5, atol=1e-7)
