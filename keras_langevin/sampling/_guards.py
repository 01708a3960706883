"""Checks that a `fit` run with `PosteriorSampler` meets `posterior_sigma`'s contract, and that
an ensemble's outputs are probabilities. Each failure says how to fix it."""

import math
import warnings

import keras
import numpy as np
from keras import ops

from keras_langevin.base import langevin_optimizer

# Tolerance on a row of probabilities: float32 softmax rows sum to 1 within ~1e-6.
PROBABILITY_TOLERANCE = 1e-3


def _losses(loss):
    if isinstance(loss, dict):
        return [item for value in loss.values() for item in _losses(value)]
    if isinstance(loss, (list, tuple)):
        return [item for value in loss for item in _losses(value)]
    return [loss]


def check_loss_reduction(model):
    """Refuses a loss reduced by `"sum"`: the loss is then `B` times the batch mean that
    `posterior_sigma` assumes, and the sampled posterior `sqrt(B)` times too narrow."""
    for loss in _losses(getattr(model, "loss", None)):
        if isinstance(loss, keras.losses.Loss) and loss.reduction == "sum":
            raise ValueError(
                f"PosteriorSampler: the model's loss {loss.name!r} has reduction='sum', so the "
                "loss is the batch size times the mean negative log-likelihood that "
                "`posterior_sigma(N)` assumes, and the sampled posterior is sqrt(batch size) "
                "times too narrow. Compile with the default reduction "
                "(reduction='sum_over_batch_size')."
            )


def check_noise(optimizer):
    """Warns when the optimizer adds no noise: its weights are an optimisation path (what a
    MAP or deep-ensemble baseline saves on purpose, hence a warning, not an error)."""
    try:
        inner = langevin_optimizer(optimizer)
    except ValueError:
        inner = None
    if inner is None:
        reason = f"the optimizer {type(optimizer).__name__} adds no noise"
    elif isinstance(inner.get_config().get("sigma"), float) and (
        float(ops.convert_to_numpy(inner.sigma)) == 0.0
    ):
        reason = f"the optimizer {type(inner).__name__} has sigma=0"
    else:
        return
    warnings.warn(
        f"PosteriorSampler: {reason}, so the weights it visits are points on an optimisation "
        "path, not posterior samples. To sample the posterior, compile with a Langevin "
        "optimizer at the posterior noise level, e.g. keras_langevin.LSGD(learning_rate, "
        "sigma=keras_langevin.sampling.posterior_sigma(num_examples)) (or set "
        "`optimizer.sigma` to it before fit).",
        UserWarning,
        stacklevel=3,
    )


def _constant_sigma(optimizer):
    """The noise level of the sampling steps when it is known without running: a float sigma,
    or a schedule's `sigma` attribute (CyclicalSigma); else None."""
    sigma = optimizer.get_config().get("sigma")
    if isinstance(sigma, float):
        return float(ops.convert_to_numpy(optimizer.sigma))
    value = (sigma.get("config") or {}).get("sigma") if isinstance(sigma, dict) else None
    return value if isinstance(value, float) else None


def check_num_examples(optimizer, steps_per_epoch):
    """Warns when sigma implies as many examples as there are batches per epoch: the sign of
    `posterior_sigma(number of batches)` (a posterior sqrt(batch size) times too wide)."""
    if not steps_per_epoch:
        return
    try:
        inner = langevin_optimizer(optimizer)
    except ValueError:
        return
    sigma = _constant_sigma(inner)
    momentum = inner.get_config().get("momentum") or 0.0
    if not sigma:
        return
    implied = 2.0 / (sigma**2 * (1.0 - momentum))  # N at temperature 1
    if implied <= steps_per_epoch * (1.0 + 1e-6):
        warnings.warn(
            f"PosteriorSampler: sigma={sigma:.4g} is posterior_sigma(N) with N = "
            f"{implied:.6g} at temperature 1, at most the {steps_per_epoch} batches of an "
            "epoch. `posterior_sigma` takes the number of training examples, not of batches; "
            "with N batches of B examples, the posterior is sqrt(B) times too wide. Pass "
            "posterior_sigma(len(x_train)) (ignore this if the batches hold one example).",
            UserWarning,
            stacklevel=2,
        )


def check_probabilities(output, binary):
    """Refuses model outputs that are not probabilities (logits without `from_logits=True`)."""
    tolerance = PROBABILITY_TOLERANCE
    if not np.all(np.isfinite(output)):
        problem = "non-finite values"
    elif output.min() < -tolerance:
        problem = f"a negative value ({output.min():.4g})"
    elif binary and output.max() > 1 + tolerance:
        problem = f"a value above 1 ({output.max():.4g})"
    elif not binary and np.max(np.abs(output.sum(axis=-1) - 1.0)) > tolerance:
        sums = output.sum(axis=-1)
        worst = sums[np.argmax(np.abs(sums - 1.0))]
        problem = f"a row summing to {worst:.4g}"
    else:
        return
    raise ValueError(
        f"PosteriorEnsemble: the model's outputs are not probabilities ({problem}; rows must "
        f"be >= 0 and sum to 1 within {tolerance:g}). If the model outputs logits, pass "
        "from_logits=True; otherwise end the model with a softmax (or sigmoid) layer."
    )


def steps_per_epoch(params):
    steps = (params or {}).get("steps")
    return steps if isinstance(steps, int) and not math.isinf(steps) else None
