"""Depth study: does the gain of Langevin noise grow with the depth of the network?

Tests the claim of P. Bras, "Langevin algorithms for very deep Neural Networks with application
to image classification" (arXiv 2212.14718): Langevin noise does not help shallow networks, the
gain of a Langevin optimizer over its noiseless version grows with the depth, and Layer Langevin
(noise on the layers nearest the input only) does best on deep residual networks.

    python -m applications.depth_study --family mlp --depths 2 5 10 20 40 --seeds 5 \\
        --optimizers adam ladam layer-ladam --epochs 20 --output runs/depth-mlp

For every depth and seed the model is built once, from a clean Keras session after
`keras.utils.set_random_seed(seed)`, and its weights are kept: every optimizer starts from those
same initial weights (`set_weights`), sees the same mini-batches in the same order (the training
pipeline is rebuilt with the seed for each run) and gets the seed as noise seed. So `ladam - adam`
at a given (depth, seed) is a paired difference whose only cause is the noise.

Runs are executed depth by depth, and inside a depth optimizer configuration by configuration,
seeds innermost: one model per depth is compiled once per configuration (tracing the train step
and XLA-compiling the Langevin update cost more than a whole run of a small model) and every
seed reuses it, with its initial weights and a fresh optimizer state put back before the run.

Output directory (``--output``):

* ``runs.csv``: one row per epoch of every run, appended as training goes:
  ``family, depth, seed, optimizer, sigma, epoch, loss, accuracy, val_loss, val_accuracy,
  seconds``. ``val_*`` are measured on the test split after each epoch; ``sigma`` is the initial
  noise level (0 for the noiseless optimizers); ``seconds`` is the wall time of that epoch
  (the first one includes tracing).
* ``completed.json``: the runs that finished, keyed by ``depth|seed|optimizer|sigma``, with the
  fingerprint of their initial weights; plus one entry per invocation (wall time, runs done).
* ``config.json``: the settings that change results (family, dataset, epochs, learning rate...).
  Resuming with different settings is refused; the grid (depths, seeds, optimizers, sigma sweep)
  may change.
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
import io
import json
import math
import os
import sys
import tempfile
import time
from collections import defaultdict

import keras
import numpy as np

from applications import common
from applications.optimizers import (
    LR_SCHEDULES,
    OPTIMIZERS,
    PAPER_LR,
    PAPER_SIGMA,
    SIGMA_SCHEDULES,
    make_optimizer,
    parse_name,
)

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
DEFAULT_EPOCHS, QUICK_EPOCHS = 20, 2
DEFAULT_SEEDS, QUICK_SEEDS = 3, 1
DEFAULT_BATCH_SIZE = 64
QUICK_TRAIN_TAKE, QUICK_TEST_TAKE = 256, 128
# Which argument of the family function --width sets.
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


def _split_tokens(tokens):
    """Flattens ``["2", "5,10"]`` into ``["2", "5", "10"]``."""
    return [part for token in tokens for part in str(token).split(",") if part.strip() != ""]


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


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m applications.depth_study",
        description=(
            "Gain of Langevin optimizers over their noiseless versions as a function of the "
            "network depth (P. Bras, arXiv 2212.14718). Every optimizer of a (depth, seed) "
            "starts from the same initial weights and sees the same batches."
        ),
    )
    parser.add_argument("--family", choices=FAMILIES, default="mlp", help="network family")
    parser.add_argument(
        "--depths",
        nargs="+",
        default=None,
        help="depths (weighted layers), space or comma separated; resnet: 6n+2, densenet: 3n+4. "
        f"Default: {_depths_text(DEFAULT_DEPTHS)}. With --quick: {_depths_text(QUICK_DEPTHS)}",
    )
    parser.add_argument(
        "--optimizers",
        nargs="+",
        default=None,
        help=f"optimizer names among {', '.join(OPTIMIZERS)}; a Langevin name brings its base "
        f"(for the paired gain). Default: {' '.join(DEFAULT_OPTIMIZERS)}",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        default=None,
        help="one integer N: seeds 0..N-1; several integers (or a comma list, '7,'): those "
        f"seeds. Default {DEFAULT_SEEDS} ({QUICK_SEEDS} with --quick)",
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help=f"default {DEFAULT_EPOCHS} ({QUICK_EPOCHS} quick)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help=f"default {DEFAULT_BATCH_SIZE}"
    )
    parser.add_argument(
        "--lr", type=float, default=None, help="initial learning rate (default: the paper's)"
    )
    parser.add_argument(
        "--sigma",
        type=float,
        default=None,
        help="initial noise level of the Langevin optimizers (default: the paper's, 5e-3; "
        "5e-2 for Adadelta)",
    )
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="inverse-time")
    parser.add_argument("--sigma-schedule", choices=SIGMA_SCHEDULES, default="log")
    parser.add_argument(
        "--decay-epochs", type=float, default=20, help="T of both schedules, in epochs"
    )
    parser.add_argument(
        "--langevin-layers",
        type=float,
        default=0.3,
        help="fraction of the weighted layers (nearest the input) noised by layer-* optimizers",
    )
    parser.add_argument("--noise", choices=("gaussian", "rademacher"), default="gaussian")
    parser.add_argument(
        "--sigma-sweep",
        nargs="+",
        default=None,
        help="sigma values to try at the deepest depth, for every seed and Langevin optimizer",
    )
    parser.add_argument("--dataset", default="digits", help="dataset name (default digits)")
    parser.add_argument("--data-dir", default=None, help="TFDS data directory")
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="image side in pixels; default 8 (native digits) for mlp, the dataset's default "
        "(16 for digits) for the convolutional families",
    )
    parser.add_argument("--augment", default="none", help="augmentation (default none)")
    parser.add_argument(
        "--width",
        type=int,
        default=None,
        help="mlp/cnn: width; resnet: base filters; densenet: growth rate (default: the family's)",
    )
    parser.add_argument("--train-take", type=int, default=None, help="use N training examples")
    parser.add_argument("--test-take", type=int, default=None, help="use N test examples")
    parser.add_argument(
        "--output", default=None, help="output directory (default runs/depth-<family>)"
    )
    parser.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="stop after running N runs in this invocation (resume later with the same command)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: the --quick depths, {QUICK_EPOCHS} epochs, {QUICK_SEEDS} seed, "
        f"{QUICK_TRAIN_TAKE}/{QUICK_TEST_TAKE} train/test examples (explicit flags win)",
    )
    return parser


def parse_args(argv=None):
    """Parses and validates the command line; errors exit with a message before any work."""
    from applications.data import DATASETS

    parser = build_parser()
    args = parser.parse_args(argv)
    quick = args.quick

    def ints(flag, tokens):
        values = []
        for token in _split_tokens(tokens):
            try:
                values.append(int(token))
            except ValueError:
                parser.error(f"{flag}: expected integers; received {token!r}")
        if not values:
            parser.error(f"{flag}: expected at least one integer")
        return values

    # depths
    if args.depths is None:
        depths = list((QUICK_DEPTHS if quick else DEFAULT_DEPTHS)[args.family])
    else:
        depths = sorted(set(ints("--depths", args.depths)))
    for depth in depths:
        message = check_depth(args.family, depth)
        if message:
            parser.error(f"--depths: {message}")
    args.depths = depths

    # seeds
    if args.seeds is None:
        seeds = list(range(QUICK_SEEDS if quick else DEFAULT_SEEDS))
    else:
        is_count = len(args.seeds) == 1 and "," not in args.seeds[0]
        values = ints("--seeds", args.seeds)
        if is_count:
            if values[0] < 1:
                parser.error(f"--seeds: a count must be >= 1; received {values[0]}")
            seeds = list(range(values[0]))
        else:
            seeds = list(dict.fromkeys(values))
            if min(seeds) < 0:
                parser.error(f"--seeds: seeds must be >= 0; received {seeds}")
    args.seeds = seeds

    # optimizers: every Langevin name brings its base, placed first
    names = _split_tokens(args.optimizers) if args.optimizers else list(DEFAULT_OPTIMIZERS)
    unknown = [name for name in names if name not in OPTIMIZERS]
    if unknown:
        parser.error(
            f"--optimizers: unknown optimizer(s) {', '.join(map(repr, unknown))}; "
            f"expected names among {', '.join(OPTIMIZERS)}"
        )
    optimizers = []
    added = []
    for name in names:
        base, kind = parse_name(name)
        if kind != "plain" and base not in names and base not in optimizers:
            optimizers.append(base)
            added.append(base)
        if name not in optimizers:
            optimizers.append(name)
    args.optimizers = optimizers
    args.added_bases = added

    # sigma sweep
    if args.sigma_sweep is not None:
        sweep = []
        for token in _split_tokens(args.sigma_sweep):
            try:
                value = float(token)
            except ValueError:
                parser.error(f"--sigma-sweep: expected numbers; received {token!r}")
            if not math.isfinite(value) or value < 0:
                parser.error(f"--sigma-sweep: sigma must be finite and >= 0; received {token}")
            sweep.append(value)
        if not any(parse_name(name)[1] != "plain" for name in optimizers):
            parser.error("--sigma-sweep needs at least one Langevin optimizer in --optimizers")
        args.sigma_sweep = sorted(set(sweep))
    else:
        args.sigma_sweep = []

    # scalars
    if args.epochs is None:
        args.epochs = QUICK_EPOCHS if quick else DEFAULT_EPOCHS
    if args.batch_size is None:
        args.batch_size = DEFAULT_BATCH_SIZE
    if quick:
        if args.train_take is None:
            args.train_take = QUICK_TRAIN_TAKE
        if args.test_take is None:
            args.test_take = QUICK_TEST_TAKE
    for flag, value, minimum in (
        ("--epochs", args.epochs, 1),
        ("--batch-size", args.batch_size, 1),
        ("--image-size", args.image_size, 1),
        ("--width", args.width, 1),
        ("--train-take", args.train_take, 1),
        ("--test-take", args.test_take, 1),
        ("--stop-after", args.stop_after, 0),
    ):
        if value is not None and value < minimum:
            parser.error(f"{flag} must be >= {minimum}; received {value}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        parser.error(f"--lr must be > 0; received {args.lr}")
    if args.sigma is not None and not (math.isfinite(args.sigma) and args.sigma >= 0):
        parser.error(f"--sigma must be >= 0; received {args.sigma}")
    if not args.decay_epochs > 0:
        parser.error(f"--decay-epochs must be > 0; received {args.decay_epochs}")
    if not 0 < args.langevin_layers <= 1:
        parser.error(f"--langevin-layers must be in (0, 1]; received {args.langevin_layers}")
    if args.dataset not in DATASETS:
        parser.error(f"--dataset: unknown dataset {args.dataset!r}; expected one of {DATASETS}")
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


def build_network(family, depth, input_shape, classes, width=None):
    """The `family` network of `depth` weighted layers (softmax classifier)."""
    from applications import models

    message = check_depth(family, depth)
    if message:
        raise ValueError(message)
    kwargs = {} if width is None else {WIDTH_ARGUMENT[family]: width}
    name = f"{family}-{depth}"
    if family == "mlp":
        return models.mlp(input_shape, classes, depth=depth, name=name, **kwargs)
    if family == "cnn":
        return models.plain_cnn(input_shape, classes, depth=depth, name=name, **kwargs)
    if family == "resnet":
        return models.cifar_resnet(input_shape, classes, depth=depth, name=name, **kwargs)
    if family == "densenet":
        return models.densenet(input_shape, classes, depth=depth, name=name, **kwargs)
    raise ValueError(f"Unknown family {family!r}; expected one of {FAMILIES}")


def weights_fingerprint(weights):
    """Short hash of a list of arrays (the model's weights, non-trainable ones included)."""
    digest = hashlib.sha1()
    for array in weights:
        array = np.ascontiguousarray(array)
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def initial_weights(family, depth, seed, input_shape, classes, width=None):
    """The initial weights of the (depth, seed) model, built from a clean Keras state.

    Clears the Keras session and seeds every generator with `seed` first, so the same arguments
    give the same weights whatever ran before (in particular after a resume). The weights of
    every layer are returned, batch-normalization statistics included.
    """
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = build_network(family, depth, input_shape, classes, width)
    weights = [np.array(w, copy=True) for w in model.get_weights()]
    del model
    keras.backend.clear_session()
    return weights


def reset_weights(model, initial_weights):
    """Puts `initial_weights` back into `model` (all weights, batch-norm statistics included)."""
    model.set_weights(initial_weights)


class EpochRecorder(keras.callbacks.Callback):
    """Hands one CSV row per finished epoch to `on_row`; hashes the weights training starts from."""

    def __init__(self, family, spec, on_row):
        super().__init__()
        self.family = family
        self.spec = spec
        self.on_row = on_row
        self.rows = []
        self.fingerprint = None
        self._start = None

    def on_train_begin(self, logs=None):
        self.fingerprint = weights_fingerprint(self.model.get_weights())

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        row = {
            "family": self.family,
            "depth": self.spec.depth,
            "seed": self.spec.seed,
            "optimizer": self.spec.optimizer,
            "sigma": self.spec.sigma,
            "epoch": epoch + 1,
            "loss": float(logs.get("loss", math.nan)),
            "accuracy": float(logs.get("accuracy", math.nan)),
            "val_loss": float(logs.get("val_loss", math.nan)),
            "val_accuracy": float(logs.get("val_accuracy", math.nan)),
            "seconds": time.perf_counter() - self._start,
        }
        self.rows.append(row)
        self.on_row(row)


def dataset_kwargs(args):
    return {
        "name": args.dataset,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "augment": args.augment,
        "data_dir": args.data_dir,
        "train_take": args.train_take,
        "test_take": args.test_take,
    }


class Trainer:
    """One optimizer configuration compiled once on a model, trained from any initial weights.

    Compiling (tracing the train step, XLA-compiling the Langevin update) costs more than a
    whole run of a small model, so the study compiles each (depth, optimizer, sigma) once and
    runs every seed through it: each run puts back the seed's initial weights, the optimizer's
    freshly built state (moments, iteration count) and sets the noise seed, which gives exactly
    the run of a freshly compiled model.
    """

    def __init__(self, model, optimizer, sigma, args, steps_per_epoch, loss):
        self.model = model
        self.args = args
        self.optimizer = make_optimizer(
            optimizer,
            steps_per_epoch,
            lr=args.lr,
            lr_schedule=args.lr_schedule,
            sigma=float(sigma) if is_langevin(optimizer) else None,
            sigma_schedule=args.sigma_schedule,
            decay_epochs=args.decay_epochs,
            langevin_layers=args.langevin_layers,
            seed=0,
            noise=args.noise,
        )
        model.compile(optimizer=self.optimizer, loss=loss, metrics=["accuracy"])
        self.optimizer.build(model.trainable_variables)
        self._fresh_state = [np.array(v.numpy(), copy=True) for v in self.optimizer.variables]
        seeds = [v for v in self.optimizer.variables if v.name == "langevin_seed"]
        if is_langevin(optimizer) and len(seeds) != 1:
            raise RuntimeError(f"Cannot find the noise seed variable of {optimizer}")
        self._seed_variable = seeds[0] if seeds else None

    def run(self, spec, initial, on_row=lambda row: None):
        """Trains from `initial` with seed `spec.seed`; returns ``(rows, fingerprint)``.

        Data order, augmentation and noise all follow `spec.seed`: the optimizers of a (depth,
        seed) differ only by their update rule.
        """
        from applications.data import load_dataset

        reset_weights(self.model, initial)
        for variable, value in zip(self.optimizer.variables, self._fresh_state):
            variable.assign(value)
        if self._seed_variable is not None:
            self._seed_variable.assign(spec.seed)
        keras.utils.set_random_seed(spec.seed)
        data = load_dataset(seed=spec.seed, **dataset_kwargs(self.args))
        recorder = EpochRecorder(self.args.family, spec, on_row)
        self.model.fit(
            data.train,
            epochs=self.args.epochs,
            validation_data=data.test,
            shuffle=False,  # the pipeline shuffles, with the run's seed
            verbose=0,
            callbacks=[recorder],
        )
        return recorder.rows, recorder.fingerprint


# ------------------------------------------------------------------------------ files


def write_csv(path, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({field: row[field] for field in CSV_FIELDS})
    common.write_text(path, buffer.getvalue())


def append_csv_row(path, row):
    with open(path, "a", newline="") as handle:
        csv.DictWriter(handle, fieldnames=CSV_FIELDS).writerow(
            {field: row[field] for field in CSV_FIELDS}
        )
        handle.flush()
        os.fsync(handle.fileno())


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
    if not os.path.exists(path):
        return []
    with open(path, newline="") as handle:
        rows = [_parse_row(raw) for raw in csv.DictReader(handle)]
    return [row for row in rows if row is not None]


def row_key(row):
    return RunSpec(row["depth"], row["seed"], row["optimizer"], row["sigma"]).key


def study_config(args):
    """The settings that change the result of a run (the grid itself may change on resume)."""
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
        "backend": keras.backend.backend(),
    }


def check_config(output, config):
    """Writes ``config.json`` on a fresh study; refuses to resume one with other settings."""
    path = os.path.join(output, CONFIG_JSON)
    if os.path.exists(path):
        with open(path) as handle:
            stored = json.load(handle)
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
        common.write_json(path, config)


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
        write_csv(csv_path, kept)
    if forgotten:
        for key in forgotten:
            del state["runs"][key]
        common.write_json(json_path, state)
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


def _mean_std(values):
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return math.nan, math.nan, 0
    std = float(values.std(ddof=1)) if values.size > 1 else math.nan
    return float(values.mean()), std, int(values.size)


def _cell(values, scale=100.0, signed=False):
    mean, std, count = _mean_std(values)
    if count == 0:
        return "–"
    sign = "+" if signed else ""
    text = f"{scale * mean:{sign}.2f}"
    if count > 1:
        text += f" ± {scale * std:.2f}"
    return text


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
            f"{args.noise} noise"
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


def _save_figure(figure, path):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=directory)
    os.close(fd)
    try:
        figure.savefig(tmp, format="png", dpi=120)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
            mean, std, count = _mean_std(summary["gains"][(depth, name)])
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
    _save_figure(figure, path)
    plt.close(figure)


def plot_sigma_sweep(summary, args, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for name in summary["langevin"]:
        points = []
        for (sweep_name, value), (_, gains) in summary["sweep"].items():
            mean, std, count = _mean_std(gains)
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
    _save_figure(figure, path)
    plt.close(figure)


# ------------------------------------------------------------------------------ main


def _format_seconds(seconds):
    seconds = round(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


def main(argv=None):
    """Runs the study; returns a summary dict (paths, executed and skipped run keys)."""
    started = time.perf_counter()
    args = parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    check_config(args.output, study_config(args))
    if args.added_bases:
        print(f"Added the base optimizer(s) {', '.join(args.added_bases)} for the paired gains")

    from applications.data import load_dataset

    paths = {
        "csv": os.path.join(args.output, RUNS_CSV),
        "completed": os.path.join(args.output, COMPLETED_JSON),
        "config": os.path.join(args.output, CONFIG_JSON),
        "results": os.path.join(args.output, RESULTS_MD),
        "plot": os.path.join(args.output, GAIN_PNG),
    }
    state, rows = load_state(args.output, args.epochs)
    plan = plan_runs(args.depths, args.seeds, args.optimizers, args.sigma, args.sigma_sweep)
    planned = planned_specs(plan)
    todo = [spec for spec in planned if spec.key not in state["runs"]]
    already_done = [spec.key for spec in planned if spec.key in state["runs"]]
    print(
        f"Depth study {args.family} on {args.dataset}: {len(planned)} runs planned, "
        f"{len(already_done)} already done, {len(todo)} to run; output {args.output}"
    )

    # Shapes, loss and steps once (this also fails early if the dataset is missing).
    probe = load_dataset(seed=0, **dataset_kwargs(args))
    input_shape, classes = probe.input_shape, probe.num_classes
    steps_per_epoch, loss = probe.steps_per_epoch, probe.loss
    del probe

    executed, run_seconds = [], []

    def record(spec, run_rows, fingerprint, seconds):
        rows.extend(run_rows)
        last = run_rows[-1]
        state["runs"][spec.key] = {
            "depth": spec.depth,
            "seed": spec.seed,
            "optimizer": spec.optimizer,
            "sigma": spec.sigma,
            "initial_weights": fingerprint,
            "final_val_accuracy": last["val_accuracy"],
            "seconds": round(seconds, 3),
        }
        common.write_json(paths["completed"], state)
        executed.append(spec.key)
        run_seconds.append(seconds)
        remaining = len(todo) - len(executed)
        eta = f", ~{_format_seconds(remaining * np.mean(run_seconds))} left" if remaining else ""
        print(
            f"[{len(already_done) + len(executed)}/{len(planned)}] "
            f"{spec.label(args.family)}: test acc {last['val_accuracy']:.4f}, "
            f"loss {last['loss']:.4f}, {seconds:.1f} s{eta}",
            flush=True,
        )

    def append_row(row):
        append_csv_row(paths["csv"], row)

    def limit_reached():
        return args.stop_after is not None and len(executed) >= args.stop_after

    def run_plan():
        """Runs the pending runs of `plan`; returns whether --stop-after stopped it."""
        stopped = False
        for depth, configs in plan:
            pending = [
                (config, [spec for spec in specs if spec.key not in state["runs"]])
                for config, specs in configs
            ]
            pending = [(config, specs) for config, specs in pending if specs]
            if not pending:
                continue
            if limit_reached():
                stopped = True
                break
            # One model per (depth, seed), from a clean session: its weights are the starting
            # point of every optimizer at that (depth, seed).
            seeds = sorted({spec.seed for _, specs in pending for spec in specs})
            initial = {
                seed: initial_weights(args.family, depth, seed, input_shape, classes, args.width)
                for seed in seeds
            }
            model = build_network(args.family, depth, input_shape, classes, args.width)
            for (optimizer, sigma), specs in pending:
                if limit_reached():
                    stopped = True
                    break
                trainer = Trainer(model, optimizer, sigma, args, steps_per_epoch, loss)
                for spec in specs:
                    if limit_reached():
                        stopped = True
                        break
                    run_start = time.perf_counter()
                    run_rows, fingerprint = trainer.run(spec, initial[spec.seed], on_row=append_row)
                    record(spec, run_rows, fingerprint, time.perf_counter() - run_start)
                del trainer
                if stopped:
                    break
            del model, initial
            keras.backend.clear_session()
            if stopped:
                break
        return stopped

    def log_invocation(interrupted=False):
        wall = time.perf_counter() - started
        entry = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - wall)),
            "wall_seconds": round(wall, 3),
            "runs_executed": len(executed),
        }
        if interrupted:
            entry["interrupted"] = True
        state["invocations"].append(entry)
        common.write_json(paths["completed"], state)
        return wall

    try:
        stopped = run_plan()
    except BaseException:  # interrupted: keep the invocation's time in the record
        log_invocation(interrupted=True)
        raise
    wall = log_invocation()
    total_wall = sum(item["wall_seconds"] for item in state["invocations"])
    planned_keys = {spec.key for spec in planned}
    done = sum(1 for key in state["runs"] if key in planned_keys)
    compute = sum(row["seconds"] for row in rows)

    summary = summarize(rows, args)
    markdown = results_markdown(summary, args, len(planned), done, wall, total_wall, compute)
    common.write_text(paths["results"], markdown)
    plot_gain_vs_depth(summary, args, paths["plot"])
    if args.sigma_sweep:
        paths["sweep_plot"] = os.path.join(args.output, SWEEP_PNG)
        plot_sigma_sweep(summary, args, paths["sweep_plot"])

    if stopped:
        print(f"Stopped after {len(executed)} run(s) (--stop-after); run again to resume")
    print(
        f"Done: {len(executed)} run(s) in {_format_seconds(wall)} "
        f"(all invocations: {_format_seconds(total_wall)}); {done}/{len(planned)} runs complete"
    )
    for name, path in paths.items():
        print(f"  {name:>10}: {path}")
    return {
        "paths": paths,
        "executed": executed,
        "skipped": already_done,
        "planned": [spec.key for spec in planned],
        "wall_seconds": wall,
        "stopped": stopped,
    }


if __name__ == "__main__":
    main(sys.argv[1:])
