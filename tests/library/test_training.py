"""Inside model.fit: fresh noise at every step, exact resume through a .keras file, mixed
precision, and the epsilon remedy for embedding rows no batch uses."""

import math

import keras
import numpy as np
import pytest
from helpers import ProbeRecorder, classification_data, dense_classifier, probe_model
from keras import ops

import keras_langevin as kl

pytestmark = pytest.mark.multibackend

BATCHES = 6


@pytest.mark.parametrize("jit_compile", [False, True])
def test_noise_is_fresh_inside_fit(jit_compile):
    x, y = classification_data(BATCHES * 16)
    increments = {}
    for seed in (1, 1, 2):
        keras.utils.set_random_seed(0)
        model = probe_model()
        model.compile(
            kl.LSGD(0.04, sigma=0.5, seed=seed),
            "sparse_categorical_crossentropy",
            jit_compile=jit_compile,
        )
        recorder = ProbeRecorder()
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[recorder])
        increments.setdefault(seed, []).append(recorder.increments())
    steps = increments[1][0]
    assert steps.shape[0] == BATCHES
    # Zero gradient: each increment is 0.5 * sqrt(0.04) * xi, xi ~ N(0, 1), 32 draws per step.
    xi = steps / (0.5 * 0.2)
    assert np.all(np.abs(xi) < 6) and 0.5 < xi.std() < 1.5
    for a in range(BATCHES):
        for b in range(a + 1, BATCHES):
            assert not np.allclose(steps[a], steps[b]), "the same noise at two steps"
    np.testing.assert_array_equal(increments[1][0], increments[1][1])  # same seed
    assert not np.allclose(increments[1][0], increments[2][0])  # other seed


def _compiled(optimizer):
    return dense_classifier(optimizer, hidden=(16, 16), batch_norm=True, metrics=["accuracy"])


OPTIMIZERS = [
    lambda: kl.LAdam(1e-2, sigma=kl.schedules.LogAnnealing(1e-2, 0.1), langevin_layers=0.5, seed=3),
    lambda: kl.LSGD(0.05, momentum=0.9, sigma=0.02),  # seed None: drawn, then saved
    lambda: kl.LRMSprop(1e-2, centered=True, sigma=1e-2, seed=5),
    lambda: kl.LAdadelta(1.0, sigma=0.05, seed=6, noise="rademacher"),
    lambda: kl.LAdamW(1e-2, 0.01, amsgrad=True, sigma=1e-2, seed=7),
    lambda: kl.LNadam(1e-2, sigma=1e-2, seed=8),
    lambda: kl.LSGHMC(0.05, 0.9, sigma=0.05, seed=9),
]


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS)
def test_resume_through_keras_file_is_exact(make_optimizer, tmp_path):
    x, y = classification_data(BATCHES * 16)
    straight = _compiled(make_optimizer())
    straight.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)

    first = _compiled(make_optimizer())
    first.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    path = str(tmp_path / "half.keras")
    first.save(path)
    keras.backend.clear_session()
    resumed = keras.models.load_model(path, safe_mode=True)
    assert type(resumed.optimizer) is type(first.optimizer)
    assert resumed.optimizer.get_config() == first.optimizer.get_config()
    resumed.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)

    assert int(ops.convert_to_numpy(resumed.optimizer.iterations)) == 2 * BATCHES
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    # The noise did something: a noiseless run ends elsewhere.
    clean = _compiled(type(make_optimizer())(**{**make_optimizer().get_config(), "sigma": 0.0}))
    clean.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert not np.allclose(clean.get_weights()[0], straight.get_weights()[0])


@pytest.mark.parametrize("cls", [kl.LAdam, kl.LAdamW, kl.LNadam, kl.LSGHMC])
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_float32_weights_finite_and_noisy(policy, cls):
    x, y = classification_data(BATCHES * 16)
    keras.mixed_precision.set_global_policy(policy)
    try:
        noisy = _compiled(cls(1e-2, sigma=1e-2, seed=0))
        if policy == "mixed_float16":
            assert isinstance(noisy.optimizer, keras.optimizers.LossScaleOptimizer)
            assert isinstance(noisy.optimizer.inner_optimizer, cls)
        noisy.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
        clean = _compiled(cls(1e-2, sigma=0.0))
        clean.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for a, b in zip(noisy.trainable_weights, clean.trainable_weights):
        assert a.dtype == "float32"
        a, b = ops.convert_to_numpy(a), ops.convert_to_numpy(b)
        assert np.all(np.isfinite(a))
        assert not np.allclose(a, b)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_variables_get_noise_in_their_dtype(dtype):
    variable = keras.Variable(np.zeros(1000), dtype=dtype)
    optimizer = kl.LSGD(0.01, sigma=1.0, seed=0)
    optimizer.apply([ops.zeros(1000, dtype=dtype)], [variable])
    assert keras.backend.standardize_dtype(variable.dtype) == dtype
    values = ops.convert_to_numpy(ops.cast(variable, "float32"))
    assert np.all(np.isfinite(values)) and 0.07 < values.std() < 0.13  # sigma * sqrt(lr) = 0.1


def _embedding_model(vocabulary=50):
    return keras.Sequential(
        [
            keras.Input((4,), dtype="int32"),
            keras.layers.Embedding(vocabulary, 8, name="embedding"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax", name="out"),
        ]
    )


def _unseen_rows_walk(optimizer, steps=8, seen=10):
    """RMS displacement of the embedding rows no batch ever uses, and their initial RMS."""
    keras.utils.set_random_seed(0)
    model = _embedding_model()
    model.compile(optimizer, "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.integers(0, seen, (steps * 8, 4)).astype("int32")
    y = rng.integers(0, 3, steps * 8)
    before = np.array(ops.convert_to_numpy(model.get_layer("embedding").embeddings))[seen:]
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    after = np.array(ops.convert_to_numpy(model.get_layer("embedding").embeddings))[seen:]
    return float(np.sqrt(np.mean((after - before) ** 2))), float(np.sqrt(np.mean(before**2)))


def _adam_noise_rms(sigma, lr, epsilon, steps, beta_1=0.9, beta_2=0.999):
    """RMS of the summed noise where v_t = 0: P_t = sqrt(1 - b2^t) / ((1 - b1^t) epsilon)."""
    variance = sum(
        sigma**2 * lr * math.sqrt(1 - beta_2**t) / ((1 - beta_1**t) * epsilon)
        for t in range(1, steps + 1)
    )
    return math.sqrt(variance)


def test_ladam_epsilon_remedy_bounds_the_walk_of_unseen_embedding_rows():
    lr = sigma = 5e-3
    trap, scale = _unseen_rows_walk(kl.LAdam(lr, sigma=sigma, seed=0))
    assert trap > 10 * scale  # the default epsilon: the rows walk far (the documented trap)
    walk, scale = _unseen_rows_walk(kl.LAdam(lr, epsilon=1e-3, sigma=sigma, seed=0))
    bound = _adam_noise_rms(sigma, lr, 1e-3, steps=8)
    assert walk < 1.5 * bound and walk < scale
    # Excluding the embedding from the noise: the unseen rows do not move at all.
    still, _ = _unseen_rows_walk(kl.LAdam(lr, sigma=sigma, seed=0, langevin_layers=["out"]))
    assert still == 0.0
    assert "epsilon" in kl.LAdam.__doc__ and "embedding" in kl.LAdam.__doc__  # documented
