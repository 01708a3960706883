"""keras_langevin.sampling: posterior sigma, cyclical schedules, the sample collector, the
ensemble and the calibration metrics. The statistical tests of the sampler itself are in
test_sampling_posterior.py."""

import json
import math
import os
import shutil

import h5py
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
        ({"num_examples": 10, "temperature": 0.0}, "temperature"),
        ({"num_examples": 10, "temperature": float("nan")}, "temperature"),
        ({"num_examples": 10, "momentum": 1.0}, "momentum"),
    ],
)
def test_posterior_sigma_rejects_bad_input(kwargs, argument):
    with pytest.raises(ValueError, match=f"Argument `{argument}`.*Received: {argument}="):
        sampling.posterior_sigma(**kwargs)


@pytest.mark.parametrize(
    "make,argument",
    [
        (lambda: sampling.posterior_sigma(1.5), "num_examples"),
        (lambda: sampling.posterior_sigma(10, "1"), "temperature"),
        (lambda: sampling.CyclicalSigma(0.1, 2.5, 0.5), "cycle_steps"),
        (lambda: sampling.CyclicalCosineDecay(None, 10), "initial_learning_rate"),
        (lambda: sampling.PosteriorSampler("d", max_samples=2.0), "max_samples"),
    ],
)
def test_wrong_types_raise_type_error(make, argument):
    with pytest.raises(TypeError, match=f"Argument `{argument}`.*Received: {argument}="):
        make()


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


# -------------------------------------------------------------------------- the sampler

NUM_EXAMPLES = 64


def _data(seed=0):
    """Not helpers.classification_data: labels a model can learn (a posterior with structure)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((NUM_EXAMPLES, 4)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int64") + (x[:, 2] > 1).astype("int64")
    return x, y


def _model(seed=0, sigma=None, learning_rate=0.05, compile=True):
    """A small classifier with BatchNormalization; the same initial weights for a seed.

    Not helpers.dense_classifier: 4 inputs, a BatchNormalization without trainable weights whose
    stored moving statistics the sample files are checked for, and a posterior-sigma LSGD."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu", name="hidden"),
            keras.layers.BatchNormalization(center=False, scale=False, name="norm"),
            keras.layers.Dense(3, activation="softmax", name="out"),
        ],
        name="classifier",
    )
    if not compile:
        return model
    if sigma is None:
        sigma = sampling.posterior_sigma(NUM_EXAMPLES)
    # Without XLA: compiling the update costs seconds per model and is not under test here
    # (the XLA update runs in test_sampling_posterior.py).
    optimizer = kl.LSGD(learning_rate=learning_rate, sigma=sigma, seed=5, jit_compile=False)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


class _Recorder(keras.callbacks.Callback):
    """The model's weights at the end of every epoch (counted from 1)."""

    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch + 1] = [np.array(w) for w in self.model.get_weights()]


def _sample_weights(model, path):
    """The weights stored in a sample file, loaded into a copy of the model."""
    copy = _model(compile=False)
    copy.load_weights(path)
    return copy.get_weights()


def test_sampler_collects_after_burn_in_every_k_epochs(tmp_path):
    x, y = _data()
    model = _model()
    sampler = sampling.PosteriorSampler(tmp_path / "samples", burn_in_epochs=2, every_epochs=2)
    recorder = _Recorder()
    model.fit(
        x, y, batch_size=16, epochs=7, verbose=0, shuffle=False, callbacks=[sampler, recorder]
    )
    samples = sampling.load_samples(tmp_path / "samples")
    assert [s.epoch for s in samples] == [4, 6]
    assert [s.step for s in samples] == [16, 24]  # 4 steps per epoch
    assert samples == sampler.samples
    names = sorted(os.listdir(tmp_path / "samples"))
    assert names == ["epoch_000004.weights.h5", "epoch_000006.weights.h5", "manifest.json"]
    for sample in samples:
        stored = _sample_weights(model, sample.path)
        for a, b in zip(stored, recorder.weights[sample.epoch]):
            np.testing.assert_array_equal(a, b)
        with h5py.File(sample.path) as f:
            assert "optimizer" not in f  # the model's weights only
            assert len(f["layers"]["batch_normalization"]["vars"]) == 2  # moving stats
    # BatchNormalization's moving statistics moved away from their initial values.
    moving_mean = _sample_weights(model, samples[0].path)[2]
    assert model.layers[1].weights[0].path.endswith("moving_mean")
    assert np.abs(moving_mean).max() > 1e-3


def test_several_fits_sample_as_one_long_fit(tmp_path):
    """Epochs are counted with the optimizer's steps: two fits of 3 epochs take the samples
    (epochs, steps and weights) of one fit of 6, burn-in included."""
    x, y = _data()
    runs = {}
    for name, calls in (("long", [6]), ("split", [3, 3])):
        model = _model()
        directory = tmp_path / name
        for epochs in calls:
            sampler = sampling.PosteriorSampler(directory, burn_in_epochs=4)
            model.fit(
                x, y, batch_size=16, epochs=epochs, verbose=0, shuffle=False, callbacks=[sampler]
            )
        runs[name] = (model, sampling.load_samples(directory))
    (model, long), (_, split) = runs["long"], runs["split"]
    assert [s.epoch for s in split] == [s.epoch for s in long] == [5, 6]
    assert [s.step for s in split] == [s.step for s in long] == [20, 24]
    for a, b in zip(long, split):
        for u, v in zip(_sample_weights(model, a.path), _sample_weights(model, b.path)):
            np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"burn_in_epochs": -1}, "burn_in_epochs"),
        ({"every_epochs": 0}, "every_epochs"),
        ({"max_samples": 0}, "max_samples"),
        ({"epochs": [0, 2]}, "epochs"),
        ({"verbose": 2}, "verbose"),
    ],
)
def test_sampler_rejects_bad_input(tmp_path, kwargs, argument):
    with pytest.raises(ValueError, match=f"Argument `{argument}`.*Received: {argument}="):
        sampling.PosteriorSampler(tmp_path, **kwargs)
    with pytest.raises(TypeError, match="Argument `directory`"):
        sampling.PosteriorSampler(3)


def test_sampler_restarted_in_the_same_directory_keeps_its_samples(tmp_path):
    """A second fit in the same directory keeps the samples, continues the epoch count, and
    stops at `max_samples` (which may change); leftovers of a crashed write are removed."""
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=3, verbose=0, callbacks=[sampling.PosteriorSampler(tmp_path)])
    first = sampling.load_samples(tmp_path)
    assert [s.epoch for s in first] == [1, 2, 3]
    (tmp_path / ".tmp-epoch_000004.weights.h5").write_bytes(b"cut short")  # a crashed write
    again = sampling.PosteriorSampler(tmp_path, max_samples=4)
    assert again.samples == first  # read at construction
    model.fit(x, y, epochs=3, verbose=0, callbacks=[again])
    assert [s.epoch for s in again.samples] == [1, 2, 3, 4]  # epoch 4, then the cap
    assert again.samples[:3] == first
    assert again.samples == sampling.load_samples(tmp_path)
    assert not any(name.startswith(".tmp-") for name in os.listdir(tmp_path))


@pytest.fixture(scope="module")
def two_sample_directory(tmp_path_factory):
    """The samples of a 2-epoch run of `_model()` (sigma for 64 examples, seed 5), made once for
    the tests that check which later runs may continue it; each test works on a copy."""
    directory = tmp_path_factory.mktemp("two_samples") / "samples"
    x, y = _data()
    _model().fit(x, y, epochs=2, verbose=0, callbacks=[sampling.PosteriorSampler(directory)])
    assert [s.epoch for s in sampling.load_samples(directory)] == [1, 2]
    return directory


def _copy_of(directory, tmp_path):
    copy = tmp_path / "samples"
    shutil.copytree(directory, copy)
    return copy


@pytest.mark.parametrize(
    "sampler_kwargs,optimizer_kwargs,named",
    [
        ({"burn_in_epochs": 1}, {}, "burn_in_epochs: 0 there, 1 now"),
        ({"every_epochs": 2}, {}, "every_epochs: 1 there, 2 now"),
        ({"epochs": [2, 4]}, {}, "epochs: None there, [2, 4] now"),
        ({}, {"momentum": 0.5}, "optimizer momentum: 0.0 there, 0.5 now"),
        ({}, {"seed": 6}, "optimizer seed: 5 there, 6 now"),
    ],
)
def test_sampler_refuses_the_directory_of_another_run(
    two_sample_directory, tmp_path, sampler_kwargs, optimizer_kwargs, named
):
    """Samples of a run with other settings are not silently kept: fit refuses the directory
    and names each differing setting."""
    directory = _copy_of(two_sample_directory, tmp_path)
    x, y = _data()
    other = _model(compile=False)
    optimizer = {"learning_rate": 0.05, "sigma": 0.1, "seed": 5, "jit_compile": False}
    optimizer.update(optimizer_kwargs)
    other.compile(kl.LSGD(**optimizer), loss="sparse_categorical_crossentropy")
    sampler = sampling.PosteriorSampler(directory, **sampler_kwargs)
    with pytest.raises(ValueError, match="another run") as error:
        other.fit(x, y, epochs=1, verbose=0, callbacks=[sampler])
    assert named in str(error.value) and str(directory) in str(error.value)
    assert len(sampling.load_samples(directory)) == 2  # nothing written or deleted


def test_sampler_continues_its_run_after_settable_values_change(tmp_path):
    """The learning rate and sigma set between fits (the noise paused, then resumed) are not
    another run: the directory is continued."""
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[sampling.PosteriorSampler(tmp_path)])
    model.optimizer.learning_rate = 0.01
    model.optimizer.sigma = 0.0  # paused: get_config says so
    with pytest.warns(UserWarning, match="sigma=0"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[sampling.PosteriorSampler(tmp_path)])
    model.optimizer.sigma = 0.05
    model.fit(x, y, epochs=1, verbose=0, callbacks=[sampling.PosteriorSampler(tmp_path)])
    assert [s.epoch for s in sampling.load_samples(tmp_path)] == [1, 2, 3]


def test_sampler_refuses_samples_of_a_model_with_other_shapes(two_sample_directory, tmp_path):
    directory = _copy_of(two_sample_directory, tmp_path)
    x, y = _data()
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    other.compile(
        optimizer=kl.LSGD(learning_rate=0.1, sigma=0.1), loss="sparse_categorical_crossentropy"
    )
    with pytest.raises(ValueError, match="other weight shapes"):
        other.fit(x, y, epochs=1, verbose=0, callbacks=[sampling.PosteriorSampler(directory)])


class _Crash(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch  # counted from 1

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise RuntimeError("simulated crash")


def _sampling_run(root, crash_at=None):
    x, y = _data()
    model = _model()
    callbacks = [sampling.PosteriorSampler(root / "samples", burn_in_epochs=1)]
    if crash_at is not None:
        # After the sampler wrote the sample of this epoch, before the backup of this epoch.
        callbacks.append(_Crash(crash_at))
    callbacks.append(keras.callbacks.BackupAndRestore(str(root / "backup")))
    model.fit(x, y, batch_size=16, epochs=6, verbose=0, shuffle=False, callbacks=callbacks)
    return model


def test_killed_and_restarted_run_has_the_same_samples_and_predictions(tmp_path):
    """A run killed after epoch 4 and restarted (BackupAndRestore, same directory) ends
    with the same sample files and ensemble predictions as an uninterrupted run."""
    _sampling_run(tmp_path / "whole")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _sampling_run(tmp_path / "cut", crash_at=4)
    assert [s.epoch for s in sampling.load_samples(tmp_path / "cut" / "samples")] == [2, 3, 4]
    # The restart: a new process would build the model again; the backup restores the
    # weights, the optimizer (its noise seed and step included) and the epoch.
    (tmp_path / "cut" / "samples" / ".tmp-epoch_000005.weights.h5").write_bytes(b"")
    model = _sampling_run(tmp_path / "cut")
    whole = sampling.load_samples(tmp_path / "whole" / "samples")
    cut = sampling.load_samples(tmp_path / "cut" / "samples")
    assert [s.epoch for s in cut] == [s.epoch for s in whole] == [2, 3, 4, 5, 6]
    assert [s.step for s in cut] == [s.step for s in whole]
    for a, b in zip(whole, cut):
        for u, v in zip(_sample_weights(model, a.path), _sample_weights(model, b.path)):
            np.testing.assert_array_equal(u, v)
    x, _ = _data(seed=1)
    whole_prediction = sampling.PosteriorEnsemble(model, whole).predict(x)
    cut_prediction = sampling.PosteriorEnsemble(model, tmp_path / "cut" / "samples").predict(x)
    np.testing.assert_array_equal(whole_prediction, cut_prediction)


def test_cyclical_run_samples_at_the_cycle_ends(tmp_path):
    """With cyclical schedules the sampler takes its samples where asked: at the last
    epoch of each cycle, whose updates all carry the posterior noise."""
    x, y = _data()
    steps_per_epoch, epochs, cycle_epochs = 4, 9, 3
    cycle_steps = cycle_epochs * steps_per_epoch
    sigma = sampling.CyclicalSigma(
        sampling.posterior_sigma(NUM_EXAMPLES), cycle_steps, exploration_fraction=2 / 3
    )
    model = _model(sigma=sigma, learning_rate=sampling.CyclicalCosineDecay(0.1, cycle_steps))
    wanted = sigma.sampling_epochs(steps_per_epoch, epochs)
    assert wanted == [3, 6, 9]
    sampler = sampling.PosteriorSampler(tmp_path, epochs=wanted)
    recorder = _Recorder()
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=[sampler, recorder])
    assert [s.epoch for s in sampler.samples] == wanted
    assert [s.step for s in sampler.samples] == sigma.cycle_ends(epochs * steps_per_epoch)
    for sample in sampler.samples:
        last_epoch_updates = range(sample.step - steps_per_epoch, sample.step)
        assert all(sigma.is_sampling(t) for t in last_epoch_updates)
        for a, b in zip(_sample_weights(model, sample.path), recorder.weights[sample.epoch]):
            np.testing.assert_array_equal(a, b)
    # The last sample is the trained model (on JAX: the state was synced before sampling).
    for a, b in zip(_sample_weights(model, sampler.samples[-1].path), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(recorder.weights[8][0], recorder.weights[9][0])


# ------------------------------------------------------------------------- the ensemble


def _manual_probabilities(paths, x):
    copy = _model(compile=False)
    result = []
    for path in paths:
        copy.load_weights(path)
        result.append(np.asarray(copy.predict(x, verbose=0), dtype="float64"))
    return np.stack(result)


def _entropy(p):
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), axis=-1)


def test_ensemble_averages_probabilities_and_splits_uncertainty(tmp_path):
    x, y = _data()
    model = _model(sigma=0.3)  # loud noise: the samples differ visibly
    model.fit(x, y, epochs=4, verbose=0, callbacks=[sampling.PosteriorSampler(tmp_path)])
    before = [np.array(w) for w in model.get_weights()]
    ensemble = sampling.PosteriorEnsemble(model, tmp_path)
    assert len(ensemble) == 4
    result = ensemble.predict_with_uncertainty(x, batch_size=16)
    per_sample = _manual_probabilities(ensemble.paths, x)
    mean = per_sample.mean(axis=0)
    np.testing.assert_allclose(result.probabilities, mean, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(result.predictive_entropy, _entropy(mean), rtol=1e-6, atol=1e-9)
    expected_entropy = np.mean([_entropy(p) for p in per_sample], axis=0)
    np.testing.assert_allclose(result.expected_entropy, expected_entropy, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(
        result.mutual_information, _entropy(mean) - expected_entropy, rtol=1e-5, atol=1e-9
    )
    assert result.mutual_information.min() >= 0 and result.mutual_information.max() > 1e-3
    for a, b in zip(model.get_weights(), before):  # the model's own weights are back
        np.testing.assert_array_equal(a, b)
    # The same sample twice: no disagreement, no epistemic uncertainty.
    twice = sampling.PosteriorEnsemble(model, [ensemble.paths[0]] * 2)
    np.testing.assert_allclose(twice.predict_with_uncertainty(x).mutual_information, 0, atol=1e-12)
    report = ensemble.evaluate(x, y)
    assert set(report) == {"accuracy", "nll", "ece", "brier"}
    assert report["nll"] == pytest.approx(-np.mean(np.log(mean[np.arange(len(y)), y])), rel=1e-6)


def test_ensemble_of_a_binary_logit_model(tmp_path):
    x, y = _data()
    y = (y > 0).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(
        optimizer=kl.LSGD(learning_rate=0.1, sigma=0.2, seed=1, jit_compile=False),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    model.fit(x, y, epochs=3, verbose=0, callbacks=[sampling.PosteriorSampler(tmp_path)])
    ensemble = sampling.PosteriorEnsemble(model, tmp_path, from_logits=True)
    result = ensemble.predict_with_uncertainty(x)
    assert result.probabilities.shape == (NUM_EXAMPLES, 1)
    logits = []
    copy = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    for sample in sampling.load_samples(tmp_path):
        copy.load_weights(sample.path)
        logits.append(np.asarray(copy.predict(x, verbose=0), "float64"))
    expected = np.mean([1 / (1 + np.exp(-z)) for z in logits], axis=0)
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-6)
    assert np.all(result.predictive_entropy <= math.log(2) + 1e-12)


def test_ensemble_rejects_bad_samples(tmp_path):
    model = _model()
    with pytest.raises(ValueError, match="Argument `samples`"):
        sampling.PosteriorEnsemble(model, tmp_path)  # no manifest: no samples
    with pytest.raises(TypeError, match="Argument `samples`"):
        sampling.PosteriorEnsemble(model, [3])


# ------------------------------------------------------------------------- calibration


def _manual_ece(labels, probabilities, bins=15):
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = (confidence >= low) & ((confidence < high) if b < bins - 1 else True)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return total


def test_calibration_metrics_match_their_definitions():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((500, 4)) * 2
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(4, p=p) for p in probabilities])  # calibrated by construction
    rows = np.arange(500)
    nll = sampling.negative_log_likelihood(labels, probabilities)
    assert nll == pytest.approx(-np.mean(np.log(probabilities[rows, labels])), rel=1e-9)
    brier = sampling.brier_score(labels, probabilities)
    assert brier == pytest.approx(np.mean(np.sum((probabilities - np.eye(4)[labels]) ** 2, 1)))
    ece = sampling.expected_calibration_error(labels, probabilities)
    assert ece == pytest.approx(_manual_ece(labels, probabilities), rel=1e-9)
    assert ece < 0.08  # calibrated: only sampling error
    # Overconfident predictions: accuracy below confidence, a large ECE.
    sharp = probabilities**4 / np.sum(probabilities**4, axis=1, keepdims=True)
    assert sampling.expected_calibration_error(labels, sharp) > 0.1
    diagram = sampling.reliability_diagram(labels, probabilities)
    assert diagram.counts.sum() == 500 and len(diagram.bin_edges) == 16
    assert np.all(np.diff(diagram.confidence) > 0)
    # One-hot labels, and binary probabilities of class 1 as one column.
    assert sampling.negative_log_likelihood(np.eye(4)[labels], probabilities) == pytest.approx(nll)
    p1 = rng.uniform(size=100)
    y1 = (rng.uniform(size=100) < p1).astype(int)
    two_columns = np.stack([1 - p1, p1], axis=1)
    assert sampling.calibration_report(y1, p1) == sampling.calibration_report(y1, two_columns)


def test_calibration_rejects_bad_input():
    with pytest.raises(ValueError, match="Argument `probabilities`"):
        sampling.brier_score([0, 1], np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="Argument `y_true`"):
        sampling.brier_score([0, 5], np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="Argument `num_bins`"):
        sampling.expected_calibration_error([0, 1], np.full((2, 2), 0.5), num_bins=0)


def test_plot_reliability_diagram(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    diagram = sampling.reliability_diagram(
        [0, 1, 1, 0], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]]
    )
    ax = sampling.plot_reliability_diagram(diagram)
    ax.figure.savefig(tmp_path / "reliability.png")
    assert (tmp_path / "reliability.png").stat().st_size > 0
