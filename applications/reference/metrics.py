"""How far a method's posterior is from the reference: in function space and per weight.

Function space (every problem): for the posterior predictive distributions p (reference) and
q (method) of each test example,

    total variation  TV(p, q) = 1/2 sum_k |p_k - q_k|      (0 when equal, at most 1)
    KL(p || q) = sum_k p_k log(p_k / q_k)                   (0 when equal; q floored at 1e-12)
    agreement = [argmax p == argmax q]

averaged over the examples. Weight space (where a weight means the same thing in every draw:
every weight of the softmax regression; of the network only the prior-only weights, whose
posterior is the prior whatever the hidden units' order and signs): the error of the mean in
reference standard deviations, |mean_q - mean_p| / sd_p, and the variance ratio var_q / var_p,
each summarised by its median over the weights.
"""

import numpy as np

KL_FLOOR = 1e-12


def _check(p, q):
    p, q = np.asarray(p, dtype="float64"), np.asarray(q, dtype="float64")
    if p.shape != q.shape or p.ndim != 2:
        raise ValueError(f"predictive distributions of other shapes: {p.shape} and {q.shape}")
    return p, q


def total_variation(p, q):
    """Mean over examples of the total-variation distance between rows of `p` and `q`."""
    p, q = _check(p, q)
    return float(np.mean(0.5 * np.abs(p - q).sum(axis=1)))


def kl_divergence(p, q):
    """Mean over examples of KL(p || q) (terms with p = 0 count 0; q floored)."""
    p, q = _check(p, q)
    q = np.maximum(q, KL_FLOOR)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0.0, p * (np.log(np.maximum(p, KL_FLOOR)) - np.log(q)), 0.0)
    return float(np.mean(terms.sum(axis=1)))


def agreement(p, q):
    """The fraction of examples whose most probable class is the same under `p` and `q`."""
    p, q = _check(p, q)
    return float(np.mean(p.argmax(axis=1) == q.argmax(axis=1)))


def mean_error(samples, reference_mean, reference_variance, mask):
    """Median over the weights in `mask` of |mean - reference mean| / reference sd."""
    if not np.any(mask):
        return float("nan")
    mean = samples[:, mask].mean(axis=0)
    return float(np.median(np.abs(mean - reference_mean[mask]) / np.sqrt(reference_variance[mask])))


def variance_ratio(samples, reference_variance, mask):
    """Median over the weights in `mask` of the samples' variance over the reference's
    (NaN for fewer than two samples: one model has no spread)."""
    if len(samples) < 2 or not np.any(mask):
        return float("nan")
    return float(np.median(samples[:, mask].var(axis=0, ddof=1) / reference_variance[mask]))


def compare(problem, samples, probabilities, reference, prior_std):
    """The distances of a method (its samples `(S, P)` and predictive `{split: (n, K)}`) to
    the reference's arrays (`posterior.reference`)."""
    out = {}
    for split, q in probabilities.items():
        p = reference[f"probabilities_{split}"]
        out[f"tv_{split}"] = total_variation(p, q)
        out[f"kl_{split}"] = kl_divergence(p, q)
        out[f"agreement_{split}"] = agreement(p, q)
    prior_only = reference["prior_only"].astype(bool)
    likelihood = ~prior_only if problem == "softmax" else np.zeros_like(prior_only)
    out["mean_error"] = mean_error(samples, reference["mean"], reference["variance"], likelihood)
    out["variance_ratio"] = variance_ratio(samples, reference["variance"], likelihood)
    exact = np.full(prior_only.shape, prior_std**2)  # their exact posterior: the prior
    out["variance_ratio_prior_only"] = variance_ratio(samples, exact, prior_only)
    return out
