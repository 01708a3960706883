"""Compare optimizers: several optimizers, several seeds, the same initial weights.

    python -m applications.compare                     # quick comparison on the embedded digits
    python -m applications.compare --optimizers sgd,lsgd,layer-lsgd --seeds 0,1,2,3,4 \\
        --model resnet56 --epochs 30 --output runs/compare-resnet56
    python -m applications.compare --quick             # smoke test, a few seconds per run

For every seed the model is built and initialised once and its initial weights are saved to
`initial_weights/seed<k>.weights.h5`; each optimizer's run loads that checkpoint, as in the
paper, so the optimizers of a seed start from the same point. They also see the same batches
in the same order (the data stream depends on the seed only). Outputs, in `--output`:

    results.csv    every epoch of every run: seed, optimizer, epoch, loss, accuracy,
                   val_loss, val_accuracy, lr, sigma (val_* is the test split)
    results.md     per optimizer, mean +- standard deviation over seeds of the final and
                   best test accuracy and of the final training loss
    curves.png     test accuracy (and training loss) against epochs, one line per
                   optimizer: mean over seeds with a +-1 standard deviation band
"""

import argparse
import csv
import io
import os
import sys
import time

import numpy as np

from applications import common
from applications import data as data_lib

DEFAULTS = {
    "model": "cnn-8",
    "optimizers": "adam,ladam,layer-ladam",
    "seeds": "0,1",
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

COLUMNS = (
    "seed",
    "optimizer",
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "sigma",
)


def build_parser(defaults=DEFAULTS):
    parser = argparse.ArgumentParser(
        prog="python -m applications.compare",
        description="Train several optimizers from the same initial weights for several seeds; "
        "write every epoch to a CSV, a markdown table of mean +- std, and a plot.",
        formatter_class=common.HelpFormatter,
    )
    parser.add_argument(
        "--optimizers",
        type=common.parse_optimizer_list,
        default=common.parse_optimizer_list(defaults["optimizers"]),
        help="comma-separated optimizer names (sgd, lsgd, layer-lsgd, adam, ladam, ..., "
        "layer-ladadelta)",
    )
    parser.add_argument(
        "--seeds",
        type=common.parse_seed_list,
        default=common.parse_seed_list(defaults["seeds"]),
        help="comma-separated seeds; each gives its own initial weights, data order and noise",
    )
    parser.add_argument(
        "--epochs", type=common._positive_int, default=defaults["epochs"], help="epochs per run"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke-test settings: "
        + ", ".join(f"--{key.replace('_', '-')} {value}" for key, value in QUICK.items())
        + " (flags given explicitly still apply)",
    )
    common.add_common_arguments(parser, defaults)
    parser.add_argument(
        "--output",
        default=None,
        help="output directory (default: runs/compare-<model>-<dataset>)",
    )
    return parser


def parse_args(argv=None):
    """Parses the arguments; `--quick` replaces the defaults by `QUICK`."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--quick", action="store_true")
    known, _ = pre.parse_known_args(argv)
    parser = build_parser({**DEFAULTS, **QUICK} if known.quick else DEFAULTS)
    return parser, parser.parse_args(argv)


# ----------------------------------------------------------------------------- training


def save_initial_weights(args, seed, path):
    """Builds the model for `seed` once and saves its initial weights to `path`."""
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    dataset = common.load_data(args, seed)
    model = common.build_model(args, dataset)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.save_weights(path, overwrite=True)
    return model.count_params()


def train_one(args, seed, optimizer_name, initial_weights):
    """One run: the model of `seed` from `initial_weights`, trained with `optimizer_name`.

    Returns the rows (dicts with `COLUMNS`) of its epochs.
    """
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    dataset = common.load_data(args, seed)
    model = common.build_model(args, dataset)
    model.load_weights(initial_weights)
    optimizer = common.build_optimizer(args, optimizer_name, dataset.steps_per_epoch, seed)
    common.compile_model(model, optimizer, dataset)
    callbacks = [common.EpochInfo()]
    if args.verbose:
        callbacks.append(keras.callbacks.ProgbarLogger())
    history = model.fit(
        common.training_stream(dataset),
        epochs=args.epochs,
        steps_per_epoch=dataset.steps_per_epoch,
        validation_data=dataset.test,
        callbacks=callbacks,
        verbose=args.verbose,
        shuffle=False,
    )
    logs = history.history
    return [
        {
            "seed": seed,
            "optimizer": optimizer_name,
            "epoch": epoch,
            **{key: float(logs[key][epoch]) for key in COLUMNS[3:]},
        }
        for epoch in range(len(logs["loss"]))
    ]


# ----------------------------------------------------------------------------- reporting


def write_csv(path, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    common.write_text(path, buffer.getvalue())


def _mean_std(values):
    values = np.asarray(values, dtype=np.float64)
    std = values.std(ddof=1) if values.size > 1 else 0.0
    return float(values.mean()), float(std)


def aggregate(rows, optimizers):
    """Per optimizer: mean and std over seeds of final/best test accuracy and final loss."""
    results = {}
    for name in optimizers:
        per_seed = {}
        for row in rows:
            if row["optimizer"] == name:
                per_seed.setdefault(row["seed"], []).append(row)
        finals, bests, losses = [], [], []
        for seed_rows in per_seed.values():
            seed_rows = sorted(seed_rows, key=lambda row: row["epoch"])
            finals.append(seed_rows[-1]["val_accuracy"])
            bests.append(max(row["val_accuracy"] for row in seed_rows))
            losses.append(seed_rows[-1]["loss"])
        if per_seed:
            results[name] = {
                "runs": len(per_seed),
                "final_test_accuracy": _mean_std(finals),
                "best_test_accuracy": _mean_std(bests),
                "final_train_loss": _mean_std(losses),
            }
    return results


def markdown_table(results, args, parameters):
    seeds = ", ".join(map(str, args.seeds))
    lines = [
        f"# {args.model} on {args.dataset}: optimizer comparison",
        "",
        (
            f"{args.model} ({parameters:,} parameters), {args.epochs} epochs, batch size "
            f"{args.batch_size}, seeds {seeds}. For each seed every optimizer starts from the "
            "same initial weights. Mean ± standard deviation over seeds (n - 1 in the "
            "denominator); test accuracy is measured on the test split after each epoch, the "
            "best is the highest of these."
        ),
        "",
        "| optimizer | runs | final test accuracy | best test accuracy | final train loss |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        cells = [
            "{:.4f} ± {:.4f}".format(*result[key])
            for key in ("final_test_accuracy", "best_test_accuracy", "final_train_loss")
        ]
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
        x = np.asarray(epochs) + 1
        for ax, key in ((ax_acc, "val_accuracy"), (ax_loss, "loss")):
            values = np.array([[run[e][key] for e in epochs] for run in runs.values()])
            mean = values.mean(axis=0)
            std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros_like(mean)
            (line,) = ax.plot(x, mean, marker="o", markersize=3, label=name)
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", title="Test accuracy")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="Training loss", yscale="log")
    for ax in (ax_acc, ax_loss):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend()
    figure.suptitle(title)
    figure.tight_layout()
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp.png")
    figure.savefig(tmp, dpi=120)
    plt.close(figure)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- main


def main(argv=None):
    parser, args = parse_args(argv)
    output = args.output or os.path.join("runs", f"compare-{args.model}-{args.dataset}")
    paths = {
        "csv": os.path.join(output, "results.csv"),
        "table": os.path.join(output, "results.md"),
        "plot": os.path.join(output, "curves.png"),
        "initial_weights": os.path.join(output, "initial_weights"),
    }
    started = time.time()
    rows = []
    parameters = 0
    with common.precision(args.mixed_precision):
        for seed in args.seeds:
            initial = os.path.join(paths["initial_weights"], f"seed{seed}.weights.h5")
            try:
                parameters = save_initial_weights(args, seed, initial)
            except (ValueError, TypeError, data_lib.DatasetNotAvailableError) as err:
                parser.error(str(err))
            for name in args.optimizers:
                run_started = time.time()
                run_rows = train_one(args, seed, name, initial)
                rows.extend(run_rows)
                write_csv(paths["csv"], rows)  # partial results survive an interruption
                last = run_rows[-1]
                best = max(row["val_accuracy"] for row in run_rows)
                print(
                    f"seed {seed} {name:16s} test accuracy {last['val_accuracy']:.4f} "
                    f"(best {best:.4f}), train loss {last['loss']:.4f}, "
                    f"{time.time() - run_started:.1f} s",
                    flush=True,
                )

    results = aggregate(rows, args.optimizers)
    table = markdown_table(results, args, parameters)
    common.write_text(paths["table"], table)
    plot_curves(paths["plot"], rows, args.optimizers, f"{args.model} on {args.dataset}")
    sys.stdout.write("\n" + table + "\n")
    print(
        f"{len(rows)} epochs of {len(args.seeds) * len(args.optimizers)} runs in "
        f"{time.time() - started:.1f} s"
    )
    print("Outputs:")
    for key in ("csv", "table", "plot", "initial_weights"):
        print(f"  {key:16s} {paths[key]}")
    return results


if __name__ == "__main__":
    main()
