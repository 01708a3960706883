"""Compare optimizers: several optimizers, several seeds, the same initial weights.

    python -m applications.compare                     # quick comparison on the embedded digits
    python -m applications.compare --optimizers sgd,lsgd,layer-lsgd --seeds 0,1,2,3,4 \\
        --model resnet56 --epochs 30 --output runs/compare-resnet56
    python -m applications.compare --quick             # smoke test, a few seconds per run

For every seed the model is built and initialised once and its initial weights are saved to
`initial_weights/seed<k>.weights.h5`; each optimizer's run loads that checkpoint, as in the
paper, so the optimizers of a seed start from the same point. They also see the same batches
in the same order (the data stream depends on the seed only). Every run is a resumable run of
the run engine in `runs/<optimizer>-seed<k>/` (log, TensorBoard, backup, model, summary): run
the same command again after an interruption and it continues where it stopped, skipping the
finished runs. Outputs, in `--output`:

    results.csv    every epoch (numbered from 1) of every run: seed, optimizer, epoch, loss,
                   accuracy, val_loss, val_accuracy, lr, sigma (val_* is the test split)
    results.md     per optimizer, mean +- standard deviation over seeds of the final and
                   best test accuracy and of the final training loss, with the epochs the
                   runs completed (a finished run stored by an earlier invocation with more
                   --epochs keeps its epochs and settings; it is not cut or relabelled)
    runs/          the runs
    curves.png     test accuracy (and training loss) against epochs, one line per
                   optimizer: mean over seeds with a +-1 standard deviation band
"""

import argparse
import os
import sys
import time

import numpy as np

from applications import cli, engine, files

DEFAULTS = {
    "model": "cnn-8",
    "optimizers": ("adam", "ladam", "layer-ladam"),
    "seeds": (0, 1),
    "epochs": 5,
    "batch_size": 64,
    "verbose": 0,
}

#: What `--quick` changes (explicitly given flags still win).
QUICK = {
    "model": "mlp-4",
    "epochs": 2,
    "train_take": 256,
    "test_take": 128,
}

COLUMNS = ("seed", "optimizer", *engine.LOG_FIELDS)


def build_parser(defaults=DEFAULTS):
    parser = argparse.ArgumentParser(
        prog="python -m applications.compare",
        description="Train several optimizers from the same initial weights for several seeds; "
        "write every epoch to a CSV, a markdown table of mean +- std, and a plot.",
        formatter_class=cli.HelpFormatter,
    )
    cli.add_seeds_argument(parser, defaults["seeds"])
    parser.add_argument("--epochs", type=cli.positive_int, default=defaults["epochs"])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke-test settings: "
        + ", ".join(f"--{key.replace('_', '-')} {value}" for key, value in QUICK.items())
        + " (flags given explicitly still apply)",
    )
    cli.add_model_data_arguments(parser, defaults)
    cli.add_optimizer_arguments(parser, defaults, several=True)
    cli.add_execution_arguments(parser, defaults)
    cli.add_distribution_arguments(parser)
    parser.add_argument(
        "--output", default=None, help="output directory (default: runs/compare-<model>-<dataset>)"
    )
    return parser


def parse_args(argv=None):
    """Parses and checks the arguments; `--quick` replaces the defaults by `QUICK`."""
    parser, args = cli.parse(build_parser, DEFAULTS, QUICK, argv)
    cli.check_optimizer_flags(parser, args, args.optimizers)
    return parser, args


# ----------------------------------------------------------------------------- reporting


def aggregate(rows, optimizers):
    """Per optimizer: mean and std over seeds of final/best test accuracy and final loss."""
    results = {}
    for name in optimizers:
        per_seed = {}
        for row in rows:
            if row["optimizer"] == name:
                per_seed.setdefault(row["seed"], []).append(row)
        if not per_seed:
            continue
        runs = [sorted(seed_rows, key=lambda row: row["epoch"]) for seed_rows in per_seed.values()]
        # the epochs the runs completed: a stored run keeps its own (an earlier invocation
        # with more --epochs), whatever this invocation's --epochs
        results[name] = {"runs": len(runs), "epochs": sorted({run[-1]["epoch"] for run in runs})}
        for key, values in (
            ("final_test_accuracy", [run[-1]["val_accuracy"] for run in runs]),
            ("best_test_accuracy", [max(row["val_accuracy"] for row in run) for run in runs]),
            ("final_train_loss", [run[-1]["loss"] for run in runs]),
        ):
            results[name][key] = engine.mean_std(values)[:2]
    return results


def epochs_text(epochs):
    """ "5" for runs of 5 epochs, "3-5" for runs of 3 to 5."""
    return f"{min(epochs)}" if len(set(epochs)) == 1 else f"{min(epochs)}-{max(epochs)}"


def markdown_table(results, args, parameters):
    """The results table; the epochs are those the runs completed (stored runs keep theirs)."""
    seeds = ", ".join(map(str, args.seeds))
    epochs = [e for result in results.values() for e in result["epochs"]] or [args.epochs]
    lines = [
        f"# {args.model} on {args.dataset}: optimizer comparison",
        "",
        (
            f"{args.model} ({parameters:,} parameters), {epochs_text(epochs)} epochs, batch size "
            f"{args.batch_size}, seeds {seeds}. For each seed every optimizer starts from the "
            "same initial weights. Mean ± standard deviation over seeds (n - 1 in the "
            "denominator); test accuracy is measured on the test split after each epoch, the "
            "best is the highest of these."
        ),
        "",
        "| optimizer | runs | epochs | final test accuracy | best test accuracy | final train loss |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        cells = [
            f"{result[key][0]:.4f}" + (f" ± {result[key][1]:.4f}" if result["runs"] > 1 else "")
            for key in ("final_test_accuracy", "best_test_accuracy", "final_train_loss")
        ]
        cells.insert(0, epochs_text(result["epochs"]))
        lines.append(f"| {name} | {result['runs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(path, rows, optimizers, title):
    """Test accuracy and training loss against epochs: mean over seeds, +-1 std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in optimizers:
        runs = {}
        for row in rows:
            if row["optimizer"] == name:
                runs.setdefault(row["seed"], {})[row["epoch"]] = row
        if not runs:
            continue
        epochs = sorted(set.intersection(*(set(run) for run in runs.values())))
        for ax, key in ((ax_acc, "val_accuracy"), (ax_loss, "loss")):
            values = np.array([[run[e][key] for e in epochs] for run in runs.values()])
            mean = values.mean(axis=0)
            std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros_like(mean)
            (line,) = ax.plot(epochs, mean, marker="o", markersize=3, label=name)
            ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", title="Test accuracy")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="Training loss", yscale="log")
    for ax in (ax_acc, ax_loss):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend()
    figure.suptitle(title)
    figure.tight_layout()
    files.save_figure_atomic(figure, path)
    plt.close(figure)


# ----------------------------------------------------------------------------- main


def main(argv=None):
    parser, args = parse_args(argv)
    distribution = cli.setup_distribution(parser, args)
    output = args.output or os.path.join("runs", f"compare-{args.model}-{args.dataset}")
    paths = {
        "csv": os.path.join(output, "results.csv"),
        "table": os.path.join(output, "results.md"),
        "plot": os.path.join(output, "curves.png"),
        "initial_weights": os.path.join(output, "initial_weights"),
        "runs": os.path.join(output, "runs"),
    }
    started = time.time()
    rows, parameters = [], 0
    with cli.usage_errors(parser):
        configs = [engine.RunConfig.from_args(args, optimizer=name) for name in args.optimizers]
        engine.check_configs(configs)
    for seed in args.seeds:
        for name in args.optimizers:
            config = engine.RunConfig.from_args(args, optimizer=name, seed=seed)
            with cli.usage_errors(parser):
                initial = engine.save_initial_weights(
                    config, os.path.join(paths["initial_weights"], f"seed{seed}.weights.h5")
                )
                summary, run_rows = engine.run(
                    config,
                    os.path.join(paths["runs"], f"{name}-seed{seed}"),
                    initial_weights=initial,
                    verbose=args.verbose,
                    distribution=distribution,
                )
            parameters = summary["parameters"]
            rows += [{"seed": seed, "optimizer": name, **row} for row in run_rows]
            if distribution.is_chief:  # the other processes of a multi-worker run write none
                files.write_csv(paths["csv"], COLUMNS, rows)  # partial results survive a stop
            print(
                f"seed {seed} {name:16s} test accuracy {summary['final_test_accuracy']:.4f} "
                f"(best {summary['best_test_accuracy']:.4f}), train loss "
                f"{summary['final_train_loss']:.4f}, {summary['wall_time_s']:.1f} s",
                flush=True,
            )
    results = aggregate(rows, args.optimizers)
    table = markdown_table(results, args, parameters)
    if distribution.is_chief:
        files.write_text(paths["table"], table)
        plot_curves(paths["plot"], rows, args.optimizers, f"{args.model} on {args.dataset}")
    sys.stdout.write("\n" + table + "\n")
    print(
        f"{len(rows)} epochs of {len(args.seeds) * len(args.optimizers)} runs in "
        f"{time.time() - started:.1f} s"
    )
    print("Outputs:")
    for key, path in paths.items():
        print(f"  {key:16s} {path}")
    return results


if __name__ == "__main__":
    main()
