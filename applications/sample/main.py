"""`python -m applications.sample`: the sampling study end to end (see `applications.sample`)."""

import os
import shlex
import sys
import time

from applications import cli, files
from applications.sample.evaluation import train_and_evaluate
from applications.sample.plan import COLUMNS, check_plans, load_data, parse_args
from applications.sample.summary import markdown_table, plot_entropy, plot_reliability


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, args = parse_args(argv)
    distribution = cli.setup_distribution(parser, args)  # before TensorFlow or JAX run
    output = args.output or os.path.join("runs", f"sample-{args.model}-{args.dataset}")
    paths = {
        "csv": os.path.join(output, "results.csv"),
        "table": os.path.join(output, "results.md"),
        "reliability": os.path.join(output, "reliability.png"),
        "entropy": os.path.join(output, "entropy.png"),
        "evaluations": os.path.join(output, "evaluations"),
        "initial_weights": os.path.join(output, "initial_weights"),
        "runs": os.path.join(output, "runs"),
    }
    started = time.time()
    from applications.data import DatasetNotAvailableError

    try:
        data = load_data(args)
    except (ValueError, DatasetNotAvailableError) as error:
        parser.error(str(error))
    check_plans(parser, args, data)
    rows, arrays = [], {method: [] for method in args.methods}
    for seed in args.seeds:
        for method in args.methods:
            row, method_arrays = train_and_evaluate(
                parser, args, method, seed, data, paths, distribution
            )
            if row is None:  # not the chief: it writes nothing
                continue
            rows.append(row)
            arrays[method].append(method_arrays)
            files.write_csv(paths["csv"], COLUMNS, rows)  # partial results survive a stop
    seconds = time.time() - started
    if not distribution.is_chief:
        print(
            f"{distribution.task}: done in {seconds:.1f} s; the chief writes the results to "
            f"{output}"
        )
        return rows
    command = " ".join(["python -m applications.sample", *map(shlex.quote, argv)])
    table = markdown_table(rows, args, data, command, seconds, distribution)
    files.write_text(paths["table"], table)
    title = f"{args.model} on {args.dataset}, seeds pooled"
    plot_reliability(paths["reliability"], arrays, args.methods, title + ": test split")
    num_classes = arrays[args.methods[0]][0]["probabilities_test"].shape[1]
    plot_entropy(paths["entropy"], arrays, args.methods, num_classes, title)
    sys.stdout.write("\n" + table + "\n")
    print(f"{len(rows)} evaluations in {seconds:.1f} s")
    print("Outputs:")
    for key, path in paths.items():
        print(f"  {key:16s} {path}")
    return rows
