"""Paired statistics of the depth study: bootstrap intervals, sign-flip p-values, Holm.

For one comparison (e.g. layer-ladam − adam) at one depth the data are the paired
differences d_s = acc(optimizer, seed s) − acc(base, seed s), the same initial weights and
batches. :func:`paired_summary` gives their mean, a bootstrap 95% interval of the mean
(`scipy.stats.bootstrap`, BCa; percentile where BCa is undefined, e.g. all d_s equal) and
the two-sided p-value of the sign-flip permutation test of "mean 0"
(`scipy.stats.permutation_test`, exact for up to 2^n sign patterns). :func:`holm` corrects
the p-values of one comparison across the depths (Holm 1979: step-down, controls the
family-wise error rate).
"""

from __future__ import annotations

import inspect
import math
import warnings

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 9999


def _generator(function, seed):
    """The seeded generator as `function` takes it: `rng=` from SciPy 1.15, `random_state=`
    before (the declared lower bound, 1.11, has only the latter); the same draws either way."""
    generator = np.random.default_rng(seed)
    if "rng" in inspect.signature(function).parameters:
        return {"rng": generator}
    return {"random_state": generator}


def paired_summary(differences, seed=0, confidence=CONFIDENCE):
    """`{"n", "mean", "low", "high", "p"}` of paired differences (NaN where undefined:
    no interval below 2 pairs, no p-value below 2)."""
    d = np.asarray(differences, dtype=np.float64)
    result = {"n": int(d.size), "mean": math.nan, "low": math.nan, "high": math.nan}
    result["p"] = math.nan
    if d.size == 0:
        return result
    result["mean"] = float(d.mean())
    if d.size < 2:
        return result
    result["low"], result["high"] = bootstrap_interval(d, seed, confidence)
    result["p"] = sign_flip_p(d, seed)
    return result


def bootstrap_interval(d, seed=0, confidence=CONFIDENCE):
    """Bootstrap interval of the mean of `d` (BCa, percentile when BCa is undefined)."""
    if np.all(d == d[0]):
        return float(d[0]), float(d[0])
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            interval = stats.bootstrap(
                (d,),
                np.mean,
                confidence_level=confidence,
                n_resamples=RESAMPLES,
                method=method,
                **_generator(stats.bootstrap, seed),
            ).confidence_interval
        if math.isfinite(interval.low) and math.isfinite(interval.high):
            break
    return float(interval.low), float(interval.high)


def sign_flip_p(d, seed=0):
    """Two-sided p-value of mean(d) = 0 under random signs (exact up to 2^n <= RESAMPLES)."""
    if np.all(d == 0):
        return 1.0
    result = stats.permutation_test(
        (d,),
        np.mean,
        permutation_type="samples",
        alternative="two-sided",
        n_resamples=RESAMPLES,
        **_generator(stats.permutation_test, seed),
    )
    return float(result.pvalue)


def holm(p_values):
    """Holm-adjusted p-values (same order; NaN entries stay NaN and do not count)."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    running = 0.0
    for rank, index in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()
