"""Posterior sampling with Langevin optimizers.

- `posterior_sigma(N, temperature)`: the noise level that makes a Langevin optimizer sample
  the (tempered) posterior when the loss is the mean negative log-likelihood over `N` examples.
- `gaussian_prior(std, N)`: the `keras.regularizers.L2` that is a `N(0, std**2)` prior on each
  weight for such a loss.
- `CyclicalCosineDecay`, `CyclicalSigma`: cyclical SG-MCMC step sizes (Zhang et al., 2020).
- `PosteriorSampler`: a callback that writes weight samples to disk during `fit`, resumably;
  `load_samples(directory)` lists them.
- `PosteriorEnsemble`: Bayesian model averaging, predictive entropy, mutual information.
- `calibration`: negative log-likelihood, expected calibration error, Brier score, reliability
  diagram.

The derivation and the limits (which optimizer samples what) are in
docs/guide/posterior_sampling.md.
"""

from keras_langevin.sampling import calibration
from keras_langevin.sampling.calibration import (
    brier_score,
    calibration_report,
    expected_calibration_error,
    negative_log_likelihood,
    plot_reliability_diagram,
    reliability_diagram,
)
from keras_langevin.sampling.ensemble import EnsemblePrediction, PosteriorEnsemble
from keras_langevin.sampling.posterior import gaussian_prior, posterior_sigma
from keras_langevin.sampling.sampler import PosteriorSampler, Sample, load_samples
from keras_langevin.sampling.schedules import CyclicalCosineDecay, CyclicalSigma

__all__ = [
    "CyclicalCosineDecay",
    "CyclicalSigma",
    "EnsemblePrediction",
    "PosteriorEnsemble",
    "PosteriorSampler",
    "Sample",
    "brier_score",
    "calibration",
    "calibration_report",
    "expected_calibration_error",
    "gaussian_prior",
    "load_samples",
    "negative_log_likelihood",
    "plot_reliability_diagram",
    "posterior_sigma",
    "reliability_diagram",
]
