"""Command line and main loop of the depth study (see the package docstring)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import keras

from applications import cli, engine, files, models
from applications import settings as settings_lib
from applications.depth_study import plan as plan_lib
from applications.depth_study import runner, state
from applications.depth_study.plan import (
    controls_of,
    is_langevin,
    keras_name,
    study_kind,
)

FAMILIES = ("mlp", "resnet-nobn", "cnn", "resnet", "densenet")
DEFAULT_DEPTHS = {
    "mlp": (10, 20, 30, 40, 60),
    "resnet-nobn": (14, 20, 32, 44, 56),
    "cnn": (3, 5, 10, 20, 30),
    "resnet": (8, 20, 56),
    "densenet": (7, 22, 40),
}
QUICK_DEPTHS = {"mlp": (2, 6), "resnet-nobn": (8, 14), "cnn": (2, 5), "resnet": (8, 14)}
QUICK_DEPTHS["densenet"] = (7, 10)
DEFAULTS = {
    "optimizers": ("adam", "ladam", "layer-ladam"),
    "seeds": tuple(range(10)),
    "epochs": 20,
    "batch_size": 64,
    "augment": "none",
    "lr_grid": (0.3, 1.0, 3.0),
    "verbose": 0,
}
QUICK = {"seeds": (0,), "epochs": 2, "train_take": 256, "test_take": 128, "lr_grid": (1.0,)}
WIDTH_ARGUMENT = {"mlp": "width", "cnn": "width", "resnet": "base_filters"}
WIDTH_ARGUMENT.update({"resnet-nobn": "base_filters", "densenet": "growth_rate"})
RESULTS_MD, DIFFERENCES_PNG = "results.md", "differences_vs_depth.png"


def check_depth(family, depth):
    """Returns an error message if `family` cannot be built at `depth`, else None."""
    if family in ("resnet", "resnet-nobn") and (depth < 8 or (depth - 2) % 6):
        return f"a {family} needs depths 6n+2 with n >= 1 (8, 14, 20, ..., 56); received {depth}"
    if family == "densenet" and (depth < 7 or (depth - 4) % 3):
        return f"a densenet needs depths 3n+4 with n >= 1 (7, 10, ..., 40); received {depth}"
    return None


def _depths_text(depths):
    return "; ".join(f"{family} {' '.join(map(str, values))}" for family, values in depths.items())


def build_parser(defaults=DEFAULTS):
    parser = argparse.ArgumentParser(
        prog="python -m applications.depth_study",
        description="Paired differences of Langevin optimizers and their controls against the "
        "noiseless optimizer, as a function of depth (P. Bras, arXiv 2212.14718).",
        formatter_class=cli.HelpFormatter,
    )
    group = parser.add_argument_group("study")
    _add_design_arguments(group)
    _add_tuning_and_budget_arguments(group, defaults)
    cli.add_model_data_arguments(parser, defaults)
    cli.add_optimizer_arguments(parser, defaults, several=True)
    cli.add_execution_arguments(parser, defaults)
    return parser


def _add_design_arguments(group):
    """The networks and the arms compared: family, depths, width, initialiser, controls."""
    group.add_argument("--family", choices=FAMILIES, default="mlp", help="network family")
    group.add_argument(
        "--depths",
        action=cli.ListAction,
        item=cli.positive_int,
        default=None,
        help=f"depths (weighted layers). Default: {_depths_text(DEFAULT_DEPTHS)}. With "
        f"--quick: {_depths_text(QUICK_DEPTHS)}",
    )
    group.add_argument(
        "--width",
        type=cli.positive_int,
        default=None,
        help="mlp/cnn: width; resnets: base filters; densenet: growth rate",
    )
    group.add_argument(
        "--init",
        choices=models.INITS,
        default="he",
        help="kernel initialiser of the hidden layers (default: %(default)s)",
    )
    group.add_argument(
        "--controls",
        action=cli.ListAction,
        default=["iso", "rescaled"],
        help="controls of every layer-l<base>: 'iso' (isotropic noise of matched scale on the "
        "same layers), 'rescaled' (noiseless, those layers rescaled to Layer Langevin's norms), "
        "or 'none' (default: iso,rescaled)",
    )


def _add_tuning_and_budget_arguments(group, defaults):
    """Learning-rate tuning, the sigma sweep, seeds, epochs, stopping and the output."""
    group.add_argument(
        "--lr-grid",
        action=cli.ListAction,
        item=cli.positive_float,
        default=list(defaults["lr_grid"]),
        help="learning-rate multipliers of each optimizer's default tried on the validation "
        "split before the paired runs; ignored with --lr (default: %(default)s)",
    )
    group.add_argument(
        "--tune-seeds",
        type=cli.positive_int,
        default=1,
        help="seeds (the first of --seeds) of each tuning run (default: 1)",
    )
    group.add_argument(
        "--validation-fraction",
        type=cli.positive_float,
        default=0.2,
        help="last fraction of the training set held out for tuning (default 0.2)",
    )
    group.add_argument(
        "--sigma-sweep",
        action=cli.ListAction,
        item=cli.non_negative_float,
        default=[],
        help="sigma values tried at the deepest depth",
    )
    cli.add_seeds_argument(group, defaults["seeds"])
    group.add_argument("--epochs", type=cli.positive_int, default=defaults["epochs"])
    group.add_argument(
        "--stop-after",
        type=cli.non_negative_int,
        default=None,
        help="stop after N runs (tuning included); the same command resumes",
    )
    group.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: the --quick depths, "
        + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()),
    )
    group.add_argument("--output", default=None, help="output directory (runs/depth-<family>)")


def parse_args(argv=None):
    """Parses and validates the command line; errors exit 2 with a message before any work."""
    parser, args = cli.parse(build_parser, DEFAULTS, QUICK, argv)
    args.depths = sorted(
        args.depths or (QUICK_DEPTHS if args.quick else DEFAULT_DEPTHS)[args.family]
    )
    for depth in args.depths:
        if message := check_depth(args.family, depth):
            parser.error(f"--depths: {message}")
    controls = [c for c in args.controls if c != "none"]
    if set(controls) - set(plan_lib.CONTROLS) or ("none" in args.controls and controls):
        parser.error(f"--controls: expected iso, rescaled or none; got {args.controls_text!r}")
    if not 0 < args.validation_fraction < 1:
        parser.error(f"--validation-fraction must be in (0, 1); got {args.validation_fraction}")
    names, added = [], []
    for name in args.optimizers:  # every Langevin name brings its base, for the differences
        base, kind = study_kind(name)
        if kind != "plain" and base not in args.optimizers and base not in names:
            names.append(base)
            added.append(base)
        names.append(name)
    cli.check_optimizer_flags(parser, args, list(dict.fromkeys(names)))
    args.keras_optimizers = list(dict.fromkeys(names))
    args.optimizers = args.keras_optimizers + controls_of(args.keras_optimizers, controls)
    args.added_bases, args.controls = added, controls
    args.swept = [n for n in args.keras_optimizers if is_langevin(n)]
    if args.sigma_sweep and not args.swept:
        parser.error("--sigma-sweep needs at least one Langevin optimizer in --optimizers")
    args.sigma_sweep = sorted(set(args.sigma_sweep))
    args.tune_seeds = min(args.tune_seeds, len(args.seeds))
    if (
        args.image_size is None
        and args.family in ("mlp", "resnet-nobn")
        and args.dataset == "digits"
    ):
        args.image_size = 8
    args.output = args.output or os.path.join("runs", f"depth-{args.family}")
    return args


def sigma_of(args):
    """Initial sigma of each study name in the main grid (0 for the noiseless ones)."""

    def value(name):
        if not is_langevin(name):
            return 0.0
        return settings_lib.resolve(keras_name(name), sigma=args.sigma).sigma

    return value


def default_lr(name):
    return settings_lib.resolve(keras_name(name)).lr


def run_config(args, depth, optimizer="adam", sigma=None, seed=0, lr=None):
    """The engine's config of one run of the study (model, data, Keras optimizer)."""
    options = {"init": args.init}
    if args.width is not None:
        options[WIDTH_ARGUMENT[args.family]] = args.width
    model = f"{args.family}-{depth}"
    return engine.RunConfig.from_args(
        args,
        model=model,
        model_options=tuple(options.items()),
        optimizer=optimizer,
        sigma=None if sigma is None else float(sigma),
        seed=seed,
        lr=args.lr if lr is None else lr,
    )


def initial_weights_path(args, depth, seed):
    """The initial weights of (depth, seed), saved once by the engine."""
    name = f"{args.family}-{depth}-seed{seed}.weights.h5"
    path = os.path.join(args.output, "initial_weights", name)
    return engine.save_initial_weights(run_config(args, depth, seed=seed), path)


def study_config(args):
    """The settings that change the result of a run (the grid itself may change on resume)."""
    keys = (
        "family",
        "dataset",
        "image_size",
        "augment",
        "train_take",
        "test_take",
        "width",
        "epochs",
        "batch_size",
        "lr",
        "lr_schedule",
        "decay_epochs",
        "init",
        "lr_grid",
        "tune_seeds",
        "validation_fraction",
    )
    config = {key: getattr(args, key) for key in keys}
    config["lr_grid"] = list(config["lr_grid"])
    chosen = settings_lib.resolve(
        "layer-ladam",
        epsilon=args.epsilon,
        noise=args.noise,
        sigma_schedule=args.sigma_schedule,
        langevin_layers=args.langevin_layers,
    )
    config.update(
        sigma_schedule=chosen.sigma_schedule,
        noise=chosen.noise,
        langevin_layers=chosen.langevin_layers,
        epsilon=args.epsilon or "paper",
        backend=keras.backend.backend(),
    )
    return json.loads(json.dumps(config, default=files.json_default))


def main(argv=None):
    """Runs the study; returns a summary dict (paths, executed and skipped run keys)."""
    from applications.depth_study.loop import run_study

    started = time.perf_counter()
    args = parse_args(argv)
    parser = build_parser()
    try:  # an unknown dataset or layer name fails here, before anything is written
        depth = min(args.depths)
        runner.check_jobs(
            [runner.job_for(args, run_config, name, depth, None) for name in args.optimizers]
        )
    except ValueError as error:
        parser.error(str(error))
    os.makedirs(args.output, exist_ok=True)
    try:
        epsilon = state.check_config(args.output, study_config(args), args.epsilon_given)
    except state.ConfigMismatchError as error:
        parser.error(str(error))
    if args.epsilon is not None:
        args.epsilon = epsilon
    if args.added_bases:
        print(f"Added the base optimizer(s) {', '.join(args.added_bases)} for the differences")
    return run_study(args, started)


if __name__ == "__main__":
    main(sys.argv[1:])
