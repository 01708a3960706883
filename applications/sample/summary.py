"""The sampling study's results page and figures (see `applications.sample`)."""

import math

import numpy as np

from applications import distribute, report
from applications.sample.plan import CSGHMC_LR, CSGHMC_MOMENTUM, LABELS
from applications.sample.shifts import NOISE_STD, ROTATION_DEGREES, SPLITS


def _cells(rows, key, digits):
    return report.format_mean_std([row[key] for row in rows], digits=digits)


def budgets(args):
    """What each method spends, in epochs of training (gradient passes over the data)."""
    m, e = args.ensemble_size, args.epochs
    return {
        "adam": f"{e} epochs (one model)",
        "sgd": f"{e} epochs (one model)",
        "deep-ensemble": f"{m} x {e} = {m * e} epochs ({m} fully trained members)",
        "clsgd": f"{e} epochs (one chain, {args.cycles} cycles)",
        "csghmc": f"{e} epochs (one chain, {args.cycles} cycles)",
        "psgld": f"{e} epochs (one chain, burn-in {e // 2})",
    }


def markdown_table(rows, args, data, command, seconds, distribution=distribute.OFF):
    """results.md: the command, the settings, the budgets and the two metric tables."""
    by_method = {m: [r for r in rows if r["method"] == m] for m in args.methods}
    by_method = {m: method_rows for m, method_rows in by_method.items() if method_rows}
    header = (
        f"Command: `{command}`  \nRun time of this invocation: {seconds:.0f} s "
        f"({seconds / 60:.1f} min); runs evaluated by an earlier invocation are skipped and "
        "not counted."
    )
    spent = budgets(args)
    budget_table = report.markdown_table(
        ["method", "budget", "weights averaged"],
        [[LABELS[m], spent[m], r[0]["weights"]] for m, r in by_method.items()],
        align="llr",
    )
    shifts = (
        f"Shifted test sets: every test image rotated by {ROTATION_DEGREES:g}°, and every "
        f"test image plus Gaussian noise of standard deviation {NOISE_STD:g} (clipped to "
        "[0, 1])."
    )
    return report.document(
        f"Posterior sampling: {args.model} on {args.dataset}",
        [header, _settings_paragraph(args, data), *_distribution_lines(distribution),
         budget_table, _metrics_table(by_method), shifts, _shift_table(by_method)],
    )  # fmt: skip


def _settings_paragraph(args, data):
    seeds = ", ".join(map(str, args.seeds))
    sigma = math.sqrt(2.0 * args.temperature / data.train_size)
    hmc = ""
    if "csghmc" in args.methods:  # posterior_sigma(N, T, momentum=mu)
        hmc = (
            f" (cyclical LSGHMC, momentum mu = {CSGHMC_MOMENTUM:g}, lr {CSGHMC_LR:g}: "
            f"sqrt(2T/(N(1 - mu))) = {sigma / math.sqrt(1.0 - CSGHMC_MOMENTUM):.4g})"
        )
    return (
        f"{args.model}, batch size {args.batch_size}, seeds {seeds}; N = {data.train_size} "
        f"training examples. Prior N(0, {args.prior_std:g}²) on the kernels: L2 {data.l2:.3g}. "
        f"Posterior temperature T = {args.temperature:g} for the Langevin methods "
        f"({'the Bayesian posterior' if args.temperature == 1 else 'a cold posterior'}), "
        f"sigma = sqrt(2T/N) = {sigma:.4g}{hmc}; the single models and the ensemble are MAP "
        f"estimates. Cyclical LSGD and LSGHMC: {args.cycles} cycles, "
        f"{args.samples_per_cycle} sample(s) per cycle. Mean ± standard deviation over seeds "
        "(n - 1); metrics of the averaged prediction on the held-out test split; entropy and "
        "mutual information (MI) in nats, averaged over examples."
    )


def _metrics_table(by_method):
    rows = [
        [LABELS[m]]
        + [_cells(r, key, 4) for key in ("accuracy", "nll", "ece", "brier")]
        + [_cells(r, key, 3) for key in ("entropy_test", "mi_test")]
        for m, r in by_method.items()
    ]
    return report.markdown_table(
        ["method", "accuracy", "NLL", "ECE", "Brier", "entropy", "MI"], rows, align="lrrrrrr"
    )


def _shift_table(by_method):
    rows = []
    for method, method_rows in by_method.items():
        cells = [_cells(method_rows, "entropy_test", 3)]
        for split in ("rotated", "noisy"):
            cells += [
                _cells(method_rows, f"accuracy_{split}", 4),
                _cells(method_rows, f"entropy_{split}", 3),
                _cells(method_rows, f"mi_{split}", 3),
            ]
        rows.append([LABELS[method], *cells])
    return report.markdown_table(
        [
            "method", "entropy test", "accuracy rotated", "entropy rotated", "MI rotated",
            "accuracy noisy", "entropy noisy", "MI noisy",
        ],
        rows,
        align="l" + "r" * 7,
    )  # fmt: skip


def _distribution_lines(distribution):
    if distribution.mode == "off":
        return []
    return [
        (
            f"Trained with --distribute {distribution.mode}: {distribution.num_replicas} "
            f"replicas in {distribution.num_processes} process(es); the batch size is the "
            "global batch."
        )
    ]


def plot_reliability(path, arrays, methods, title):
    from keras_langevin.sampling import (
        expected_calibration_error,
        plot_reliability_diagram,
        reliability_diagram,
    )

    plt = report.pyplot()
    figure, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.6), squeeze=False)
    for ax, method in zip(axes[0], methods):
        labels = np.concatenate([a["labels_test"] for a in arrays[method]])
        probabilities = np.concatenate([a["probabilities_test"] for a in arrays[method]])
        plot_reliability_diagram(reliability_diagram(labels, probabilities), ax=ax)
        ece = expected_calibration_error(labels, probabilities)
        ax.set_title(f"{LABELS[method]}\nECE {ece:.3f}", fontsize=9)
    figure.suptitle(title)
    report.save_figure(figure, path)


def plot_entropy(path, arrays, methods, num_classes, title):
    plt = report.pyplot()
    figure, axes = plt.subplots(
        1, len(methods), figsize=(3.2 * len(methods), 3.4), squeeze=False, sharey=True
    )
    bins = np.linspace(0.0, math.log(num_classes), 31)
    names = {
        "test": "test",
        "rotated": f"rotated {ROTATION_DEGREES:g}°",
        "noisy": f"noise σ={NOISE_STD:g}",
    }
    for ax, method in zip(axes[0], methods):
        for split, color in zip(SPLITS, ("C0", "C1", "C3")):
            values = np.concatenate([a[f"entropy_{split}"] for a in arrays[method]])
            ax.hist(
                values,
                bins=bins,
                histtype="step",
                density=True,
                linewidth=1.5,
                color=color,
                label=f"{names[split]} ({values.mean():.2f})",
            )
        ax.set_title(LABELS[method], fontsize=9)
        ax.set_xlabel("predictive entropy (nats)")
        ax.legend(fontsize=7, title="mean", title_fontsize=7)
    axes[0][0].set_ylabel("density")
    figure.suptitle(title)
    report.save_figure(figure, path)
