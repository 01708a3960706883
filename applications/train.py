"""Train one model with one optimizer (`model.fit`), resumable, and export it.

    python -m applications.train                      # ResNet-20, Layer LAdam, embedded digits
    python -m applications.train --lr-schedule inverse-time --sigma-schedule log  # the paper's
    python -m applications.train --optimizer adam --epochs 30 --output runs/adam
    python -m applications.train --model paper-resnet --dataset cifar10 --epochs 200 \\
        --optimizer layer-ladam --batch-size 128

The defaults are the paper's optimizer settings (learning rate and sigma 5e-3, the author's
epsilon, noise on the first 30% of the layers) except the schedules: the learning rate and
sigma both follow a cosine from their initial value down to 0 at the last step of `--epochs`,
so that the run ends converged (the paper's schedules, `--lr-schedule inverse-time
--sigma-schedule log`, anneal over 40 epochs and stay large after 10). With a cosine schedule
the run's length is part of its settings: continuing a finished run with more `--epochs` is
refused (the schedule would have been another one); give `--decay-epochs` to fix T.

Everything of a run goes to its directory (`--output`, by default `runs/<run name>`):

    log.csv          one row per epoch (numbered from 1): loss, accuracy, val_loss,
                     val_accuracy, lr, sigma
    tensorboard/     TensorBoard logs (the same scalars; `tensorboard --logdir runs`)
    backup/          the training state after the last completed epoch (Keras BackupAndRestore)
    model.keras      the trained model
    summary.json     settings, final and best test accuracy, final training loss, epochs,
                     wall time of this invocation, paths

The SavedModel goes to `--export-dir` (by default `saved_models/<run name>`).

Resuming: a run that is interrupted (even killed) is continued by running the same command
again. It restarts from the last completed epoch and ends with exactly the weights an
uninterrupted run ends with: the backup holds the model and optimizer state (step counter,
moments, noise seed), and the training data is one seeded stream of batches that is resumed at
the right batch. A run that has already finished is not retrained (more `--epochs` continue it
when the schedules do not depend on the run's length).
Running a different configuration in the same directory is refused, and so is a flag that
the optimizer would not use (`--optimizer adam --sigma 0.1`). The test accuracy
reported is measured on the dataset's test split after every epoch ("val_*" columns).
"""

import argparse
import os

from applications import cli, engine

DEFAULTS = {
    "model": "resnet20",
    "optimizer": "layer-ladam",
    "epochs": 10,
    "batch_size": 32,
    "seed": 0,
    # Learning rate and sigma anneal to 0 over the run (T = --epochs), so that the run ends
    # converged; `--lr-schedule inverse-time --sigma-schedule log` gives the paper's.
    "lr_schedule": "cosine",
    "sigma_schedule": "cosine",
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m applications.train",
        description="Train an image classifier with a (Layer) Langevin optimizer or its Keras "
        "counterpart; resumable with the same command after an interruption.",
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument("--epochs", type=cli.positive_int, default=DEFAULTS["epochs"])
    parser.add_argument(
        "--seed",
        type=cli.non_negative_int,
        default=DEFAULTS["seed"],
        help="seed of the initial weights, data order, augmentation and noise",
    )
    cli.add_model_data_arguments(parser, DEFAULTS)
    cli.add_optimizer_arguments(parser, DEFAULTS)
    cli.add_execution_arguments(parser, DEFAULTS)
    cli.add_distribution_arguments(parser)
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


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    cli.check_optimizer_flags(parser, args, [args.optimizer], DEFAULTS)
    distribution = cli.setup_distribution(parser, args)
    run_name = args.run_name or f"{args.model}-{args.optimizer}-{args.dataset}-seed{args.seed}"
    run_dir = args.output or os.path.join("runs", run_name)
    export_dir = (
        (args.export_dir or os.path.join("saved_models", run_name)) if args.export else None
    )
    with cli.usage_errors(parser):
        summary, _ = engine.run(
            engine.RunConfig.from_args(args),
            run_dir,
            export_dir=export_dir,
            verbose=args.verbose,
            extra_summary={"run_name": run_name, "args": vars(args)},
            distribution=distribution,
        )
    print(
        f"final test accuracy {summary.get('final_test_accuracy', float('nan')):.4f}, "
        f"best {summary.get('best_test_accuracy', float('nan')):.4f} "
        f"(epoch {summary.get('best_epoch')}), wall time {summary['wall_time_s']:.1f} s"
    )
    print("Outputs:")
    for key, path in summary["paths"].items():
        print(f"  {key:12s} {path}")
    return summary


if __name__ == "__main__":
    main()
