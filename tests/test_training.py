"""Properties 4, 5 and 8 inside model.fit: fresh noise, exact resume, mixed precision."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_langevin as kl

pytestmark = pytest.mark.multibackend

BATCHES = 6


def _data(n=BATCHES * 16, features=8, classes=3):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, features)).astype("float32"), rng.integers(0, classes, n)


def _probe_model():
    """A model whose 'probe' layer gets a zero gradient: its increments are pure noise."""
    inputs = keras.Input((8,))
    probe = keras.layers.Dense(4, name="probe")(inputs)
    zeroed = keras.layers.Lambda(lambda t: t * 0.0, name="zero")(probe)
    hidden = keras.layers.Dense(6, activation="relu", name="hidden")(inputs)
    merged = keras.layers.Concatenate()([hidden, zeroed])
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(merged))


class _RecordProbe(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.values = [np.array(ops.convert_to_numpy(self._kernel()), copy=True)]

    def _kernel(self):
        return self.model.get_layer("probe").kernel

    def on_train_batch_end(self, batch, logs=None):
        self.values.append(np.array(ops.convert_to_numpy(self._kernel()), copy=True))


@pytest.mark.parametrize("jit_compile", [False, True])
def test_noise_is_fresh_inside_fit(jit_compile):
    x, y = _data()
    increments = {}
    for seed in (1, 1, 2):
        keras.utils.set_random_seed(0)
        model = _probe_model()
        model.compile(kl.LSGD(0.04, sigma=0.5, seed=seed), "sparse_categorical_crossentropy",
                      jit_compile=jit_compile)
        recorder = _RecordProbe()
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[recorder])
        increments.setdefault(seed, []).append(np.diff(np.stack(recorder.values), axis=0))
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


def _classifier():
    return keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(16, activation="relu", name="d1"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.Dense(16, activation="relu", name="d2"),
        keras.layers.Dense(3, activation="softmax", name="out"),
    ])


def _compiled(optimizer):
    keras.utils.set_random_seed(0)
    model = _classifier()
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


OPTIMIZERS = [
    lambda: kl.LAdam(1e-2, sigma=kl.schedules.LogAnnealing(1e-2, 0.1), langevin_layers=0.5,
                     seed=3),
    lambda: kl.LSGD(0.05, momentum=0.9, sigma=0.02),  # seed None: drawn, then saved
    lambda: kl.LRMSprop(1e-2, centered=True, sigma=1e-2, seed=5),
    lambda: kl.LAdadelta(1.0, sigma=0.05, seed=6, noise="rademacher"),
]


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS)
def test_resume_through_keras_file_is_exact(make_optimizer, tmp_path):
    x, y = _data()
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


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    x, y = _data()
    keras.mixed_precision.set_global_policy(policy)
    try:
        noisy = _compiled(kl.LAdam(1e-2, sigma=1e-2, seed=0))
        if policy == "mixed_float16":
            assert isinstance(noisy.optimizer, keras.optimizers.LossScaleOptimizer)
            assert isinstance(noisy.optimizer.inner_optimizer, kl.LAdam)
        noisy.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
        clean = _compiled(kl.LAdam(1e-2, sigma=0.0))
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
