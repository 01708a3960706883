"""Depth study: does the gain of Langevin noise grow with the depth of the network?

Tests the claim of P. Bras, "Langevin algorithms for very deep Neural Networks with application
to image classification" (arXiv 2212.14718): Langevin noise does not help shallow networks, the
gain of a Langevin optimizer over its noiseless version grows with the depth, and Layer Langevin
(noise on the layers nearest the input only) does best on deep residual networks.

    python -m applications.depth_study --family mlp --depths 2 5 10 20 40 --seeds 5 \\
        --optimizers adam ladam layer-ladam --epochs 20 --output runs/depth-mlp

Runs go through the run engine (`applications.engine`). For every depth and seed the initial
weights are saved once (`initial_weights/<family>-<depth>-seed<k>.weights.h5`, the engine's one
mechanism for shared initial weights): every optimizer starts from those same weights, sees the
same mini-batches in the same order (the training pipeline is rebuilt with the seed for each run)
and gets the seed as noise seed. So `ladam - adam` at a given (depth, seed) is a paired
difference whose only cause is the noise.

Runs are executed depth by depth, and inside a depth optimizer configuration by configuration,
seeds innermost: one engine `Trainer` per configuration is compiled once (tracing the train step
and XLA-compiling the Langevin update cost more than a whole run of a small model) and every
seed reuses it, with its initial weights and a fresh optimizer state put back before the run.

Output directory (``--output``):

* ``runs.csv``: one row per epoch of every run, appended as training goes:
  ``family, depth, seed, optimizer, sigma, epoch, loss, accuracy, val_loss, val_accuracy,
  seconds``. ``epoch`` counts from 1; ``val_*`` are measured on the test split after each
  epoch; ``sigma`` is the initial noise level (0 for the noiseless optimizers); ``seconds`` is
  the wall time of that epoch (the first one includes tracing).
* ``completed.json``: the runs that finished, keyed by ``depth|seed|optimizer|sigma``, with the
  fingerprint of their initial weights; plus one entry per invocation (wall time, runs done).
* ``config.json``: the settings that change results (family, dataset, epochs, learning rate...).
  Resuming with different settings is refused; the grid (depths, seeds, optimizers, sigma sweep)
  may change. A study started before ``--epsilon`` existed ran with Keras's epsilon; resumed
  without ``--epsilon``, it keeps it (a study keeps the epsilon it started with).
* ``initial_weights/``: the initial weights of every (depth, seed).
* ``results.md``: mean +- std over seeds of the final test accuracy per depth and optimizer, and
  of the paired gain (Langevin - base, same seed and initial weights); the sigma sweep table.
* ``gain_vs_depth.png`` (and ``sigma_sweep.png`` with ``--sigma-sweep``).

Resuming: started again with the same command, the study skips the runs listed in
``completed.json`` whose epochs are all in ``runs.csv``; the rows of a run that was interrupted
mid-way are dropped and the run is redone from scratch.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import os
import sys
import time
from collections import defaultdict

import keras
import numpy as np

from applications import cli, engine, files
from applications.optimizers import PAPER_LR, PAPER_SIGMA, parse_name

FAMILIES = ("mlp", "cnn", "resnet", "densenet")
CSV_FIELDS = (
    "family",
    "depth",
    "seed",
    "optimizer",
    "sigma",
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "seconds",
)
DEFAULT_OPTIMIZERS = ("adam", "ladam", "layer-ladam")
DEFAULT_DEPTHS = {
    "mlp": (2, 5, 10, 20, 30, 40),
    "cnn": (3, 5, 10, 20, 30),
    "resnet": (8, 20, 56),
    "densenet": (7, 22, 40),
}
QUICK_DEPTHS = {"mlp": (2, 6), "cnn": (2, 5), "resnet": (8, 14), "densenet": (7, 10)}
DEFAULTS = {
    "optimizers": DEFAULT_OPTIMIZERS,
    "seeds": (0, 1, 2),
    "epochs": 20,
    "batch_size": 64,
    "augment": "none",
    "verbose": 0,
}
QUICK = {"seeds": (0,), "epochs": 2, "train_take": 256, "test_take": 128}
# Which argument of the family's builder --width sets.
WIDTH_ARGUMENT = {
    "mlp": "width",
    "cnn": "width",
    "resnet": "base_filters",
    "densenet": "growth_rate",
}

RUNS_CSV = "runs.csv"
COMPLETED_JSON = "completed.json"
CONFIG_JSON = "config.json"
RESULTS_MD = "results.md"
GAIN_PNG = "gain_vs_depth.png"
SWEEP_PNG = "sigma_sweep.png"


class ConfigMismatchError(RuntimeError):
    """The output directory holds a study run with different settings."""


# ------------------------------------------------------------------------------ arguments


def check_depth(family, depth):
    """Returns an error message if `family` cannot be built at `depth`, else None."""
    if family == "resnet":
        if depth < 8 or (depth - 2) % 6 != 0:
            return (
                f"a resnet (CIFAR ResNet of basic blocks) needs depths of the form 6n+2 with "
                f"n >= 1 (8, 14, 20, 26, 32, 38, 44, 50, 56, ..., 110); received {depth}"
            )
    elif family == "densenet":
        if depth < 7 or (depth - 4) % 3 != 0:
            return (
                f"a densenet (3 dense blocks, no bottleneck) needs depths of the form 3n+4 with "
                f"n >= 1 (7, 10, ..., 40, ..., 100); received {depth}"
            )
    elif depth < 1:
        return f"a {family} needs depths >= 1; received {depth}"
    return None


def _depths_text(depths):
    return "; ".join(f"{family} {' '.join(map(str, values))}" for family, values in depths.items())


def build_parser(defaults=DEFAULTS):
    parser = argparse.ArgumentParser(
        prog="python -m applications.depth_study",
        description=(
            "Gain of Langevin optimizers over their noiseless versions as a function of the "
            "network depth (P. Bras, arXiv 2212.14718). Every optimizer of a (depth, seed) "
            "starts from the same initial weights and sees the same batches."
        ),
        formatter_class=cli.HelpFormatter,
    )
    group = parser.add_argument_group("study")
    group.add_argument("--family", choices=FAMILIES, default="mlp", help="network family")
    group.add_argument(
        "--depths",
        action=cli.ListAction,
        item=cli.positive_int,
        default=None,
        help="depths (weighted layers), comma or space separated; resnet: 6n+2, densenet: "
        f"3n+4. Default: {_depths_text(DEFAULT_DEPTHS)}. With --quick: "
        f"{_depths_text(QUICK_DEPTHS)}",
    )
    group.add_argument(
        "--width",
        type=cli.positive_int,
        default=None,
        help="mlp/cnn: width; resnet: base filters; densenet: growth rate (default: the family's)",
    )
    group.add_argument(
        "--sigma-sweep",
        action=cli.ListAction,
        item=cli.non_negative_float,
        default=[],
        help="sigma values to try at the deepest depth, for every seed and Langevin optimizer",
    )
    cli.add_seeds_argument(group, defaults["seeds"])
    group.add_argument("--epochs", type=cli.positive_int, default=defaults["epochs"])
    group.add_argument(
        "--stop-after",
        type=cli.non_negative_int,
        default=None,
        help="stop after running N runs in this invocation (resume later with the same command)",
    )
    group.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: the --quick depths, "
        + ", ".join(f"--{key.replace('_', '-')} {value}" for key, value in QUICK.items())
        + " (explicit flags win)",
    )
    group.add_argument(
        "--output", default=None, help="output directory (default: runs/depth-<family>)"
    )
    cli.add_model_data_arguments(parser, defaults)
    cli.add_optimizer_arguments(parser, defaults, several=True)
    cli.add_execution_arguments(parser, defaults)
    return parser


def parse_args(argv=None):
    """Parses and validates the command line; errors exit with a message before any work."""
    parser, args = cli.parse(build_parser, DEFAULTS, QUICK, argv)
    depths = QUICK_DEPTHS if args.quick else DEFAULT_DEPTHS
    args.depths = sorted(args.depths or depths[args.family])
    for depth in args.depths:
        message = check_depth(args.family, depth)
        if message:
            parser.error(f"--depths: {message}")

    # every Langevin name brings its base, placed first, for the paired gains
    optimizers, added = [], []
    for name in args.optimizers:
        base, kind = parse_name(name)
        if kind != "plain" and base not in args.optimizers and base not in optimizers:
            optimizers.append(base)
            added.append(base)
        if name not in optimizers:
            optimizers.append(name)
    args.optimizers, args.added_bases = optimizers, added
    cli.check_optimizer_flags(parser, args, optimizers)
    if args.sigma_sweep and not any(is_langevin(name) for name in optimizers):
        parser.error("--sigma-sweep needs at least one Langevin optimizer in --optimizers")
    args.sigma_sweep = sorted(set(args.sigma_sweep))
    if args.image_size is None and args.family == "mlp" and args.dataset == "digits":
        args.image_size = 8
    if args.output is None:
        args.output = os.path.join("runs", f"depth-{args.family}")
    return args


# ------------------------------------------------------------------------------ runs


def format_sigma(sigma):
    """Canonical text of a noise level, as written in the CSV and the keys."""
    return format(float(sigma), ".6g")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    depth: int
    seed: int
    optimizer: str
    sigma: str  # format_sigma(initial sigma); "0" for noiseless optimizers

    @property
    def key(self):
        return f"{self.depth}|{self.seed}|{self.optimizer}|{self.sigma}"

    def label(self, family):
        noise = f" sigma={self.sigma}" if is_langevin(self.optimizer) else ""
        return f"{family}-{self.depth} seed={self.seed} {self.optimizer}{noise}"


def is_langevin(name):
    return parse_name(name)[1] != "plain"


def base_of(name):
    return parse_name(name)[0]


def default_sigma(name, sigma_override=None):
    """Initial sigma of `name` in the main grid: the override, the paper's, or 0 (noiseless)."""
    if not is_langevin(name):
        return 0.0
    return PAPER_SIGMA[base_of(name)] if sigma_override is None else float(sigma_override)


def plan_runs(depths, seeds, optimizers, sigma=None, sigma_sweep=()):
    """All runs in execution order: ``[(depth, [((optimizer, sigma), [RunSpec per seed])])]``.

    The main grid runs every optimizer at every depth and seed; the sigma sweep adds, at the
    deepest depth, every Langevin optimizer at every swept sigma (a sweep value equal to the main
    grid's sigma is the same run, done once). Runs are grouped by optimizer configuration inside
    a depth so that each configuration is compiled once for all seeds.
    """
    deepest = max(depths)
    langevin = [name for name in optimizers if is_langevin(name)]
    plan = []
    for depth in depths:
        configs = [(name, format_sigma(default_sigma(name, sigma))) for name in optimizers]
        if depth == deepest:
            configs += [(name, format_sigma(value)) for name in langevin for value in sigma_sweep]
        configs = list(dict.fromkeys(configs))
        plan.append(
            (
                depth,
                [
                    ((name, noise), [RunSpec(depth, seed, name, noise) for seed in seeds])
                    for name, noise in configs
                ],
            )
        )
    return plan


def planned_specs(plan):
    """The flat list of the runs of `plan`."""
    return [spec for _, configs in plan for _, specs in configs for spec in specs]


def weights_fingerprint(weights):
    """Short hash of a list of arrays (the model's weights, non-trainable ones included)."""
    digest = hashlib.sha1()
    for array in weights:
        array = np.ascontiguousarray(array)
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def run_config(args, depth, optimizer="adam", sigma=None, seed=0):
    """The engine's config of one run of the study."""
    options = {} if args.width is None else {WIDTH_ARGUMENT[args.family]: args.width}
    return engine.RunConfig.from_args(
        args,
        model=f"{args.family}-{depth}",
        model_options=tuple(options.items()),
        optimizer=optimizer,
        sigma=None if sigma is None else float(sigma),
        seed=seed,
    )


def initial_weights_path(args, depth, seed):
    """The initial weights of (depth, seed), saved once by the engine."""
    config = run_config(args, depth, seed=seed)
    name = f"{args.family}-{depth}-seed{seed}.weights.h5"
    return engine.save_initial_weights(config, os.path.join(args.output, "initial_weights", name))


class Fingerprint(keras.callbacks.Callback):
    """Hashes the weights training starts from."""

    def on_train_begin(self, logs=None):
        self.value = weights_fingerprint(self.model.get_weights())


def run_group(args, trainer, specs, initial, record):
    """Runs `specs` (one configuration, several seeds) through one compiled trainer."""
    for spec in specs:
        started = time.perf_counter()
        trainer.reset(spec.seed, initial[spec.seed])
        fingerprint = Fingerprint()
        constants = {key: getattr(spec, key) for key in ("depth", "seed", "optimizer", "sigma")}
        records = engine.EpochRecords(
            os.path.join(args.output, RUNS_CSV),
            CSV_FIELDS,
            constants={"family": args.family, **constants},
        )
        trainer.fit([fingerprint, records], verbose=0)
        if not record(spec, records.rows, fingerprint.value, time.perf_counter() - started):
            return False
    return True


def run_plan(args, plan, state, record):
    """Runs the pending runs of `plan`; returns whether --stop-after stopped it."""
    for depth, configs in plan:
        pending = [
            (config, [spec for spec in specs if spec.key not in state["runs"]])
            for config, specs in configs
        ]
        pending = [(config, specs) for config, specs in pending if specs]
        if not pending:
            continue
        seeds = sorted({spec.seed for _, specs in pending for spec in specs})
        initial = {seed: initial_weights_path(args, depth, seed) for seed in seeds}
        for (optimizer, sigma), specs in pending:
            if not record(None, None, None, None):
                return True
            config = run_config(args, depth, optimizer, sigma if is_langevin(optimizer) else None)
            with engine.precision(config.mixed_precision):
                trainer = engine.Trainer(config, initial_weights=initial[specs[0].seed])
                finished = run_group(args, trainer, specs, initial, record)
            del trainer
            keras.backend.clear_session()
            if not finished:
                return True
    return False


# ------------------------------------------------------------------------------ files


def _parse_row(raw):
    try:
        return {
            "family": raw["family"],
            "depth": int(raw["depth"]),
            "seed": int(raw["seed"]),
            "optimizer": raw["optimizer"],
            "sigma": format_sigma(float(raw["sigma"])),
            "epoch": int(raw["epoch"]),
            "loss": float(raw["loss"]),
            "accuracy": float(raw["accuracy"]),
            "val_loss": float(raw["val_loss"]),
            "val_accuracy": float(raw["val_accuracy"]),
            "seconds": float(raw["seconds"]),
        }
    except (KeyError, TypeError, ValueError):
        return None  # a line torn by an interruption


def read_csv(path):
    """The well-formed rows of `path` ([] if missing)."""
    rows = [_parse_row(raw) for raw in files.read_csv(path)]
    return [row for row in rows if row is not None]


def row_key(row):
    return RunSpec(row["depth"], row["seed"], row["optimizer"], row["sigma"]).key


def study_config(args):
    """The settings that change the result of a run (the grid itself may change on resume).

    Settings that only some optimizers use are recorded with their default when the current
    grid has none of those optimizers, so that a grid may change on resume.
    """
    defaults = {**cli.LANGEVIN_DEFAULTS, **cli.LAYER_DEFAULTS}
    args = argparse.Namespace(
        **{**vars(args), **{k: v for k, v in defaults.items() if getattr(args, k) is None}}
    )
    return {
        "family": args.family,
        "dataset": args.dataset,
        "image_size": args.image_size,
        "augment": args.augment,
        "train_take": args.train_take,
        "test_take": args.test_take,
        "width": args.width,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "lr_schedule": args.lr_schedule,
        "sigma_schedule": args.sigma_schedule,
        "decay_epochs": args.decay_epochs,
        "langevin_layers": args.langevin_layers,
        "noise": args.noise,
        "epsilon": args.epsilon,
        "backend": keras.backend.backend(),
    }


def check_config(output, config, args=None):
    """Writes ``config.json`` on a fresh study; refuses to resume one with other settings.

    A study keeps the epsilon it started with when `--epsilon` is not given (one started
    before the flag existed ran with Keras's default); `args.epsilon` is set to it.
    """
    path = os.path.join(output, CONFIG_JSON)
    if os.path.exists(path):
        with open(path) as handle:
            stored = json.load(handle)
        stored.setdefault("epsilon", "keras" if config.get("epsilon") is not None else None)
        if args is not None and not args.epsilon_given and stored["epsilon"] != config["epsilon"]:
            print(f"Resuming {output} with its epsilon: {stored['epsilon']}")
            config["epsilon"] = args.epsilon = stored["epsilon"]
        differences = {
            key: (stored.get(key), value)
            for key, value in config.items()
            if stored.get(key) != value
        }
        if differences:
            detail = ", ".join(
                f"{key}: stored {old!r}, requested {new!r}"
                for key, (old, new) in sorted(differences.items())
            )
            raise ConfigMismatchError(
                f"{output} holds a study with other settings ({detail}); use another --output "
                "or the same settings to resume it"
            )
    else:
        files.write_json(path, config)


def load_state(output, epochs):
    """Reconciles ``runs.csv`` and ``completed.json`` after a possible interruption.

    A run counts as done when ``completed.json`` lists it and the CSV holds exactly its epochs
    1..epochs. Rows of other runs (interrupted mid-way) are dropped from the CSV, entries of
    ``completed.json`` without their rows are forgotten; both files are rewritten atomically
    when anything changed. Returns ``(state, rows)``.
    """
    csv_path = os.path.join(output, RUNS_CSV)
    json_path = os.path.join(output, COMPLETED_JSON)
    state = {"runs": {}, "invocations": []}
    if os.path.exists(json_path):
        with open(json_path) as handle:
            state.update(json.load(handle))
    rows = read_csv(csv_path)
    by_key = defaultdict(list)
    for row in rows:
        by_key[row_key(row)].append(row)
    complete = {
        key
        for key, key_rows in by_key.items()
        if key in state["runs"]
        and sorted(row["epoch"] for row in key_rows) == list(range(1, epochs + 1))
    }
    kept = [row for row in rows if row_key(row) in complete]
    forgotten = [key for key in state["runs"] if key not in complete]
    csv_intact = os.path.exists(csv_path) and len(kept) == len(rows) and _csv_clean(csv_path, rows)
    if not csv_intact:
        files.write_csv(csv_path, CSV_FIELDS, kept)
    if forgotten:
        for key in forgotten:
            del state["runs"][key]
        files.write_json(json_path, state)
    dropped = len(rows) - len(kept)
    if dropped:
        print(f"Resume: dropped {dropped} row(s) of interrupted runs from {csv_path}")
    return state, kept


def _csv_clean(path, parsed_rows):
    """Whether every line of `path` parsed (no torn line left by an interruption)."""
    with open(path, newline="") as handle:
        lines = sum(1 for _ in csv.reader(handle))
    return lines == len(parsed_rows) + 1


# ------------------------------------------------------------------------------ results


def _cell(values, signed=False):
    return engine.format_mean_std(values, scale=100.0, digits=2, signed=signed)


def final_accuracies(rows, epochs):
    """``{(depth, seed, optimizer, sigma): final test accuracy}`` of complete runs."""
    return {
        (row["depth"], row["seed"], row["optimizer"], row["sigma"]): row["val_accuracy"]
        for row in rows
        if row["epoch"] == epochs
    }


def paired_gains(final, depth, seeds, name, sigma, base):
    """``[acc(name, sigma) - acc(base)]`` over the seeds where both runs are complete."""
    gains = []
    for seed in seeds:
        noisy = final.get((depth, seed, name, sigma))
        plain = final.get((depth, seed, base, "0"))
        if noisy is not None and plain is not None:
            gains.append(noisy - plain)
    return gains


def summarize(rows, args):
    """Tables of the requested grid, as plain data (used by the markdown and the plots)."""
    final = final_accuracies(rows, args.epochs)
    langevin = [name for name in args.optimizers if is_langevin(name)]
    accuracy = {
        (depth, name): [
            final[key]
            for seed in args.seeds
            if (key := (depth, seed, name, format_sigma(default_sigma(name, args.sigma)))) in final
        ]
        for depth in args.depths
        for name in args.optimizers
    }
    gains = {
        (depth, name): paired_gains(
            final,
            depth,
            args.seeds,
            name,
            format_sigma(default_sigma(name, args.sigma)),
            base_of(name),
        )
        for depth in args.depths
        for name in langevin
    }
    sweep = {}
    if args.sigma_sweep:
        deepest = max(args.depths)
        for name in langevin:
            values = sorted(set(args.sigma_sweep) | {default_sigma(name, args.sigma)})
            for value in values:
                sigma = format_sigma(value)
                accs = [
                    final[(deepest, seed, name, sigma)]
                    for seed in args.seeds
                    if (deepest, seed, name, sigma) in final
                ]
                sweep[(name, value)] = (
                    accs,
                    paired_gains(final, deepest, args.seeds, name, sigma, base_of(name)),
                )
    return {"accuracy": accuracy, "gains": gains, "sweep": sweep, "langevin": langevin}


def results_markdown(summary, args, planned, done, wall_seconds, total_wall, compute_seconds):
    langevin = summary["langevin"]
    if args.lr is not None:
        lr_text = f"{args.lr:g}"
    else:
        lr_text = "the paper's (" + ", ".join(f"{b} {v:g}" for b, v in PAPER_LR.items()) + ")"
    sigma_text = (
        f"{args.sigma:g}" if args.sigma is not None else "the paper's (5e-3; Adadelta 5e-2)"
    )
    incomplete = "" if done == planned else " (study incomplete: run the same command again)"
    lines = [
        f"# Depth study: {args.family} on {args.dataset}",
        "",
        (
            "Claim tested (P. Bras, arXiv 2212.14718): Langevin noise does not help shallow "
            "networks, and the gain of a Langevin optimizer over its noiseless version grows "
            "with the depth; Layer Langevin is best on deep residual networks."
        ),
        "",
        (
            f"- Seeds: {len(args.seeds)} ({', '.join(map(str, args.seeds))}); "
            f"epochs: {args.epochs}; batch size: {args.batch_size}"
        ),
        f"- Depths: {', '.join(map(str, args.depths))}; optimizers: {', '.join(args.optimizers)}",
        (
            f"- Data: {args.dataset}, image size {args.image_size or 'default'}, augment "
            f"{args.augment}, train examples {args.train_take or 'all'}, test examples "
            f"{args.test_take or 'all'}; width {args.width or 'family default'}"
        ),
        (
            f"- Learning rate: {lr_text}, schedule {args.lr_schedule}; sigma: {sigma_text}, "
            f"schedule {args.sigma_schedule}; decay over {args.decay_epochs:g} epochs; layer-* "
            f"noise on the first {args.langevin_layers:g} of the weighted layers; "
            f"{args.noise} noise; epsilon {epsilon_text(args)}"
        ),
        (
            "- Every optimizer of a (depth, seed) starts from the same initial weights and sees "
            "the same batches; gains are paired differences over those seeds."
        ),
        f"- Runs complete: {done} of {planned}{incomplete}",
        (
            f"- Wall time: {wall_seconds:.0f} s this invocation, {total_wall:.0f} s over all "
            f"invocations; {compute_seconds:.0f} s of training (sum of epoch times in runs.csv)"
        ),
        "",
        "## Final test accuracy (%), mean ± std over seeds",
        "",
        "| depth | " + " | ".join(args.optimizers) + " |",
        "|---:|" + "---:|" * len(args.optimizers),
    ]
    for depth in args.depths:
        cells = [_cell(summary["accuracy"][(depth, name)]) for name in args.optimizers]
        lines.append(f"| {depth} | " + " | ".join(cells) + " |")
    if langevin:
        headers = [f"{name} − {base_of(name)}" for name in langevin]
        lines += [
            "",
            "## Paired gain, Langevin − base (percentage points), mean ± std over seeds",
            "",
            "Same seed, same initial weights, same batches; positive means the noise helped.",
            "",
            "| depth | " + " | ".join(headers) + " |",
            "|---:|" + "---:|" * len(headers),
        ]
        for depth in args.depths:
            cells = [
                _cell(summary["gains"][(depth, name)], signed=True)
                + f" (n={len(summary['gains'][(depth, name)])})"
                for name in langevin
            ]
            lines.append(f"| {depth} | " + " | ".join(cells) + " |")
    if summary["sweep"]:
        lines += [
            "",
            f"## Sigma sweep at depth {max(args.depths)}",
            "",
            "| optimizer | sigma | test accuracy (%) | gain over base (pp) | n |",
            "|---|---:|---:|---:|---:|",
        ]
        for (name, value), (accs, gains) in summary["sweep"].items():
            marker = " (main)" if value == default_sigma(name, args.sigma) else ""
            lines.append(
                f"| {name} | {format_sigma(value)}{marker} | {_cell(accs)} | "
                f"{_cell(gains, signed=True)} | {len(accs)} |"
            )
    lines += [
        "",
        (
            "Accuracy is measured on the test split after the last epoch. std is the sample "
            "standard deviation (ddof=1) over seeds; it is omitted when n = 1."
        ),
        "",
    ]
    return "\n".join(lines)


def plot_gain_vs_depth(summary, args, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    langevin = summary["langevin"]
    spread = 0.012 * (max(args.depths) - min(args.depths) or 1)
    for index, name in enumerate(langevin):
        offset = (index - (len(langevin) - 1) / 2) * spread
        xs, means, stds = [], [], []
        for depth in args.depths:
            mean, std, count = engine.mean_std(summary["gains"][(depth, name)])
            if count:
                xs.append(depth + offset)
                means.append(100 * mean)
                stds.append(100 * std if count > 1 else 0.0)
        if xs:
            axis.errorbar(
                xs, means, yerr=stds, marker="o", capsize=3, label=f"{name} − {base_of(name)}"
            )
    axis.axhline(0.0, color="black", linewidth=0.8)
    axis.set_xlabel("depth (weighted layers)")
    axis.set_ylabel("test accuracy gain (percentage points)")
    axis.set_title(
        f"{args.family} on {args.dataset}: Langevin − base, {len(args.seeds)} seed(s), "
        f"{args.epochs} epochs",
        fontsize=10,
    )
    axis.set_xticks(args.depths)
    if langevin:
        axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    files.save_figure_atomic(figure, path)
    plt.close(figure)


def plot_sigma_sweep(summary, args, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for name in summary["langevin"]:
        points = []
        for (sweep_name, value), (_, gains) in summary["sweep"].items():
            mean, std, count = engine.mean_std(gains)
            if sweep_name == name and count and value > 0:
                points.append((value, 100 * mean, 100 * std if count > 1 else 0.0))
        if points:
            xs, means, stds = zip(*sorted(points))
            axis.errorbar(
                xs, means, yerr=stds, marker="o", capsize=3, label=f"{name} − {base_of(name)}"
            )
    axis.axhline(0.0, color="black", linewidth=0.8)
    axis.set_xscale("log")
    axis.set_xlabel("initial sigma")
    axis.set_ylabel("test accuracy gain (percentage points)")
    axis.set_title(f"{args.family}-{max(args.depths)}: gain against sigma", fontsize=10)
    if summary["langevin"]:
        axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    files.save_figure_atomic(figure, path)
    plt.close(figure)


# ------------------------------------------------------------------------------ main


def _format_seconds(seconds):
    seconds = round(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


def epsilon_text(args):
    return {"paper": "the paper's bias in Keras's form", "keras": "Keras's default"}.get(
        args.epsilon, f"{args.epsilon}"
    )


class Progress:
    """Records finished runs in ``completed.json`` and prints them; enforces --stop-after."""

    def __init__(self, args, state, planned, done_before, path):
        self.args, self.state, self.path = args, state, path
        self.planned, self.done_before = planned, done_before
        self.todo = len(planned) - done_before
        self.executed, self.seconds = [], []

    def __call__(self, spec, rows, fingerprint, seconds):
        """Records a run; returns False once --stop-after is reached (None: just asks)."""
        if spec is not None:
            self._record(spec, rows, fingerprint, seconds)
        return self.args.stop_after is None or len(self.executed) < self.args.stop_after

    def _record(self, spec, rows, fingerprint, seconds):
        last = rows[-1]
        self.state["runs"][spec.key] = {
            "depth": spec.depth,
            "seed": spec.seed,
            "optimizer": spec.optimizer,
            "sigma": spec.sigma,
            "initial_weights": fingerprint,
            "final_val_accuracy": last["val_accuracy"],
            "seconds": round(seconds, 3),
        }
        files.write_json(self.path, self.state)
        self.executed.append(spec.key)
        self.seconds.append(seconds)
        remaining = self.todo - len(self.executed)
        eta = f", ~{_format_seconds(remaining * np.mean(self.seconds))} left" if remaining else ""
        print(
            f"[{self.done_before + len(self.executed)}/{len(self.planned)}] "
            f"{spec.label(self.args.family)}: test acc {last['val_accuracy']:.4f}, "
            f"loss {last['loss']:.4f}, {seconds:.1f} s{eta}",
            flush=True,
        )

    def log_invocation(self, wall, interrupted=False):
        entry = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - wall)),
            "wall_seconds": round(wall, 3),
            "runs_executed": len(self.executed),
        }
        if interrupted:
            entry["interrupted"] = True
        self.state["invocations"].append(entry)
        files.write_json(self.path, self.state)


def write_results(args, rows, state, planned, wall, paths):
    total_wall = sum(item["wall_seconds"] for item in state["invocations"])
    planned_keys = {spec.key for spec in planned}
    done = sum(1 for key in state["runs"] if key in planned_keys)
    compute = sum(row["seconds"] for row in rows)
    summary = summarize(rows, args)
    markdown = results_markdown(summary, args, len(planned), done, wall, total_wall, compute)
    files.write_text(paths["results"], markdown)
    plot_gain_vs_depth(summary, args, paths["plot"])
    if args.sigma_sweep:
        paths["sweep_plot"] = os.path.join(args.output, SWEEP_PNG)
        plot_sigma_sweep(summary, args, paths["sweep_plot"])
    return done, total_wall


def main(argv=None):
    """Runs the study; returns a summary dict (paths, executed and skipped run keys)."""
    started = time.perf_counter()
    args = parse_args(argv)
    try:  # an unknown dataset or layer name fails here, before anything is written
        engine.check_configs([run_config(args, min(args.depths), name) for name in args.optimizers])
    except engine.UsageError as error:
        build_parser().error(str(error))
    os.makedirs(args.output, exist_ok=True)
    check_config(args.output, study_config(args), args)
    if args.added_bases:
        print(f"Added the base optimizer(s) {', '.join(args.added_bases)} for the paired gains")
    paths = {
        name: os.path.join(args.output, file)
        for name, file in (
            ("csv", RUNS_CSV),
            ("completed", COMPLETED_JSON),
            ("config", CONFIG_JSON),
            ("results", RESULTS_MD),
            ("plot", GAIN_PNG),
        )
    }
    state, _ = load_state(args.output, args.epochs)
    plan = plan_runs(args.depths, args.seeds, args.optimizers, args.sigma, args.sigma_sweep)
    planned = planned_specs(plan)
    skipped = [spec.key for spec in planned if spec.key in state["runs"]]
    print(
        f"Depth study {args.family} on {args.dataset}: {len(planned)} runs planned, "
        f"{len(skipped)} already done, {len(planned) - len(skipped)} to run; output {args.output}"
    )
    progress = Progress(args, state, planned, len(skipped), paths["completed"])
    try:
        stopped = run_plan(args, plan, state, progress)
    except BaseException:  # interrupted: keep the invocation's time in the record
        progress.log_invocation(time.perf_counter() - started, interrupted=True)
        raise
    wall = time.perf_counter() - started
    progress.log_invocation(wall)
    rows = read_csv(paths["csv"])
    done, total_wall = write_results(args, rows, state, planned, wall, paths)
    if stopped:
        print(f"Stopped after {len(progress.executed)} run(s) (--stop-after); run again to resume")
    print(
        f"Done: {len(progress.executed)} run(s) in {_format_seconds(wall)} "
        f"(all invocations: {_format_seconds(total_wall)}); {done}/{len(planned)} runs complete"
    )
    for name, path in paths.items():
        print(f"  {name:>10}: {path}")
    return {
        "paths": paths,
        "executed": progress.executed,
        "skipped": skipped,
        "planned": [spec.key for spec in planned],
        "wall_seconds": wall,
        "stopped": stopped,
    }


if __name__ == "__main__":
    main(sys.argv[1:])
