"""Calibration of predicted class probabilities.

Inputs: `y_true`, integer labels of shape `(n,)` (or one-hot / probabilistic labels of shape
`(n, K)`, reduced to their argmax), and `probabilities` of shape `(n, K)`, or `(n,)` / `(n, 1)`
for the probability of class 1 in a binary problem. scikit-learn computes what it already
offers (`log_loss`, `brier_score_loss`, `calibration_curve`); it is imported when a function is
called (`pip install scikit-learn`).
"""

import collections

import numpy as np

from keras_langevin.sampling import _checks

NUM_BINS = 15

ReliabilityDiagram = collections.namedtuple(
    "ReliabilityDiagram", ["confidence", "accuracy", "counts", "bin_edges"]
)
ReliabilityDiagram.__doc__ = """Per non-empty confidence bin: the mean confidence, the accuracy
and the number of examples; `bin_edges` are the `num_bins + 1` edges of all bins."""


def _sklearn():
    try:
        import sklearn.calibration
        import sklearn.metrics
    except ImportError as error:  # pragma: no cover
        raise ImportError(
            "keras_langevin.sampling's calibration metrics need scikit-learn: "
            "`pip install scikit-learn`."
        ) from error
    return sklearn


def as_labels_and_probabilities(y_true, probabilities):
    """`(labels, probabilities)`: int labels `(n,)` and float64 rows `(n, K)`, `K >= 2`, that
    sum to one (binary inputs `(n,)` or `(n, 1)` become two columns)."""
    probabilities = np.asarray(probabilities, dtype="float64")
    if probabilities.ndim == 2 and probabilities.shape[1] == 1:
        probabilities = probabilities[:, 0]
    if probabilities.ndim == 1:
        probabilities = np.stack([1.0 - probabilities, probabilities], axis=1)
    if probabilities.ndim != 2:
        raise ValueError(
            "Argument `probabilities` must have shape (n, K), (n, 1) or (n,). "
            f"Received: probabilities.shape={probabilities.shape}"
        )
    if not np.all(np.isfinite(probabilities)) or np.any(probabilities < 0):
        raise ValueError("Argument `probabilities` must hold finite values >= 0.")
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    labels = np.asarray(y_true)
    if labels.ndim == 2 and labels.shape[1] > 1:
        labels = labels.argmax(axis=1)
    labels = labels.reshape(-1).astype("int64")
    if labels.shape[0] != probabilities.shape[0]:
        raise ValueError(
            "Arguments `y_true` and `probabilities` must have the same number of examples. "
            f"Received: {labels.shape[0]} and {probabilities.shape[0]}"
        )
    num_classes = probabilities.shape[1]
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"Argument `y_true` must hold labels in [0, {num_classes - 1}].")
    return labels, probabilities


def negative_log_likelihood(y_true, probabilities):
    """Mean of `-log p(y_true)` over the examples (scikit-learn's `log_loss`)."""
    labels, probabilities = as_labels_and_probabilities(y_true, probabilities)
    classes = np.arange(probabilities.shape[1])
    return float(_sklearn().metrics.log_loss(labels, probabilities, labels=classes))


def brier_score(y_true, probabilities):
    """Brier's multi-class score: the mean over examples of `sum_k (p_k - [y == k])**2`.

    In [0, 2]. For a binary problem it is twice the customary binary score (the mean of
    `(p_1 - y)**2`, what `sklearn.metrics.brier_score_loss` returns by default there).
    """
    labels, probabilities = as_labels_and_probabilities(y_true, probabilities)
    classes = np.arange(probabilities.shape[1])
    try:
        return float(
            _sklearn().metrics.brier_score_loss(
                labels, probabilities, labels=classes, scale_by_half=False
            )
        )
    except TypeError:  # pragma: no cover - scikit-learn < 1.7 is binary only
        one_hot = np.eye(probabilities.shape[1])[labels]
        return float(np.mean(np.sum((probabilities - one_hot) ** 2, axis=1)))


def _top_label(y_true, probabilities):
    labels, probabilities = as_labels_and_probabilities(y_true, probabilities)
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype("float64")
    return correct, confidence


def reliability_diagram(y_true, probabilities, num_bins=NUM_BINS):
    """Accuracy against confidence (the top-label probability) in equal-width bins of [0, 1].

    The bins are scikit-learn's `calibration_curve(strategy="uniform")`: `[i/M, (i+1)/M)`, the
    last one closed. Returns a `ReliabilityDiagram` of the non-empty bins.
    """
    num_bins = _checks.positive_int("num_bins", num_bins)
    correct, confidence = _top_label(y_true, probabilities)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    # The same binning as calibration_curve, to count the examples of its (non-empty) bins.
    bins = np.searchsorted(edges[1:-1], confidence, side="right")
    counts = np.bincount(bins, minlength=num_bins)
    if correct.min() == correct.max():
        # calibration_curve needs both outcomes; with one, accuracy is that outcome.
        nonempty = counts > 0
        sums = np.bincount(bins, weights=confidence, minlength=num_bins)
        mean_confidence = sums[nonempty] / counts[nonempty]
        accuracy = np.full(nonempty.sum(), correct[0])
    else:
        accuracy, mean_confidence = _sklearn().calibration.calibration_curve(
            correct, confidence, n_bins=num_bins, strategy="uniform"
        )
    return ReliabilityDiagram(mean_confidence, accuracy, counts[counts > 0], edges)


def expected_calibration_error(y_true, probabilities, num_bins=NUM_BINS):
    """ECE: `sum_b (n_b / n) * |accuracy_b - confidence_b|` over `num_bins` (default 15)
    equal-width confidence bins (Naeini et al. 2015, Guo et al. 2017)."""
    diagram = reliability_diagram(y_true, probabilities, num_bins)
    weights = diagram.counts / diagram.counts.sum()
    return float(np.sum(weights * np.abs(diagram.accuracy - diagram.confidence)))


def plot_reliability_diagram(diagram, ax=None, label=None):
    """Draws a `ReliabilityDiagram` (bars of accuracy per bin, and the diagonal) with matplotlib;
    returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    edges = diagram.bin_edges
    width = edges[1] - edges[0]
    lefts = edges[:-1][np.searchsorted(edges[1:-1], diagram.confidence, side="right")]
    ax.bar(lefts, diagram.accuracy, width=width, align="edge", edgecolor="black", label=label)
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    return ax


def calibration_report(y_true, probabilities, num_bins=NUM_BINS):
    """A dict: accuracy, nll, ece, brier (see the functions of the same meaning)."""
    labels, probabilities = as_labels_and_probabilities(y_true, probabilities)
    return {
        "accuracy": float(np.mean(probabilities.argmax(axis=1) == labels)),
        "nll": negative_log_likelihood(labels, probabilities),
        "ece": expected_calibration_error(labels, probabilities, num_bins),
        "brier": brier_score(labels, probabilities),
    }
