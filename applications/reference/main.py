"""`python -m applications.reference`: the reference posterior and the comparison of methods.

    python -m applications.reference                    # both problems, every method
    python -m applications.reference --quick            # smoke test (tiny data and budget)
    python -m applications.reference --problems softmax --methods map,psgld --seeds 0,1

Resumable: the reference of a problem (`reference-<problem>.npz/json`) and the evaluation of
every method, temperature and seed (`evaluations/*.json`) are written once, complete, and read
back by a rerun with the same settings; a trained run's samples (`runs/`) too.
"""

import argparse
import dataclasses
import json
import math
import os
import platform
import shlex
import sys
import time

from applications import cli, files
from applications.reference import methods, metrics, nuts, posterior, problems, summary

PRIOR_STD = 0.5
#: NUTS per problem (4 chains; the network's run is shorter: its trajectories are longer).
NUTS = {
    "softmax": nuts.NutsSettings(num_chains=4, num_warmup=1000, num_samples=1000),
    "mlp": nuts.NutsSettings(num_chains=4, num_warmup=500, num_samples=750),
}
COLD_TEMPERATURE = 0.1
DEFAULTS = {
    "problems": list(problems.PROBLEMS),
    "methods": list(methods.METHODS),
    "temperatures": [1.0, COLD_TEMPERATURE],
    "seeds": [0],
    "output": os.path.join("runs", "reference"),
}
QUICK_NUTS = nuts.NutsSettings(num_chains=2, num_warmup=50, num_samples=50, max_tree_depth=5)
QUICK_BUDGET = methods.Budget(
    epochs=4, chains=2, batch_size=50, samples_per_chain=2, cycles=2, samples_per_cycle=1
)
QUICK_TAKE = {"train_take": 200, "test_take": 100}
QUICK_PROBLEMS = ["softmax"]

COLUMNS = (
    "problem", "method", "temperature", "seed", "samples", "epochs", "tv_test", "kl_test",
    "agreement_test", "tv_rotated", "tv_noisy", "mean_error", "variance_ratio",
    "variance_ratio_prior_only", "nll", "brier", "ece", "accuracy", "seconds",
)  # fmt: skip


def _choices(names, what):
    def parse(value):
        if value not in names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {value!r}; expected names from: {', '.join(names)}"
            )
        return value

    return parse


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m applications.reference",
        description="NUTS reference posteriors (numpyro, ArviZ diagnostics) of Bayesian "
        "softmax regression and a one-hidden-layer network on the 8x8 digits, and every "
        "sampling method of the study judged against them.",
        formatter_class=cli.HelpFormatter,
    )
    for flag, names, what in (
        ("--problems", problems.PROBLEMS, "problem"),
        ("--methods", tuple(methods.METHODS), "method"),
    ):
        parser.add_argument(
            flag,
            action=cli.ListAction,
            item=_choices(names, what),
            default=None,
            help=f"among {', '.join(names)} (default: all)",
        )
    parser.add_argument(
        "--temperatures",
        action=cli.ListAction,
        item=cli.positive_float,
        default=None,
        help="posterior temperatures of the Langevin methods, comma separated (default: "
        f"1,{COLD_TEMPERATURE:g}; --quick: 1)",
    )
    cli.add_seeds_argument(parser, DEFAULTS["seeds"])
    parser.add_argument("--quick", action="store_true", help="smoke-test settings (seconds)")
    parser.add_argument(
        "--output", default=None, help=f"output directory (default: {DEFAULTS['output']})"
    )
    return parser


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    args.problems = args.problems or (QUICK_PROBLEMS if args.quick else DEFAULTS["problems"])
    args.methods = args.methods or DEFAULTS["methods"]
    args.temperatures = args.temperatures or ([1.0] if args.quick else DEFAULTS["temperatures"])
    args.output = args.output or DEFAULTS["output"]
    args.budget = QUICK_BUDGET if args.quick else methods.Budget()
    args.take = QUICK_TAKE if args.quick else {}
    return parser, args


def machine():
    import jax
    import keras
    import numpyro

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
    }


def evaluate(problem, name, temperature, seed, context):
    """One method at one temperature and seed against the reference; read back if done."""
    from keras_langevin.sampling import calibration_report

    args, data, splits, reference = (context[k] for k in ("args", "data", "splits", "reference"))
    tag = f"{problem}-{name}" + (f"-T{temperature:g}" if temperature else "") + f"-seed{seed}"
    stem = os.path.join(args.output, "evaluations", tag)
    settings = {"budget": dataclasses.asdict(args.budget), "take": args.take, "seed": seed}
    if os.path.exists(stem + ".json"):
        with open(stem + ".json") as handle:
            stored = json.load(handle)
        if stored["settings"] == settings:
            print(f"  {tag}: evaluated before, skipped", flush=True)
            return _defined(stored["row"])
    started = time.time()
    samples, _, run_plan = methods.run_method(
        name, problem, data, PRIOR_STD, args.budget, temperature or 1.0, seed,
        os.path.join(args.output, "runs", tag),
    )  # fmt: skip
    probabilities = {
        split: problems.predictive_probabilities(samples, x, problem) for split, x in splits.items()
    }
    row = {"problem": problem, "method": name, "temperature": temperature, "seed": seed}
    row["samples"] = len(samples)
    row["epochs"] = run_plan.runs * run_plan.epochs
    row.update(metrics.compare(problem, samples, probabilities, reference, PRIOR_STD))
    cal = calibration_report(data.y_test, probabilities["test"])
    row.update({key: cal[key] for key in ("nll", "brier", "ece", "accuracy")})
    row["seconds"] = round(time.time() - started, 1)
    row = _defined(row)
    stored = {"settings": settings, "row": row, "plan": methods.plan_settings(run_plan)}
    files.write_json(stem + ".json", stored)
    print(
        f"  {tag}: TV {row['tv_test']:.4f} KL {row['kl_test']:.4f} NLL {row['nll']:.4f} "
        f"({row['seconds']} s)",
        flush=True,
    )
    return row


def _defined(row):
    """`row` with None for the undefined (NaN) values: valid JSON, empty CSV cells."""
    return {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in row.items()
    }


def run_problem(problem, args, rows):
    from keras_langevin.sampling import calibration_report

    data = problems.load_digits(**args.take)
    splits = problems.splits(data)
    settings = QUICK_NUTS if args.quick else NUTS[problem]
    reference, ref_summary = posterior.reference(
        problem, data, splits, PRIOR_STD, settings, args.output
    )
    cal = calibration_report(data.y_test, reference["probabilities_test"])
    ref_summary = {**ref_summary, **{k: cal[k] for k in ("nll", "brier", "ece", "accuracy")}}
    ref_summary["nuts"] = dataclasses.asdict(settings)
    context = {"args": args, "data": data, "splits": splits, "reference": reference}
    for seed in args.seeds:
        for name in args.methods:
            temperatures = args.temperatures if methods.METHODS[name].tempered else [None]
            for temperature in temperatures:
                rows.append(evaluate(problem, name, temperature, seed, context))
                files.write_csv(os.path.join(args.output, "results.csv"), COLUMNS, rows)
    return ref_summary


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, args = parse_args(argv)
    started = time.time()
    rows, references = [], {}
    for problem in args.problems:
        try:
            references[problem] = run_problem(problem, args, rows)
        except ValueError as error:
            parser.error(str(error))
    seconds = time.time() - started
    command = " ".join(["python -m applications.reference", *map(shlex.quote, argv)])
    context = {
        "command": command,
        "seconds": round(seconds, 1),
        "machine": machine(),
        "prior_std": PRIOR_STD,
        "budget": dataclasses.asdict(args.budget),
        "train_size": problems.TRAIN_SIZE if not args.take else args.take["train_take"],
        "hidden": problems.HIDDEN,
        "references": references,
        "learning_rates": {
            "map": methods.MAP_LR,
            "sgld": methods.SGLD_LR,
            "psgld": methods.PSGLD_LR,
            "csgld": methods.CSGLD_LR,
            "sghmc": methods.SGHMC_LR,
            "csghmc": methods.CSGHMC_LR,
        },
        "sghmc_momentum": methods.SGHMC_MOMENTUM,
    }
    outputs = summary.write(args.output, rows, context, methods.METHODS)
    print(f"{len(rows)} evaluations in {seconds:.1f} s. Outputs:")
    for path in outputs:
        print(f"  {path}")
    return rows
