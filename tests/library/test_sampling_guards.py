"""Sampling guards: what breaks `posterior_sigma`'s contract is refused or warned about, with
the fix in the message (a sum-reduced loss, an optimizer without noise, the number of batches
given as the number of examples, logits averaged as probabilities)."""

import warnings

import keras
import numpy as np
import pytest
from test_sampling import NUM_EXAMPLES, _data, _model

import keras_langevin as kl
from keras_langevin import sampling

pytestmark = pytest.mark.multibackend


def _fit(model, tmp_path, batch_size=16):
    x, y = _data()
    sampler = sampling.PosteriorSampler(tmp_path)
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, callbacks=[sampler])
    return sampler


def _sampler_warnings(record):
    return [str(w.message) for w in record if "PosteriorSampler" in str(w.message)]


def test_sum_reduced_loss_is_refused(tmp_path):
    model = _model(compile=False)
    loss = keras.losses.SparseCategoricalCrossentropy(reduction="sum")
    optimizer = kl.LSGD(0.05, sigma=sampling.posterior_sigma(NUM_EXAMPLES), jit_compile=False)
    model.compile(optimizer=optimizer, loss=loss)
    with pytest.raises(ValueError, match=r"reduction='sum'.*sqrt\(batch size\).*Compile with"):
        _fit(model, tmp_path)
    assert sampling.load_samples(tmp_path) == []
    # The same loss with the default reduction passes, silently.
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy())
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _fit(model, tmp_path)
    assert _sampler_warnings(record) == []
    assert len(sampling.load_samples(tmp_path)) == 1


@pytest.mark.parametrize(
    "optimizer,reason",
    [
        (lambda: keras.optimizers.SGD(0.05), "SGD adds no noise"),
        (lambda: kl.LSGD(0.05, jit_compile=False), "LSGD has sigma=0"),
    ],
)
def test_noiseless_optimizer_warns_with_the_fix(tmp_path, optimizer, reason):
    model = _model(compile=False)
    model.compile(optimizer=optimizer(), loss="sparse_categorical_crossentropy")
    with pytest.warns(UserWarning, match=f"{reason}.*not posterior samples.*posterior_sigma"):
        _fit(model, tmp_path)


def test_number_of_batches_instead_of_examples_warns(tmp_path):
    """posterior_sigma(number of batches): sigma implies as many examples as batches."""
    batches = NUM_EXAMPLES // 16
    model = _model(sigma=sampling.posterior_sigma(batches))
    with pytest.warns(UserWarning, match=f"N = {batches} .*not of batches"):
        _fit(model, tmp_path / "batches")
    # A cyclical sigma is checked by its sampling level; the right N gives no warning.
    cyclical = sampling.CyclicalSigma(sampling.posterior_sigma(batches), 8, 0.5)
    with pytest.warns(UserWarning, match="not of batches"):
        _fit(_model(sigma=cyclical), tmp_path / "cyclical")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _fit(_model(), tmp_path / "examples")
    assert _sampler_warnings(record) == []


def test_ensemble_refuses_logits_averaged_as_probabilities(tmp_path):
    x, y = _data()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])  # logits
    model.compile(kl.LSGD(0.05, sigma=0.1, jit_compile=False), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0, callbacks=[sampling.PosteriorSampler(tmp_path)])
    ensemble = sampling.PosteriorEnsemble(model, tmp_path)
    with pytest.raises(ValueError, match="not probabilities.*from_logits=True"):
        ensemble.predict_with_uncertainty(x)
    result = sampling.PosteriorEnsemble(model, tmp_path, from_logits=True).predict(x)
    np.testing.assert_allclose(result.sum(axis=1), 1.0, rtol=1e-6)
    binary = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    binary.compile(kl.LSGD(0.05, sigma=0.1, jit_compile=False), "mse")
    binary.fit(x, y, epochs=1, verbose=0, callbacks=[sampling.PosteriorSampler(tmp_path / "b")])
    with pytest.raises(ValueError, match="not probabilities"):
        sampling.PosteriorEnsemble(binary, tmp_path / "b").predict(x)


def test_ensemble_names_a_missing_directory(tmp_path):
    missing = tmp_path / "nonexistent"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        sampling.PosteriorEnsemble(_model(), missing)
