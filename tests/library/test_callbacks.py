"""sigma in the logs (keras_langevin.callbacks), sigma settable like the learning rate, and the
Langevin attributes through Keras's LossScaleOptimizer."""

import csv
import math

import keras
import numpy as np
import pytest
from helpers import ProbeRecorder, classification_data, probe_model
from keras import ops

import keras_langevin as kl

pytestmark = pytest.mark.multibackend

BATCHES = 4


class _SetSigma(ProbeRecorder):
    """Sets sigma at the start of given epochs and records the probe kernel."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        if epoch in self.schedule:
            self.model.optimizer.sigma = self.schedule[epoch]


def test_sigma_is_settable_during_fit():
    x, y = classification_data(BATCHES * 16)
    model = probe_model()
    model.compile(kl.LSGD(0.04, sigma=0.5, seed=1), "sparse_categorical_crossentropy")
    setter = _SetSigma({1: 0.05, 2: 0.0})
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=3,
        shuffle=False,
        verbose=0,
        callbacks=[setter, kl.callbacks.SigmaLogger()],
    )
    steps = setter.increments()  # one per batch, 3 epochs of BATCHES
    assert steps.shape[0] == 3 * BATCHES
    first, second, third = steps[:BATCHES], steps[BATCHES : 2 * BATCHES], steps[2 * BATCHES :]
    # Zero gradient: increments are sigma * sqrt(0.04) * xi.
    assert 0.5 < first.std() / (0.5 * 0.2) < 1.5
    assert 0.5 < second.std() / (0.05 * 0.2) < 1.5
    assert np.all(third == 0.0)
    np.testing.assert_allclose(history.history["sigma"], [0.5, 0.05, 0.0], rtol=1e-6)


def test_sigma_logger_writes_history_and_csv(tmp_path):
    x, y = classification_data(BATCHES * 16)
    schedule = kl.schedules.LogAnnealing(0.1, decay=0.5)
    model = probe_model()
    model.compile(kl.LAdam(1e-2, sigma=schedule, seed=0), "sparse_categorical_crossentropy")
    path = tmp_path / "log.csv"
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        verbose=0,
        callbacks=[kl.callbacks.SigmaLogger(), keras.callbacks.CSVLogger(path)],
    )
    # The mean over each epoch's updates, at steps 4 (e - 1), ..., 4 e - 1.
    expected = [
        np.mean([0.1 / math.sqrt(math.log(math.e + 0.5 * t)) for t in range(4 * e - 4, 4 * e)])
        for e in (1, 2)
    ]
    np.testing.assert_allclose(history.history["sigma"], expected, rtol=1e-5)
    with open(path) as f:
        rows = list(csv.DictReader(f))
    np.testing.assert_allclose([float(r["sigma"]) for r in rows], expected, rtol=1e-5)


@pytest.mark.parametrize("exploration,expected", [(0.5, 0.3), (0.75, 0.15)])
def test_sigma_logger_logs_the_mean_of_a_cyclical_sigma(exploration, expected):
    """Cycles of 2 epochs (8 steps, 4 per epoch) whose sampling part lies in the second epoch:
    the log shows the mean sigma of the epoch's updates (0.3 on all 4, or on 2 of 4), where
    the value at the epoch's last step count (the next cycle's first step) is 0."""
    x, y = classification_data(BATCHES * 16)
    model = probe_model()
    sigma = kl.sampling.CyclicalSigma(0.3, cycle_steps=8, exploration_fraction=exploration)
    model.compile(kl.LSGD(0.01, sigma=sigma, seed=0), "sparse_categorical_crossentropy")
    logger = kl.callbacks.SigmaLogger()
    history = model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[logger])
    np.testing.assert_allclose(history.history["sigma"], [0, expected, 0, expected], rtol=1e-6)
    assert kl.callbacks.current_sigma(model.optimizer) == 0.0  # step 16: a new cycle
    # A schedule that does not map over a vector of steps is evaluated step by step.
    scalar = keras.optimizers.schedules.PiecewiseConstantDecay([5], [0.2, 0.1])
    assert kl.callbacks.mean_sigma(scalar, 4, 8) == pytest.approx((0.2 * 2 + 0.1 * 2) / 4)


def test_sigma_logger_with_plain_keras_optimizer_logs_zero():
    x, y = classification_data(BATCHES * 16)
    model = probe_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=1, verbose=0, callbacks=[kl.callbacks.SigmaLogger("noise")])
    assert history.history["noise"] == [0.0]
    with pytest.raises(ValueError, match="key=''"):
        kl.callbacks.SigmaLogger("")


def test_sigma_setter_rules():
    optimizer = kl.LAdam(sigma=0.1)
    optimizer.sigma = 1e-3
    assert float(ops.convert_to_numpy(optimizer.sigma)) == pytest.approx(1e-3)
    assert optimizer.get_config()["sigma"] == pytest.approx(1e-3)
    optimizer.sigma = 0.0  # pauses the noise
    with pytest.raises(ValueError, match="sigma=-1"):
        optimizer.sigma = -1
    with pytest.raises(TypeError, match="schedule"):
        optimizer.sigma = kl.schedules.LogAnnealing(0.1, 1.0)
    keras_exact = kl.LAdam()
    keras_exact.sigma = 0.0  # no change: allowed
    with pytest.raises(ValueError, match=r"constructed with sigma=0.*Received: sigma=0.001"):
        keras_exact.sigma = 1e-3
    scheduled = kl.LAdam(sigma=kl.schedules.LogAnnealing(0.1, 1.0))
    with pytest.raises(TypeError, match="not settable"):
        scheduled.sigma = 0.1


def test_sigma_set_before_saving_is_restored(tmp_path):
    x, y = classification_data(BATCHES * 16)
    model = probe_model()
    model.compile(kl.LRMSprop(1e-2, sigma=0.1, seed=0), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    model.optimizer.sigma = 0.02
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=False)  # the Lambda layer
    assert float(ops.convert_to_numpy(loaded.optimizer.sigma)) == pytest.approx(0.02)
    loaded.optimizer.sigma = 0.5  # still settable
    loaded.fit(x, y, epochs=1, verbose=0)


def test_langevin_attributes_under_mixed_float16():
    x, y = classification_data(BATCHES * 16)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = probe_model()
        model.compile(kl.LayerLAdam(1e-2, sigma=1e-2, seed=0), "sparse_categorical_crossentropy")
        history = model.fit(
            x, y, batch_size=16, epochs=1, verbose=0, callbacks=[kl.callbacks.SigmaLogger()]
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    inner = kl.langevin_optimizer(model.optimizer)
    assert isinstance(inner, kl.LayerLAdam) and inner is model.optimizer.inner_optimizer
    assert [v.path for v in inner.langevin_variables] == ["probe/kernel", "probe/bias"]
    assert history.history["sigma"] == [pytest.approx(1e-2)]
    inner.sigma = 1e-3
    assert kl.callbacks.current_sigma(model.optimizer) == pytest.approx(1e-3)
    assert kl.langevin_optimizer(inner) is inner
    with pytest.raises(ValueError, match="optimizer="):
        kl.langevin_optimizer(keras.optimizers.Adam())
