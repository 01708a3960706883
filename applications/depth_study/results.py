"""The study's report: tables of final test accuracy, paired differences against the base
optimizer with bootstrap intervals and Holm-corrected p-values, the tuned learning rates, the
sigma sweep, and the figures (written with `applications.report`)."""

from __future__ import annotations

import math

from applications import report
from applications.depth_study import stats
from applications.depth_study.plan import base_of, format_sigma

PP = 100.0  # accuracy in percent, differences in percentage points


def final_accuracies(rows, epochs):
    """``{(depth, seed, optimizer, sigma): final test accuracy}`` of complete runs."""
    return {
        (row["depth"], row["seed"], row["optimizer"], row["sigma"]): row["val_accuracy"]
        for row in rows
        if row["epoch"] == epochs
    }


def paired_differences(final, depth, seeds, name, sigma, base):
    """``[acc(name, sigma) - acc(base)]`` over the seeds where both runs are complete."""
    differences = []
    for seed in seeds:
        noisy = final.get((depth, seed, name, sigma))
        plain = final.get((depth, seed, base, "0"))
        if noisy is not None and plain is not None:
            differences.append(noisy - plain)
    return differences


def summarize(rows, args, sigma_of):
    """The tables as plain data: accuracy per (depth, name), paired comparisons per
    (depth, name) with Holm-adjusted p-values across depths, the sigma sweep."""
    final = final_accuracies(rows, args.epochs)
    compared = [name for name in args.optimizers if base_of(name) != name]
    accuracy = {
        (depth, name): [
            final[key]
            for seed in args.seeds
            if (key := (depth, seed, name, format_sigma(sigma_of(name)))) in final
        ]
        for depth in args.depths
        for name in args.optimizers
    }
    comparisons = {}
    for name in compared:
        cells = []
        for depth in args.depths:
            differences = paired_differences(
                final, depth, args.seeds, name, format_sigma(sigma_of(name)), base_of(name)
            )
            cells.append(stats.paired_summary(differences, seed=depth))
        for cell, adjusted in zip(cells, stats.holm([c["p"] for c in cells])):
            cell["p_holm"] = adjusted
        for depth, cell in zip(args.depths, cells):
            comparisons[(depth, name)] = cell
    sweep = {}
    if args.sigma_sweep:
        deepest = max(args.depths)
        for name in [n for n in compared if n in args.swept]:
            for value in sorted(set(args.sigma_sweep) | {sigma_of(name)}):
                sigma = format_sigma(value)
                accs = [
                    final[key]
                    for seed in args.seeds
                    if (key := (deepest, seed, name, sigma)) in final
                ]
                differences = paired_differences(
                    final, deepest, args.seeds, name, sigma, base_of(name)
                )
                sweep[(name, value)] = (accs, differences)
    return {"accuracy": accuracy, "comparisons": comparisons, "sweep": sweep, "compared": compared}


def _settings_lines(args, info):
    lr_text = (
        f"{args.lr:g} for every optimizer (no tuning)"
        if args.lr is not None
        else "tuned per depth and optimizer on a validation split (below)"
    )
    incomplete = "" if info["done"] == info["planned"] else " (incomplete: run it again)"
    return [
        (
            f"Seeds: {len(args.seeds)} ({', '.join(map(str, args.seeds))}); epochs "
            f"{args.epochs}; batch size {args.batch_size}; kernel initialiser **{args.init}**"
        ),
        f"Depths: {', '.join(map(str, args.depths))}; optimizers: {', '.join(args.optimizers)}",
        (
            f"Data: {args.dataset}, image size {args.image_size or 'default'}, augment "
            f"{args.augment}, train examples {args.train_take or 'all'}, test examples "
            f"{args.test_take or 'all'}; width {args.width or 'family default'}"
        ),
        (
            f"Learning rate: {lr_text}; schedule {info['lr_schedule']}; sigma "
            f"{info['sigma_text']}, schedule {info['sigma_schedule']}; Layer Langevin on the "
            f"first {info['langevin_layers']} of the weighted layers; epsilon {info['epsilon']}"
        ),
        (
            "Every optimizer of a (depth, seed) starts from the same initial weights and sees the "
            "same batches; differences are paired over those seeds."
        ),
        (
            f"Runs complete: {info['done']} of {info['planned']}{incomplete}; wall time "
            f"{info['wall']:.0f} s this invocation, {info['total_wall']:.0f} s in all"
        ),
    ]


def _comparison_table(summary, args):
    headers = ["depth"] + [f"{name} − {base_of(name)}" for name in summary["compared"]]
    rows = []
    for depth in args.depths:
        cells = [depth]
        for name in summary["compared"]:
            c = summary["comparisons"][(depth, name)]
            text = report.format_interval(c["mean"], c["low"], c["high"], scale=PP, digits=1)
            cells.append(f"{text} (p={report.format_p(c['p_holm'])}, n={c['n']})")
        rows.append(cells)
    return report.markdown_table(headers, rows, align="r")


def _tuning_table(args, chosen):
    if not chosen:
        return ""
    names = sorted({name for (_, name) in chosen})
    rows = [
        [depth] + [f"{chosen.get((depth, n), math.nan):g}" for n in names] for depth in args.depths
    ]
    return report.section(
        "Tuned learning rates",
        f"Chosen on the last {args.validation_fraction:g} of the training set (never the test "
        f"set), highest final validation accuracy over {args.tune_seeds} seed(s), from the "
        f"grid {', '.join(f'{m:g}' for m in args.lr_grid)} × each optimizer's default. The "
        "controls use the learning rate of their twin (iso: Layer Langevin's; rescaled: the "
        "base's).",
        report.markdown_table(["depth", *names], rows, align="r"),
    )


def results_markdown(summary, args, info, chosen):
    accuracy_rows = [
        [depth]
        + [report.format_mean_std(summary["accuracy"][(depth, n)], PP, 2) for n in args.optimizers]
        for depth in args.depths
    ]
    sections = [
        (
            "Claim tested (P. Bras, arXiv 2212.14718): the gain of Langevin noise grows with the "
            "depth; Layer Langevin is best on deep networks. Controls: isotropic noise of matched "
            "scale on the same layers (iso-), and the noiseless optimizer rescaled to Layer "
            "Langevin's weight norms (rescaled-)."
        ),
        report.bullets(_settings_lines(args, info)),
        report.section(
            "Final test accuracy (%), mean ± std over seeds",
            report.markdown_table(["depth", *args.optimizers], accuracy_rows, align="r"),
        ),
    ]
    if summary["compared"]:
        sections.append(
            report.section(
                "Paired difference against the base optimizer (percentage points)",
                "Mean over seeds [bootstrap 95% interval, BCa]; p: two-sided sign-flip "
                "permutation test, Holm-corrected across the depths of each column.",
                _comparison_table(summary, args),
            )
        )
    sections.append(_tuning_table(args, chosen))
    if summary["sweep"]:
        rows = [
            [
                name,
                format_sigma(value),
                report.format_mean_std(accs, PP, 2),
                report.format_mean_std(diffs, PP, 2, signed=True),
                len(accs),
            ]
            for (name, value), (accs, diffs) in summary["sweep"].items()
        ]
        sections.append(
            report.section(
                f"Sigma sweep at depth {max(args.depths)}",
                report.markdown_table(
                    ["optimizer", "sigma", "test accuracy (%)", "difference (pp)", "n"],
                    rows,
                    align="lrrrr",
                ),
            )
        )
    sections.append(
        "Accuracy: on the test split after the last epoch. std: sample standard deviation "
        "(ddof=1), omitted for one seed."
    )
    return report.document(f"Depth study: {args.family} on {args.dataset}", sections)


def plot_differences(summary, args, path):
    series = []
    for name in summary["compared"]:
        cells = [summary["comparisons"][(d, name)] for d in args.depths]
        series.append(
            (
                f"{name} − {base_of(name)}",
                args.depths,
                [PP * c["mean"] for c in cells],
                ([PP * c["low"] for c in cells], [PP * c["high"] for c in cells]),
            )
        )
    return report.errorbar_plot(
        path,
        series,
        "depth (weighted layers)",
        "test accuracy difference (percentage points)",
        f"{args.family} on {args.dataset}, {len(args.seeds)} seeds, {args.epochs} epochs, "
        f"{args.init} init; bars: bootstrap 95%",
        xticks=args.depths,
        dodge=0.012 * (max(args.depths) - min(args.depths) or 1),
    )
