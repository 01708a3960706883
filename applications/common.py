"""Pieces shared by the training scripts (`applications.train`, `applications.compare`).

* command-line arguments common to both scripts and their conversion to the arguments of
  `load_dataset`, `build_model` and `make_optimizer`;
* the training stream: the training set repeated endlessly, so that batch `i` of epoch `e` is
  element `e * steps_per_epoch + i` of one deterministic sequence, and a run resumed at epoch `e`
  sees exactly the batches an uninterrupted run sees;
* callbacks: `EpochInfo` (adds `lr` and `sigma` to the epoch logs) and `AtomicBackupAndRestore`
  (Keras's `BackupAndRestore`, with a backup that is replaced atomically);
* small file helpers that never leave a half-written file or directory behind.
"""

import argparse
import ast
import contextlib
import json
import os
import re
import shutil
import tempfile

import keras
import numpy as np
from keras import ops

from applications import data as data_lib
from applications import models as models_lib
from applications import optimizers as optimizers_lib

MIXED_PRECISION = ("off", "mixed_float16", "mixed_bfloat16")
NOISES = ("gaussian", "rademacher")
_PLAIN_MODEL = re.compile(r"(mlp|cnn)-\d+")


# ----------------------------------------------------------------------------- arguments


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except empty ones and those the help text already states."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or action.default == [] or "default:" in text:
            return text
        return super()._get_help_string(action)


def _model_name(value):
    if value in models_lib.MODEL_NAMES or _PLAIN_MODEL.fullmatch(value):
        return value
    raise argparse.ArgumentTypeError(
        f"unknown model {value!r}; expected one of {', '.join(models_lib.MODEL_NAMES)}, "
        "or mlp-<depth> / cnn-<depth>"
    )


def _number_parser(convert, description, accept):
    """An argparse `type` converting with `convert` and accepting values where `accept` holds."""

    def parse(value):
        try:
            number = convert(value)
        except ValueError:
            number = None
        if number is None or not accept(number):
            raise argparse.ArgumentTypeError(f"expected {description}, got {value!r}")
        return number

    return parse


_positive_int = _number_parser(int, "a positive integer", lambda n: n >= 1)
_non_negative_int = _number_parser(int, "an integer >= 0", lambda n: n >= 0)
_positive_float = _number_parser(
    float, "a positive number", lambda x: bool(np.isfinite(x)) and x > 0
)


def _non_negative_float(value):
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}") from None
    if not np.isfinite(number) or number < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}")
    return number


def parse_langevin_layers(value):
    """`--langevin-layers`: "all", a fraction in (0, 1], or comma-separated layer names/globs."""
    if value is None or isinstance(value, (float, list)):
        return value
    text = str(value).strip()
    if text.lower() == "all":
        return None
    try:
        fraction = float(text)
    except ValueError:
        names = [name.strip() for name in text.split(",") if name.strip()]
        if not names:
            raise argparse.ArgumentTypeError("expected 'all', a fraction or layer names") from None
        return names
    if not 0.0 < fraction <= 1.0:
        raise argparse.ArgumentTypeError(f"a fraction of layers must be in (0, 1], got {text!r}")
    return fraction


def _model_option(text):
    key, sep, raw = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.strip(), value


def add_common_arguments(parser, defaults):
    """Adds the model, data, optimizer-setting and precision arguments.

    `defaults` maps destinations (`model`, `epochs`, `batch_size`, ...) to script-specific
    defaults; everything else has the same default in both scripts.
    """
    group = parser.add_argument_group("model and data")
    group.add_argument(
        "--model",
        type=_model_name,
        default=defaults["model"],
        help=f"model name: {', '.join(models_lib.MODEL_NAMES)}, or mlp-<depth> / cnn-<depth> "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--model-option",
        dest="model_options",
        type=_model_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra argument of the model builder, e.g. width=32 or batch_norm=True "
        "(repeatable; VALUE is a Python literal)",
    )
    group.add_argument(
        "--dataset",
        choices=data_lib.DATASETS,
        default="digits",
        help="dataset; 'digits' is embedded, the others must be prepared with TFDS "
        "(default: %(default)s)",
    )
    group.add_argument("--data-dir", default=None, help="TFDS data directory")
    group.add_argument(
        "--image-size",
        type=_positive_int,
        default=defaults.get("image_size"),
        help="resize images to this size (default: the dataset's, 16 for digits)",
    )
    group.add_argument(
        "--augment",
        default="standard",
        help="'none', 'standard' (pad, random crop, flip where it makes sense), or keras-cv "
        "policies joined with '+' (randaugment, cutmix, mixup; their random draws are not "
        "reproducible, so resumed runs are exact only with 'none' or 'standard') "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--batch-size",
        type=_positive_int,
        default=defaults["batch_size"],
        help="batch size (default: %(default)s)",
    )
    group.add_argument(
        "--train-take",
        type=_positive_int,
        default=defaults.get("train_take"),
        help="use only the first N training examples (smoke tests)",
    )
    group.add_argument(
        "--test-take",
        type=_positive_int,
        default=defaults.get("test_take"),
        help="use only the first N test examples (smoke tests)",
    )

    group = parser.add_argument_group(
        "optimizer settings",
        "Without --lr/--sigma the paper's initial values are used: 5e-3 for both, "
        "except Adadelta (lr 0.1, sigma 5e-2).",
    )
    group.add_argument(
        "--lr",
        type=_positive_float,
        default=None,
        help="initial learning rate (default: the paper's value for the base optimizer)",
    )
    group.add_argument(
        "--lr-schedule",
        choices=optimizers_lib.LR_SCHEDULES,
        default="inverse-time",
        help="'inverse-time': lr_0 / (1 + t/T), the paper's; or 'constant' (default: %(default)s)",
    )
    group.add_argument(
        "--sigma",
        type=_non_negative_float,
        default=None,
        help="initial noise level of the Langevin optimizers (default: the paper's value)",
    )
    group.add_argument(
        "--sigma-schedule",
        choices=optimizers_lib.SIGMA_SCHEDULES,
        default="log",
        help="'log': sigma_0 / sqrt(log(e + t/T)), the paper's; or 'constant' "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--decay-epochs",
        type=_positive_float,
        default=20,
        help="T of both schedules, in epochs (default: %(default)s, as in the paper)",
    )
    group.add_argument(
        "--langevin-layers",
        type=parse_langevin_layers,
        default=optimizers_lib.PAPER_LAYER_FRACTION,
        help="layers that get noise with the layer-* optimizers: a fraction of the layers "
        "nearest the input, comma-separated layer names or globs, or 'all' "
        "(default: %(default)s, the paper's)",
    )
    group.add_argument(
        "--noise",
        choices=NOISES,
        default="gaussian",
        help="noise of the Langevin optimizers (default: %(default)s)",
    )

    group = parser.add_argument_group("execution")
    group.add_argument(
        "--mixed-precision",
        choices=MIXED_PRECISION,
        default="off",
        help="Keras dtype policy for the model (default: %(default)s)",
    )
    group.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=defaults.get("verbose", 1),
        help="0: silent, 1: progress bar, 2: one line per epoch (default: %(default)s)",
    )


def parse_seed_list(text):
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not seeds:
        raise argparse.ArgumentTypeError("expected at least one seed")
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct, got {text!r}")
    return seeds


def parse_optimizer_list(text):
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in optimizers_lib.OPTIMIZERS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown optimizer(s) {', '.join(map(repr, unknown))}; "
            f"expected names from: {', '.join(optimizers_lib.OPTIMIZERS)}"
        )
    if not names:
        raise argparse.ArgumentTypeError("expected at least one optimizer")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"optimizers must be distinct, got {text!r}")
    return names


# ----------------------------------------------------------------------------- building


def set_precision(mixed_precision):
    """Sets Keras's global dtype policy; returns the previous policy name."""
    previous = keras.mixed_precision.global_policy().name
    policy = "float32" if mixed_precision in (None, "off") else mixed_precision
    keras.mixed_precision.set_global_policy(policy)
    return previous


@contextlib.contextmanager
def precision(mixed_precision):
    """Uses a dtype policy inside the block and restores the previous one after it."""
    previous = set_precision(mixed_precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def load_data(args, seed):
    """`load_dataset` with the arguments of `add_common_arguments`."""
    return data_lib.load_dataset(
        args.dataset,
        batch_size=args.batch_size,
        image_size=args.image_size,
        augment=args.augment,
        data_dir=args.data_dir,
        seed=seed,
        train_take=args.train_take,
        test_take=args.test_take,
    )


def build_model(args, dataset):
    return models_lib.build_model(
        args.model, dataset.input_shape, dataset.num_classes, **dict(args.model_options)
    )


def build_optimizer(args, name, steps_per_epoch, seed):
    return optimizers_lib.make_optimizer(
        name,
        steps_per_epoch,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        sigma=args.sigma,
        sigma_schedule=args.sigma_schedule,
        decay_epochs=args.decay_epochs,
        langevin_layers=args.langevin_layers,
        seed=seed,
        noise=args.noise,
    )


def compile_model(model, optimizer, dataset):
    # jit_compile is left to Keras ("auto"); the Langevin optimizers compile their own update.
    model.compile(optimizer=optimizer, loss=dataset.loss, metrics=["accuracy"])


def training_stream(dataset, start_epoch=0):
    """The training set repeated endlessly, starting at epoch `start_epoch`.

    The shuffling and augmentation of `dataset.train` are seeded and redrawn at each pass, so
    the repeated dataset is one deterministic sequence of batches, of which epoch `e` is the
    slice `[e * steps, (e + 1) * steps)`. A run resumed at epoch `e` skips the first `e * steps`
    batches (the input pipeline runs for them, the model does not), so it trains on exactly the
    batches of an uninterrupted run. (Restarting the iterator instead would replay epoch 0's
    order: `reshuffle_each_iteration` counts passes per process.)
    """
    stream = dataset.train.repeat()
    if start_epoch:
        stream = stream.skip(start_epoch * dataset.steps_per_epoch)
    return stream


def base_optimizer(optimizer):
    """The optimizer itself, or the one inside a `LossScaleOptimizer`."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def current_lr_sigma(optimizer):
    """`(lr, sigma)` the schedules give at the optimizer's current step (sigma 0 if plain)."""
    optimizer = base_optimizer(optimizer)
    lr = float(ops.convert_to_numpy(optimizer.learning_rate))
    sigma = getattr(optimizer, "sigma", 0.0)
    return lr, float(ops.convert_to_numpy(sigma))


# ----------------------------------------------------------------------------- callbacks


class EpochInfo(keras.callbacks.Callback):
    """Adds `lr` and `sigma` to the epoch logs.

    Both are the schedules' values at the optimizer's step at the end of the epoch; `sigma` is
    0 for the plain Keras optimizers. Put this callback before the loggers that should see them.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"], logs["sigma"] = current_lr_sigma(self.model.optimizer)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose backup is never half-written.

    Keras writes `latest.weights.h5`, then the metadata, in place: a process killed during the
    write can leave a truncated weights file, or new weights next to the old epoch number, and
    the resumed run would silently redo an epoch from the wrong state. Here each backup writes a
    new weights file (model and optimizer state), then commits it by atomically replacing
    `training_metadata.json`, which names the weights file and the epoch; older weights files
    are deleted afterwards. `extra_metadata` (e.g. the run's settings) is stored with the epoch.
    Backups are made at the end of every epoch.
    """

    def __init__(self, backup_dir, delete_checkpoint=True, extra_metadata=None):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=delete_checkpoint)
        self.extra_metadata = dict(extra_metadata or {})

    @staticmethod
    def read_metadata(backup_dir):
        """The committed metadata of the backup in `backup_dir`, or None if there is none."""
        path = os.path.join(backup_dir, "training_metadata.json")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            metadata = json.load(f)
        metadata.setdefault("weights", "latest.weights.h5")  # written by Keras's own callback
        if not os.path.exists(os.path.join(backup_dir, metadata["weights"])):
            return None
        return metadata

    def _load_model(self):
        if not self.model.built:
            raise ValueError(
                "To use the BackupAndRestore callback, the model must be built before fit()."
            )
        metadata = self.read_metadata(self.backup_dir)
        if metadata is None:
            return
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, metadata["weights"]))
        self.model._initial_epoch = metadata["epoch"]

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"epoch-{self._current_epoch:06d}.weights.h5"
        path = os.path.join(self.backup_dir, name)
        self.model.save_weights(path, overwrite=True)
        _fsync_file(path)
        metadata = {
            **self.extra_metadata,
            "epoch": self._current_epoch,
            "batch": self._last_batch_seen,
            "weights": name,
        }
        write_json(self._training_metadata_path, metadata)  # the commit point
        for entry in os.listdir(self.backup_dir):
            if entry.endswith(".weights.h5") and entry != name:
                os.remove(os.path.join(self.backup_dir, entry))


# ----------------------------------------------------------------------------- files


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path):
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text(path, text):
    """Writes `text` to `path` atomically (temporary file in the same folder, then rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def save_model_atomic(model, path):
    """`model.save(path)` (a .keras file) through a temporary file and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".model-", suffix=".keras", dir=folder)
    os.close(fd)
    try:
        model.save(tmp, overwrite=True)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def export_atomic(model, path, verbose=False):
    """`model.export(path)` (a TensorFlow SavedModel with a `serve` endpoint), all or nothing.

    The SavedModel is written to a temporary folder next to `path` and renamed into place. A
    previous export at `path` is first renamed aside and deleted after the new one is in
    place, so `path` is at any moment either absent, the old complete export or the new one.
    """
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(path)
    tmp = tempfile.mkdtemp(prefix=f".{base}.partial-", dir=parent)
    old = None
    try:
        model.export(tmp, format="tf_saved_model", verbose=verbose)
        if os.path.lexists(path):
            old = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
            os.replace(path, os.path.join(old, base))
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not os.path.lexists(path):
            os.replace(os.path.join(old, base), path)  # put the previous export back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(parent)
    return path
