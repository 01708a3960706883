"""Train one model with one optimizer (`model.fit`), resumable, and export it.

    python -m applications.train                      # ResNet-20, Layer LAdam, embedded digits
    python -m applications.train --optimizer adam --epochs 30 --output runs/adam
    python -m applications.train --model paper-resnet --dataset cifar10 --epochs 200 \\
        --optimizer layer-ladam --batch-size 128

Everything of a run goes to its directory (`--output`, by default `runs/<run name>`):

    log.csv          one row per epoch: loss, accuracy, val_loss, val_accuracy, lr, sigma
    tensorboard/     TensorBoard logs (the same scalars; `tensorboard --logdir runs`)
    backup/          the training state after the last completed epoch (Keras BackupAndRestore)
    model.keras      the trained model
    summary.json     arguments, final and best test accuracy, final training loss, epochs,
                     wall time of this invocation, paths

The SavedModel goes to `--export-dir` (by default `saved_models/<run name>`).

Resuming: a run that is interrupted (even killed) is continued by running the same command
again. It restarts from the last completed epoch and ends with exactly the weights an
uninterrupted run ends with: the backup holds the model and optimizer state (step counter,
moments, noise seed), and the training data is one seeded stream of batches that is resumed at
the right batch. A run that has already finished is not retrained (more `--epochs` continue it).
Running a different configuration in the same directory is refused. The test accuracy
reported is measured on the dataset's test split after every epoch ("val_*" columns).
"""

import argparse
import csv
import importlib.util
import json
import os
import shutil
import sys
import time

import keras

from applications import common
from applications import data as data_lib
from applications import optimizers as optimizers_lib

DEFAULTS = {
    "model": "resnet20",
    "optimizer": "layer-ladam",
    "epochs": 10,
    "batch_size": 32,
    "seed": 0,
}

# The arguments that determine the computation; a backup made with other values is not resumed.
SETTINGS = (
    "model",
    "model_options",
    "dataset",
    "image_size",
    "augment",
    "batch_size",
    "train_take",
    "test_take",
    "optimizer",
    "lr",
    "lr_schedule",
    "sigma",
    "sigma_schedule",
    "decay_epochs",
    "langevin_layers",
    "noise",
    "seed",
    "mixed_precision",
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m applications.train",
        description="Train an image classifier with a (Layer) Langevin optimizer or its Keras "
        "counterpart; resumable with the same command after an interruption.",
        formatter_class=common.HelpFormatter,
    )
    parser.add_argument(
        "--optimizer",
        choices=optimizers_lib.OPTIMIZERS,
        default=DEFAULTS["optimizer"],
        help="optimizer: <base> is Keras's, l<base> adds Langevin noise to all layers, "
        "layer-l<base> only to the first --langevin-layers",
    )
    parser.add_argument(
        "--epochs", type=common._positive_int, default=DEFAULTS["epochs"], help="epochs"
    )
    parser.add_argument(
        "--seed",
        type=common._non_negative_int,
        default=DEFAULTS["seed"],
        help="seed of the initial weights, data order, augmentation and noise",
    )
    common.add_common_arguments(parser, DEFAULTS)
    group = parser.add_argument_group("outputs")
    group.add_argument(
        "--run-name",
        default=None,
        help="name of the run (default: <model>-<optimizer>-<dataset>-seed<seed>)",
    )
    group.add_argument(
        "--output",
        default=None,
        help="run directory for logs, backup, model and summary (default: runs/<run name>)",
    )
    group.add_argument(
        "--export",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="export a TensorFlow SavedModel (serving signature 'serve') at the end",
    )
    group.add_argument(
        "--export-dir",
        default=None,
        help="where to export the SavedModel (default: saved_models/<run name>)",
    )
    return parser


def settings_of(args):
    """The computation-determining arguments, in their JSON form."""
    return json.loads(
        json.dumps({key: getattr(args, key) for key in SETTINGS}, default=common._json_default)
    )


def run_paths(args):
    run_name = args.run_name or f"{args.model}-{args.optimizer}-{args.dataset}-seed{args.seed}"
    run_dir = args.output or os.path.join("runs", run_name)
    return {
        "run_name": run_name,
        "run_dir": run_dir,
        "csv_log": os.path.join(run_dir, "log.csv"),
        "tensorboard": os.path.join(run_dir, "tensorboard"),
        "backup": os.path.join(run_dir, "backup"),
        "model": os.path.join(run_dir, "model.keras"),
        "summary": os.path.join(run_dir, "summary.json"),
        "export": (args.export_dir or os.path.join("saved_models", run_name))
        if args.export
        else None,
    }


def read_log(path):
    """The rows of a CSV log, as dicts of floats (epoch as int)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        {key: int(value) if key == "epoch" else float(value) for key, value in row.items()}
        for row in rows
    ]


def truncate_log(path, start_epoch):
    """Keeps the header and the rows of epochs before `start_epoch` (epochs that the backup
    covers); rows of later epochs come from an interrupted attempt and are redone."""
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    kept = [row for row in body if row and int(row[header.index("epoch")]) < start_epoch]
    if len(kept) == len(body):
        return
    lines = [header, *kept]
    text = "".join(",".join(row) + "\n" for row in lines)
    common.write_text(path, text)


def clear_previous_outputs(paths):
    """A fresh start (no backup): the logs and results of an earlier attempt are removed."""
    for key in ("csv_log", "summary", "model"):
        if os.path.exists(paths[key]):
            os.remove(paths[key])
    shutil.rmtree(paths["tensorboard"], ignore_errors=True)


def summarize(rows):
    if not rows:
        return {}
    last = rows[-1]
    best = max(rows, key=lambda row: row.get("val_accuracy", float("-inf")))
    return {
        "final_test_accuracy": last.get("val_accuracy"),
        "final_test_loss": last.get("val_loss"),
        "best_test_accuracy": best.get("val_accuracy"),
        "best_epoch": best["epoch"] + 1,
        "final_train_loss": last.get("loss"),
        "final_train_accuracy": last.get("accuracy"),
        "final_lr": last.get("lr"),
        "final_sigma": last.get("sigma"),
    }


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    started = time.time()
    paths = run_paths(args)
    settings = settings_of(args)

    backup = common.AtomicBackupAndRestore.read_metadata(paths["backup"])
    start_epoch = 0
    if backup is not None:
        previous = backup.get("settings")
        if previous is not None and previous != settings:
            changed = sorted(
                k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k)
            )
            parser.error(
                f"{paths['run_dir']} holds a backup of a run with other settings "
                f"(different: {', '.join(changed)}). Resume it with the same arguments, or use "
                "another --output (or delete that directory)."
            )
        start_epoch = int(backup["epoch"])

    with common.precision(args.mixed_precision):
        keras.utils.set_random_seed(args.seed)
        try:
            dataset = common.load_data(args, args.seed)
            model = common.build_model(args, dataset)
            optimizer = common.build_optimizer(
                args, args.optimizer, dataset.steps_per_epoch, args.seed
            )
        except (ValueError, TypeError, data_lib.DatasetNotAvailableError) as err:
            parser.error(str(err))
        common.compile_model(model, optimizer, dataset)

        os.makedirs(paths["run_dir"], exist_ok=True)
        if start_epoch == 0:
            clear_previous_outputs(paths)
        else:
            truncate_log(paths["csv_log"], start_epoch)
            print(f"Resuming {paths['run_dir']} after epoch {start_epoch}.", file=sys.stderr)
        if start_epoch >= args.epochs:
            print(
                f"The run has already completed {start_epoch} epochs (--epochs {args.epochs}); "
                "nothing to train.",
                file=sys.stderr,
            )

        callbacks = [common.EpochInfo()]  # first: the others log lr and sigma
        if args.verbose:
            callbacks.append(keras.callbacks.ProgbarLogger())
        callbacks.append(keras.callbacks.CSVLogger(paths["csv_log"], append=True))
        if importlib.util.find_spec("tensorboard") is not None:
            callbacks.append(
                keras.callbacks.TensorBoard(
                    paths["tensorboard"], write_graph=False, update_freq="epoch", profile_batch=0
                )
            )
        else:
            print(
                "TensorBoard is not installed (pip install tensorboard): no TensorBoard logs.",
                file=sys.stderr,
            )
        # last: an epoch counts as done once its logs are written
        callbacks.append(
            common.AtomicBackupAndRestore(
                paths["backup"], delete_checkpoint=False, extra_metadata={"settings": settings}
            )
        )
        model.fit(
            common.training_stream(dataset, start_epoch),
            epochs=args.epochs,
            steps_per_epoch=dataset.steps_per_epoch,
            initial_epoch=start_epoch,
            validation_data=dataset.test,
            callbacks=callbacks,
            verbose=args.verbose,
            shuffle=False,  # the stream is shuffled, reproducibly, by the input pipeline
        )

        common.save_model_atomic(model, paths["model"])
        if paths["export"] is not None:
            common.export_atomic(model, paths["export"])

    rows = read_log(paths["csv_log"])
    summary = {
        "run_name": paths["run_name"],
        "args": vars(args),
        "epochs": len(rows),
        "resumed_from_epoch": start_epoch,
        **summarize(rows),
        "train_size": dataset.train_size,
        "test_size": dataset.test_size,
        "steps_per_epoch": dataset.steps_per_epoch,
        "parameters": model.count_params(),
        "wall_time_s": round(time.time() - started, 3),
        "paths": {key: value for key, value in paths.items() if key != "run_name"},
        "versions": {
            "python": sys.version.split()[0],
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
        },
    }
    common.write_json(paths["summary"], summary)

    print(
        f"final test accuracy {summary.get('final_test_accuracy', float('nan')):.4f}, "
        f"best {summary.get('best_test_accuracy', float('nan')):.4f} "
        f"(epoch {summary.get('best_epoch')}), wall time {summary['wall_time_s']:.1f} s"
    )
    print("Outputs:")
    for key in ("run_dir", "csv_log", "tensorboard", "model", "summary", "export"):
        if paths[key] is not None:
            print(f"  {key:12s} {paths[key]}")
    return summary


if __name__ == "__main__":
    main()
