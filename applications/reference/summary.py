"""The comparison's results: results.csv, results.json, results.md and a figure, through the
shared report module (`applications.report`)."""

import math
import os

import numpy as np

from applications import files, report

CSV_NAME, JSON_NAME, MD_NAME, FIGURE_NAME = (
    "results.csv", "results.json", "results.md", "distance.png",
)  # fmt: skip


def _values(rows, key):
    values = [row[key] for row in rows if row.get(key) is not None]
    return [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def _cell(rows, key, digits=3):
    return report.format_mean_std(_values(rows, key), digits=digits)


def groups(rows):
    """Rows grouped by (problem, method, temperature), in the order first seen."""
    out = {}
    for row in rows:
        out.setdefault((row["problem"], row["method"], row["temperature"]), []).append(row)
    return out


def reference_table(references):
    headers = [
        "problem", "weights", "chains x (warm-up + draws)", "divergences", "R-hat max (median)",
        "weights R-hat > 1.01", "bulk ESS min (median)", "tail ESS min", "function R-hat max",
        "function ESS min", "chain TV to pooled (max)", "prior-only var / s² (median)",
        "gradient evaluations (full data)", "seconds",
    ]  # fmt: skip
    rows = []
    for problem, ref in references.items():
        nuts = ref["nuts"]
        rows.append([
            problem, ref["weights"],
            f"{nuts['num_chains']} x ({nuts['num_warmup']} + {nuts['num_samples']})",
            ref["divergences"],
            f"{ref['rhat']['max']:.3f} ({ref['rhat']['median']:.3f})",
            ref["rhat_above_1.01"],
            f"{ref['ess_bulk']['min']:.0f} ({ref['ess_bulk']['median']:.0f})",
            f"{ref['ess_tail']['min']:.0f}",
            f"{ref['rhat_function']['max']:.3f}", f"{ref['ess_function']['min']:.0f}",
            f"{max(ref['chain_tv_to_pooled']):.4f}",
            f"{ref['prior_only_variance_over_prior']['median']:.3f}",
            f"{ref['gradient_evaluations']:,}", f"{ref['seconds']:.0f}",
        ])  # fmt: skip
    return report.markdown_table(headers, rows, align="l" + "r" * (len(headers) - 1))


def comparison_table(problem, rows, reference, labels):
    headers = [
        "method", "T", "epochs", "samples", "TV test", "KL test", "agreement", "TV rotated",
        "TV noisy", "mean error (sd)", "variance ratio", "prior-only variance ratio", "NLL",
        "Brier", "ECE", "accuracy",
    ]  # fmt: skip
    lines = [[
        "reference (NUTS)", "1", "–", reference["draws"], "0", "0", "1", "0", "0", "0", "1",
        f"{reference['prior_only_variance_over_prior']['median']:.3f}",
        f"{reference['nll']:.4f}", f"{reference['brier']:.4f}", f"{reference['ece']:.4f}",
        f"{reference['accuracy']:.4f}",
    ]]  # fmt: skip
    for (row_problem, method, temperature), group in groups(rows).items():
        if row_problem != problem:
            continue
        lines.append([
            labels[method].label if method in labels else method,
            "MAP" if temperature is None else f"{temperature:g}",
            group[0]["epochs"], group[0]["samples"],
            _cell(group, "tv_test", 4), _cell(group, "kl_test", 4),
            _cell(group, "agreement_test", 3), _cell(group, "tv_rotated", 4),
            _cell(group, "tv_noisy", 4), _cell(group, "mean_error", 2),
            _cell(group, "variance_ratio", 2), _cell(group, "variance_ratio_prior_only", 2),
            _cell(group, "nll", 4), _cell(group, "brier", 4), _cell(group, "ece", 4),
            _cell(group, "accuracy", 4),
        ])  # fmt: skip
    return report.markdown_table(headers, lines, align="ll" + "r" * (len(headers) - 2))


def text(rows, context, labels):
    budget = context["budget"]
    e, k = budget["epochs"], budget["chains"]
    mu = context.get("sghmc_momentum")
    momentum = f" (SGHMC and cyclical SGHMC: momentum {mu:g})" if mu is not None else ""
    setup = (
        f"Digits 8x8 (scikit-learn), N = {context['train_size']} training examples, the rest "
        f"for testing (fixed split). Prior N(0, {context['prior_std']:g}²) on every weight. "
        f"Budget, in epochs of minibatch gradients (batch {budget['batch_size']}): MAP {e} "
        f"(one model); deep ensemble {k} members x {e}; SGLD, pSGLD, SGHMC and their cyclical "
        f"forms {k} chains x {e} (SGLD, pSGLD, SGHMC: burn-in {e // 2}, then "
        f"{budget['samples_per_chain']} samples per chain; cyclical SGLD and SGHMC: "
        f"{budget['cycles']} cycles per chain, {budget['samples_per_cycle']} sample(s) at the "
        "end of each). Learning rates: "
        + ", ".join(f"{m} {lr:g}" for m, lr in context["learning_rates"].items())
        + momentum
        + ". Mean ± standard deviation over seeds where there are several."
    )
    machine = context["machine"]
    header = (
        f"Command: `{context['command']}`  \nRun time of this invocation: "
        f"{context['seconds']:.0f} s (references and evaluations read back from an earlier "
        f"invocation are not counted). Machine: {machine['cpus']}-core CPU, "
        f"{machine['platform']}; Keras {machine['keras']} ({machine['keras_backend']}), "
        f"JAX {machine['jax']}, numpyro {machine['numpyro']}."
    )
    sections = [header, setup, report.section("Reference posteriors (NUTS)",
                reference_table(context["references"]))]  # fmt: skip
    for problem, reference in context["references"].items():
        sections.append(
            report.section(
                f"Methods against the reference: {problem}",
                comparison_table(problem, rows, reference, labels),
            )
        )
    return report.document("Sampling methods against a NUTS reference posterior", sections)


def plot(path, rows, labels):
    """TV distance on the test split per method, one panel per problem."""
    plt = report.pyplot()
    problems = list(dict.fromkeys(row["problem"] for row in rows))
    figure, axes = plt.subplots(1, len(problems), figsize=(5 * len(problems), 3.6), squeeze=False)
    for axis, problem in zip(axes[0], problems):
        keys = [key for key in groups(rows) if key[0] == problem]
        names = [
            (labels[m].label if m in labels else m) + ("" if t is None else f", T={t:g}")
            for _, m, t in keys
        ]
        means = [np.mean(_values(groups(rows)[key], "tv_test")) for key in keys]
        axis.barh(range(len(keys)), means, color="C0")
        axis.set_yticks(range(len(keys)), names, fontsize=7)
        axis.invert_yaxis()
        axis.set_xlabel("total variation to the NUTS predictive (test)")
        axis.set_title(problem, fontsize=10)
    return report.save_figure(figure, path)


def write(output, rows, context, labels):
    """Writes every output; returns their paths."""
    paths = [os.path.join(output, name) for name in (CSV_NAME, JSON_NAME, MD_NAME, FIGURE_NAME)]
    from applications.reference.main import COLUMNS

    files.write_csv(paths[0], COLUMNS, rows)
    files.write_json(paths[1], {**context, "rows": rows})
    report.write_markdown(paths[2], text(rows, context, labels))
    if rows:
        plot(paths[3], rows, labels)
    else:
        paths.pop()
    return paths
