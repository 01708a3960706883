"""Bayesian model averaging over posterior samples stored on disk."""

import collections
import os

import numpy as np

from keras_langevin.sampling import _guards, _weights_io, calibration
from keras_langevin.sampling.sampler import PosteriorSampler, Sample, load_samples

EnsemblePrediction = collections.namedtuple(
    "EnsemblePrediction",
    ["probabilities", "predictive_entropy", "expected_entropy", "mutual_information"],
)
EnsemblePrediction.__doc__ = """Per example: the averaged class probabilities (shaped like the
model's output), the entropy of the average (total uncertainty), the average of the samples'
entropies (aleatoric part) and their difference, the mutual information between the label and
the weights (epistemic part). Entropies in nats."""


def _entropy(probabilities):
    """Entropy in nats of rows of probabilities `(n, K)`, with `0 * log 0 = 0`."""
    safe = np.where(probabilities > 0, probabilities, 1.0)
    return -np.sum(probabilities * np.log(safe), axis=-1)


def _softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class PosteriorEnsemble:
    """The Bayesian model average of a model over posterior weight samples.

    `predict` returns `(1/S) * sum_s p(y | x, theta_s)`, the average of the samples' predicted
    probabilities. It streams over the samples: each sample's weights are loaded into `model`
    in turn (one set of weights in memory at a time), and the model's own weights are put back
    afterwards.

    Args:
        model: a Keras model with the architecture of the samples; its output holds class
            probabilities `(n, K)` (softmax), or the probability of class 1 `(n, 1)` / `(n,)`
            (sigmoid), or the corresponding logits with `from_logits=True`.
        samples: a directory written by `PosteriorSampler`, the sampler itself, or a list of
            `Sample`s or paths of `.weights.h5` files.
        from_logits: whether the model outputs logits. Defaults to `False`; then outputs
            that are not probabilities (a negative value, a value above 1 for one column,
            rows not summing to 1 within 1e-3) are refused with a `ValueError`.
    """

    def __init__(self, model, samples, *, from_logits=False):
        self.model = model
        if isinstance(samples, PosteriorSampler):
            samples = samples.samples
        elif isinstance(samples, (str, os.PathLike)):
            directory = os.fspath(samples)
            if not os.path.isdir(directory):
                raise FileNotFoundError(
                    "Argument `samples` must be a directory written by PosteriorSampler, a "
                    f"PosteriorSampler or a list of samples. No such directory: {directory}"
                )
            samples = load_samples(directory)
            if not samples:
                raise ValueError(
                    f"Argument `samples`: the directory {directory} holds no posterior samples "
                    "(no manifest.json listing any)."
                )
        paths = []
        for sample in samples:
            path = sample.path if isinstance(sample, Sample) else sample
            if not isinstance(path, (str, os.PathLike)):
                raise TypeError(
                    "Argument `samples` must be a directory, a PosteriorSampler or a list of "
                    f"samples or paths. Received an element: {sample!r}"
                )
            paths.append(os.fspath(path))
        if not paths:
            raise ValueError(
                f"Argument `samples` must hold at least one sample. Received: {samples!r}"
            )
        self.paths = paths
        self.from_logits = bool(from_logits)

    def __len__(self):
        return len(self.paths)

    def _sample_probabilities(self, x, batch_size):
        """Yields each sample's probabilities, `(n, K)` with `K >= 2`, and the model's shape."""
        original = self.model.get_weights()
        try:
            for path in self.paths:
                _weights_io.load_model_weights(self.model, path)
                output = np.asarray(self.model.predict(x, batch_size=batch_size, verbose=0))
                shape = output.shape
                output = output.astype("float64")
                binary = output.ndim == 1 or output.shape[-1] == 1
                if not self.from_logits:
                    _guards.check_probabilities(output, binary)
                if binary:
                    output = output.reshape(-1)
                    if self.from_logits:
                        output = 1.0 / (1.0 + np.exp(-output))
                    output = np.stack([1.0 - output, output], axis=-1)
                elif self.from_logits:
                    output = _softmax(output)
                yield output, shape, binary
        finally:
            self.model.set_weights(original)

    def predict_with_uncertainty(self, x, batch_size=None):
        """An `EnsemblePrediction`: averaged probabilities and, per example, the predictive
        entropy, the expected entropy and the mutual information."""
        total, total_entropy, shape, binary = None, None, None, False
        for probabilities, shape, binary in self._sample_probabilities(x, batch_size):
            entropy = _entropy(probabilities)
            if total is None:
                total, total_entropy = probabilities, entropy
            else:
                total = total + probabilities
                total_entropy = total_entropy + entropy
        mean = total / len(self.paths)
        predictive_entropy = _entropy(mean)
        expected_entropy = total_entropy / len(self.paths)
        # Mutual information >= 0 (Jensen); clip the rounding below 0.
        mutual_information = np.maximum(predictive_entropy - expected_entropy, 0.0)
        output = mean[:, 1].reshape(shape) if binary else mean.reshape(shape)
        return EnsemblePrediction(output, predictive_entropy, expected_entropy, mutual_information)

    def predict(self, x, batch_size=None):
        """The averaged predicted probabilities, shaped like the model's output."""
        return self.predict_with_uncertainty(x, batch_size).probabilities

    def evaluate(self, x, y, batch_size=None, num_bins=calibration.NUM_BINS):
        """Accuracy, negative log-likelihood, expected calibration error and Brier score of
        the averaged prediction (see `keras_langevin.sampling.calibration`)."""
        return calibration.calibration_report(y, self.predict(x, batch_size), num_bins)
