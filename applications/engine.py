"""The run engine that every script shares.

* `RunConfig`: everything that determines a run's computation (model, data, optimizer, seed,
  epochs, precision), built from the command line by `RunConfig.from_args`;
* `Trainer`: a config's data, model and optimizer, compiled once. `Trainer.reset` puts back
  given initial weights, a fresh optimizer state and a noise seed, so one compiled model serves
  many runs (the depth study runs every seed through it);
* `save_initial_weights`: the one mechanism for "the same initial weights per seed": the model
  built from a clean Keras session after `keras.utils.set_random_seed(seed)`, saved once to a
  weights file that every run of that seed loads;
* `run`: one resumable `fit` with the standard callbacks (progress bar, CSV records, TensorBoard,
  backup after every epoch), then the model, the summary and the optional SavedModel export;
* callbacks: `EpochInfo` (lr and sigma into the epoch logs), `EpochRecords` (one CSV row per
  completed epoch, numbered from 1), `AtomicBackupAndRestore` (a backup never half-written).

Epochs are numbered from 1 in every record: epoch k is the state after k epochs of training.
"""

import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import shutil
import sys
import time
import warnings

import keras
import numpy as np
from keras import ops

import keras_langevin.callbacks
from applications import files
from applications import settings as settings_lib

# Columns of a run's `log.csv`.
LOG_FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "sigma")


#: A setting that cannot run (unknown layer name, missing dataset...): a usage error.
UsageError = settings_lib.SettingsError


class SettingsMismatchError(UsageError):
    """A run directory holds a backup of a run with other settings."""


# ----------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The settings of one run, as given; None for an optimizer setting means its default.

    `optimizer_settings()` resolves the optimizer's settings (`applications.settings`, the one
    place that knows the defaults), and `settings()`, what the records keep, holds those
    resolved values: settings that the optimizer does not use are None there, never defaults.
    """

    model: str = "resnet20"
    model_options: tuple = ()
    dataset: str = "digits"
    data_dir: str | None = None
    image_size: int | None = None
    augment: str = "standard"
    batch_size: int = 32
    train_take: int | None = None
    test_take: int | None = None
    optimizer: str = "layer-ladam"
    lr: float | None = None
    lr_schedule: str | None = None
    decay_epochs: float | None = None
    epsilon: str | float | None = None
    sigma: float | None = None
    sigma_schedule: str | None = None
    noise: str | None = None
    langevin_layers: object = None
    seed: int = 0
    epochs: int = 10
    mixed_precision: str = "off"
    # Extra keyword arguments of the optimizer (`applications.settings.resolve`), as
    # (KEY, VALUE) pairs, e.g. (("rho", 0.99),); None: none (and then absent from `settings()`).
    optimizer_options: tuple | None = None

    # Not part of the computation: a backup made with other values may be resumed.
    RESUMABLE_CHANGES = ("data_dir", "epochs")
    # The fields that `applications.settings.resolve` fills in.
    OPTIMIZER_FIELDS = (
        "lr",
        "lr_schedule",
        "decay_epochs",
        "epsilon",
        "sigma",
        "sigma_schedule",
        "noise",
        "langevin_layers",
    )

    def __post_init__(self):
        object.__setattr__(self, "model_options", tuple(map(tuple, self.model_options)))
        if self.optimizer_options is not None:
            options = tuple(map(tuple, self.optimizer_options))
            object.__setattr__(self, "optimizer_options", options)
        if isinstance(self.langevin_layers, list):
            object.__setattr__(self, "langevin_layers", tuple(self.langevin_layers))
        self.optimizer_settings()  # bad settings fail here, at construction

    def optimizer_settings(self):
        """The optimizer's resolved `applications.settings.OptimizerSettings`."""
        given = {key: getattr(self, key) for key in self.OPTIMIZER_FIELDS}
        return settings_lib.resolve(
            self.optimizer, epochs=self.epochs, **given, **dict(self.optimizer_options or ())
        )

    @classmethod
    def from_args(cls, args, **overrides):
        """The config of parsed arguments (`applications.cli` groups), with `overrides`."""
        names = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in vars(args).items() if key in names}
        return cls(**{**values, **overrides})

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def settings(self):
        """The settings that determine the computation, resolved, in their JSON form."""
        resolved = self.optimizer_settings()
        settings = {
            key: getattr(resolved, key) if key in self.OPTIMIZER_FIELDS else value
            for key, value in dataclasses.asdict(self).items()
            if key not in self.RESUMABLE_CHANGES
        }
        if resolved.exploration_fraction is not None:  # the cyclical sigma's default, recorded
            options = dict(self.optimizer_options or ())
            options.setdefault("exploration_fraction", resolved.exploration_fraction)
            settings["optimizer_options"] = tuple(options.items())
        if settings.get("optimizer_options") is None:  # as in backups made before the field
            settings.pop("optimizer_options", None)
        return json.loads(json.dumps(settings, default=files.json_default))

    @classmethod
    def resolve_settings(cls, settings, epochs):
        """`settings` (a record's, this version's or an older one) with its defaults resolved
        for a run of `epochs`: an older record's None or "paper" becomes the values it ran
        with."""
        names = {field.name for field in dataclasses.fields(cls)} - {"epochs"}
        given = {key: value for key, value in settings.items() if key in names}
        config = cls(**given, epochs=epochs)
        return config.settings()


# ----------------------------------------------------------------------------- building


@contextlib.contextmanager
def precision(mixed_precision):
    """Uses the dtype policy of `mixed_precision` inside the block, then restores the old one."""
    previous = keras.mixed_precision.global_policy().name
    policy = mixed_precision if mixed_precision not in (None, "off") else "float32"
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def load_data(config, seed=None):
    """The dataset of `config`; its training stream follows `seed` (default: the config's)."""
    from applications import data

    return data.load_dataset(
        config.dataset,
        batch_size=config.batch_size,
        image_size=config.image_size,
        augment=config.augment,
        data_dir=config.data_dir,
        seed=config.seed if seed is None else seed,
        train_take=config.train_take,
        test_take=config.test_take,
    )


def build_model(config, dataset):
    from applications import models

    return models.build_model(
        config.model, dataset.input_shape, dataset.num_classes, **dict(config.model_options)
    )


def build_optimizer(config, steps_per_epoch):
    return config.optimizer_settings().build(steps_per_epoch, seed=config.seed)


def build_on(optimizer, model):
    """Builds `optimizer` for `model`'s trainable variables; a Langevin optimizer is told its
    model first (Layer Langevin orders the model's layers)."""
    if hasattr(optimizer, "set_model"):
        optimizer.set_model(model)
    optimizer.build(model.trainable_variables)


def save_initial_weights(config, path):
    """Saves the initial weights of `config`'s model for `config.seed` to `path`, once.

    The model is built from a clean Keras session after `keras.utils.set_random_seed(seed)`, so
    the weights depend only on the model settings and the seed, whatever ran before. An
    existing file is kept: every run of that seed, in this invocation or a resumed one, starts
    from the same weights. Returns `path`.
    """
    if not os.path.exists(path):
        keras.backend.clear_session()
        keras.utils.set_random_seed(config.seed)
        with precision(config.mixed_precision):
            model = build_model(config, _shapes(config))
            files.save_weights_atomic(model, path)
        del model
        keras.backend.clear_session()
    return path


def check_configs(configs):
    """Raises `UsageError` if an optimizer of `configs` cannot run on its model.

    Builds each distinct model once, from a clean session, and each optimizer on its
    variables (the layer names of `langevin_layers` are checked there): a script calls this
    before writing anything, so that bad settings leave no partial output behind.
    """
    from applications import data

    models = {}
    try:
        for config in configs:
            key = (config.model, config.model_options, config.dataset, config.image_size)
            if key not in models:
                keras.backend.clear_session()
                with precision(config.mixed_precision):
                    models[key] = build_model(config, _shapes(config))
            build_on(build_optimizer(config, 1), models[key])
    except (ValueError, TypeError, data.DatasetNotAvailableError) as error:
        raise UsageError(str(error)) from error
    finally:
        models.clear()
        keras.backend.clear_session()


@dataclasses.dataclass(frozen=True)
class _Shapes:
    input_shape: tuple
    num_classes: int


def _shapes(config):
    dataset = load_data(config)
    return _Shapes(dataset.input_shape, dataset.num_classes)


class Trainer:
    """A config's data, model and optimizer, compiled once, for one or many runs.

    Building validates what can only be checked against the model (layer names of
    `langevin_layers`): bad settings raise `UsageError` before any file is written.
    """

    def __init__(self, config, initial_weights=None, distribution=None):
        from applications import data, distribute

        self.config = config
        # Several devices or processes (`applications.distribute`): the model and optimizer
        # are built in its scope, `fit` runs under it; `config.batch_size` is the global batch.
        self.distribution = distribution or distribute.OFF
        with self.distribution.scope():
            try:
                self.dataset = load_data(config)
                self.model = build_model(config, self.dataset)
                if initial_weights is not None:
                    self.model.load_weights(initial_weights)
                self.optimizer = build_optimizer(config, self.dataset.steps_per_epoch)
                build_on(self.optimizer, self.model)
            except (ValueError, TypeError, data.DatasetNotAvailableError) as error:
                raise UsageError(str(error)) from error
            self.model.compile(
                optimizer=self.optimizer, loss=self.dataset.loss, metrics=["accuracy"]
            )
            self.model.optimizer.build(self.model.trainable_variables)
            # The compiled loss and metrics, built from the shapes of a batch: otherwise the
            # JAX `fit` builds them from a batch that it draws from a first iterator over the
            # training stream before training opens a second one, and the seeded shuffle,
            # redrawn at each pass, trains on the stream's later passes (a resumed run, whose
            # stream skips the completed epochs, on other passes than the uninterrupted run).
            spec = self.dataset.train.element_spec
            self.model._symbolic_build(
                data_batch=keras.tree.map_structure(
                    lambda s: keras.KerasTensor(tuple(s.shape), s.dtype.name), spec
                )
            )
        self._fresh_state = [
            np.array(ops.convert_to_numpy(v), copy=True) for v in self.model.optimizer.variables
        ]

    @property
    def steps_per_epoch(self):
        return self.dataset.steps_per_epoch

    def reset(self, seed, initial_weights):
        """Starts a new run: weights from `initial_weights`, fresh optimizer state, noise and
        data order from `seed`. Equal, up to float rounding, to a freshly built trainer."""
        with warnings.catch_warnings():  # the file holds no optimizer state: expected
            warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            self.model.load_weights(initial_weights)
        for variable, value in zip(self.model.optimizer.variables, self._fresh_state):
            variable.assign(value)
        for variable in self.model.optimizer.variables:
            if variable.name == "langevin_seed":
                variable.assign(seed)
        keras.utils.set_random_seed(seed)
        # A new pipeline: a second pass over the old one would be shuffled differently.
        self.config = self.config.replace(seed=seed)
        self.dataset = load_data(self.config)

    def fit(self, callbacks, start_epoch=0, verbose=0):
        """`model.fit` up to `config.epochs` on the seeded training stream, from `start_epoch`."""
        train, test = training_stream(self.dataset, start_epoch), self.dataset.test
        if self.distribution.strategy is not None:
            train, test = shard_by_data(train), shard_by_data(test)
        with self.distribution.fitting(self.model):
            return self.model.fit(
                train,
                epochs=self.config.epochs,
                steps_per_epoch=self.dataset.steps_per_epoch,
                initial_epoch=start_epoch,
                validation_data=test,
                callbacks=callbacks,
                verbose=verbose,
                shuffle=False,  # the stream is shuffled, reproducibly, by the input pipeline
            )


def shard_by_data(dataset):
    """`dataset` split by elements among the workers of a `tf.distribute` strategy.

    Every worker runs the whole input pipeline (same seeds, same batches) and keeps its part
    of each global batch, so the replicas together see exactly the batches of one device;
    TensorFlow's default would shard a file-based dataset by files instead.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


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


# ----------------------------------------------------------------------------- callbacks


class EpochInfo(keras_langevin.callbacks.SigmaLogger):
    """Adds `lr` and `sigma` to the epoch logs (the library's `SigmaLogger`, plus `lr`).

    Both are the schedules' values at the optimizer's step at the end of the epoch; `sigma` is
    0 for the plain Keras optimizers. Put this callback before the loggers that should see them.
    """

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if logs is not None:
            # Keras's LossScaleOptimizer forwards `learning_rate` to the optimizer it wraps.
            logs["lr"] = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))


class EpochRecords(keras.callbacks.Callback):
    """Appends one CSV row per completed epoch (numbered from 1) and keeps the rows.

    A row holds `fields` taken from `constants`, then from the epoch logs; `epoch` is the
    number of completed epochs and `seconds` the wall time of the epoch. Each row is synced to
    disk when written, so an interrupted run keeps the rows of its completed epochs.
    """

    def __init__(self, path, fields=LOG_FIELDS, constants=None):
        super().__init__()
        self.path, self.fields, self.constants = path, tuple(fields), dict(constants or {})
        self.rows = []
        self._started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        row = {"epoch": epoch + 1, "seconds": time.perf_counter() - self._started}
        for field in self.fields:
            if field in logs:
                row[field] = float(logs[field])
        row.update(self.constants)
        row = {field: row.get(field, math.nan) for field in self.fields}
        files.append_csv_row(self.path, self.fields, row)
        self.rows.append(row)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose backup is never half-written.

    Keras writes `latest.weights.h5`, then the metadata, in place: a process killed during the
    write can leave a truncated weights file, or new weights next to the old epoch number, and
    the resumed run would silently redo an epoch from the wrong state. Here each backup writes a
    new weights file (model and optimizer state), then commits it by atomically replacing
    `training_metadata.json`, which names the weights file and the epoch; older weights files
    are deleted afterwards. `extra_metadata` (e.g. the run's settings) is stored with the epoch.
    Backups are made at the end of every epoch.

    Several processes (multi-worker training) each keep their own backup; a process killed
    between the others' commit of epoch k and its own leaves k - 1 behind. With
    `keep_previous` the backup before the latest is kept too (named in the metadata as
    `previous`), and `restore_epoch` (agreed on by all processes) picks which one is loaded
    (0: none).
    """

    def __init__(
        self,
        backup_dir,
        delete_checkpoint=True,
        extra_metadata=None,
        keep_previous=False,
        restore_epoch=None,
    ):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=delete_checkpoint)
        self.extra_metadata = dict(extra_metadata or {})
        self.keep_previous = keep_previous
        self.restore_epoch = restore_epoch

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

    @staticmethod
    def backups(metadata):
        """`{epoch: weights file}` of the latest backup and, if kept, the one before."""
        if metadata is None:
            return {}
        found = {int(metadata["epoch"]): metadata["weights"]}
        previous = metadata.get("previous")
        if previous:
            found.setdefault(int(previous["epoch"]), previous["weights"])
        return found

    def _load_model(self):
        metadata = self.read_metadata(self.backup_dir)
        if metadata is None or self.restore_epoch == 0:
            return
        epoch = int(metadata["epoch"]) if self.restore_epoch is None else self.restore_epoch
        weights = self.backups(metadata).get(epoch)
        if weights is None:
            raise RuntimeError(
                f"{self.backup_dir} holds no backup of epoch {epoch} (it has "
                f"{sorted(self.backups(metadata))})"
            )
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            build_on(optimizer, self.model)
        self.model.load_weights(os.path.join(self.backup_dir, weights))
        self.model._initial_epoch = epoch

    def _save_model(self):
        name = f"epoch-{self._current_epoch:06d}.weights.h5"
        files.save_weights_atomic(self.model, os.path.join(self.backup_dir, name))
        metadata = {
            **self.extra_metadata,
            "epoch": self._current_epoch,
            "batch": self._last_batch_seen,
            "weights": name,
        }
        keep = {name}
        if self.keep_previous:
            old = self.read_metadata(self.backup_dir)
            if old is not None and int(old["epoch"]) < self._current_epoch:
                metadata["previous"] = {"epoch": int(old["epoch"]), "weights": old["weights"]}
                keep.add(old["weights"])
        files.write_json(self._training_metadata_path, metadata)  # the commit point
        for entry in os.listdir(self.backup_dir):
            if entry.endswith(".weights.h5") and entry not in keep:
                os.remove(os.path.join(self.backup_dir, entry))


# ----------------------------------------------------------------------------- one run


def run_paths(run_dir, export_dir=None):
    """Where a run keeps its outputs."""
    return {
        "run_dir": run_dir,
        "csv_log": os.path.join(run_dir, "log.csv"),
        "tensorboard": os.path.join(run_dir, "tensorboard"),
        "backup": os.path.join(run_dir, "backup"),
        "model": os.path.join(run_dir, "model.keras"),
        "summary": os.path.join(run_dir, "summary.json"),
        "export": export_dir,
    }


def resume_epoch(config, backup_dir):
    """The epoch to resume `config` from (0 without a backup); refuses other settings."""
    backup = AtomicBackupAndRestore.read_metadata(backup_dir)
    if backup is None:
        return 0
    previous, settings = backup.get("settings"), config.settings()
    if previous is not None:
        previous = _resolved_or_raw(previous, config.epochs)
    if previous is not None and previous != settings:
        changed = sorted(
            key for key in set(previous) | set(settings) if previous.get(key) != settings.get(key)
        )
        raise SettingsMismatchError(
            f"{os.path.dirname(os.path.abspath(backup_dir))} holds a backup of a run with other "
            f"settings (different: {', '.join(changed)}). Resume it with the same arguments, or "
            "use another --output (or delete that directory)."
        )
    return int(backup["epoch"])


def _resolved_or_raw(settings, epochs):
    """A backup's settings with their defaults resolved (backups of older versions stored None
    or "paper"); as stored if they no longer resolve (they differ then anyway)."""
    try:
        return RunConfig.resolve_settings(settings, epochs)
    except (ValueError, TypeError):
        return settings


def standard_callbacks(paths, settings, verbose, tensorboard=True, extra=(), backup_options=None):
    """lr/sigma into the logs, progress bar, CSV records, TensorBoard, the `extra` callbacks,
    then the backup (last: an epoch counts as done once its records and the work of the extra
    callbacks, e.g. a posterior sample, are written). `backup_options` go to
    `AtomicBackupAndRestore` (`keep_previous`, `restore_epoch`)."""
    callbacks = [EpochInfo()]
    if verbose:
        callbacks.append(keras.callbacks.ProgbarLogger())
    callbacks.append(EpochRecords(paths["csv_log"]))
    if tensorboard and importlib.util.find_spec("tensorboard") is not None:
        callbacks.append(
            keras.callbacks.TensorBoard(
                paths["tensorboard"], write_graph=False, update_freq="epoch", profile_batch=0
            )
        )
    elif tensorboard:
        print("TensorBoard is not installed: no TensorBoard logs.", file=sys.stderr)
    callbacks.extend(extra)
    callbacks.append(
        AtomicBackupAndRestore(
            paths["backup"],
            delete_checkpoint=False,
            extra_metadata={"settings": settings},
            **(backup_options or {}),
        )
    )
    return callbacks


def _prepare_run_dir(paths, start_epoch):
    os.makedirs(paths["run_dir"], exist_ok=True)
    if start_epoch == 0:  # a fresh start: the outputs of an earlier attempt go
        for key in ("csv_log", "summary", "model"):
            if os.path.exists(paths[key]):
                os.remove(paths[key])
        shutil.rmtree(paths["tensorboard"], ignore_errors=True)
        return
    rows = files.read_csv(paths["csv_log"])
    kept = [
        row for row in rows if row.get("epoch", "").isdigit() and int(row["epoch"]) <= start_epoch
    ]
    if len(kept) != len(rows):  # epochs of an interrupted attempt, redone
        files.write_csv(paths["csv_log"], LOG_FIELDS, kept)


def read_log(path):
    """The rows of a run's `log.csv`, as dicts of floats (epoch as int)."""
    return [
        {key: int(value) if key == "epoch" else float(value) for key, value in row.items()}
        for row in files.read_csv(path)
    ]


def summarize(rows):
    """Final and best test accuracy, final training loss, lr and sigma of a run's records."""
    if not rows:
        return {}
    last = rows[-1]
    best = max(rows, key=lambda row: row.get("val_accuracy", float("-inf")))
    return {
        "final_test_accuracy": last.get("val_accuracy"),
        "final_test_loss": last.get("val_loss"),
        "best_test_accuracy": best.get("val_accuracy"),
        "best_epoch": best["epoch"],
        "final_train_loss": last.get("loss"),
        "final_train_accuracy": last.get("accuracy"),
        "final_lr": last.get("lr"),
        "final_sigma": last.get("sigma"),
    }


def run(
    config,
    run_dir,
    *,
    initial_weights=None,
    export_dir=None,
    verbose=1,
    tensorboard=True,
    extra_summary=None,
    callbacks=(),
    distribution=None,
):
    """Trains `config` in `run_dir`, resumably; returns the run's summary.

    A run directory with a backup is resumed from its last completed epoch (it ends with the
    weights an uninterrupted run ends with); one whose backup has other settings is refused
    (`SettingsMismatchError`). Bad settings raise `UsageError` before anything is written.
    `initial_weights` (a weights file) replaces the seed's own initialisation. With
    `export_dir`, the trained model is exported as a SavedModel there, complete or absent.
    `callbacks` go after the loggers and before the backup. Returns `(summary, rows)`.

    `distribution` (`applications.distribute.setup`) trains on several devices or processes.
    Every process keeps its own backup (the chief in `run_dir/backup`, another process in
    `run_dir/worker-<task>/`, with its own log); they resume together from the last epoch all
    of them completed. Only the chief writes the TensorBoard logs, the model, the export and
    the summary; the others save and export in lockstep to temporary paths, then delete them.
    """
    from applications import distribute

    started = time.time()
    distribution = distribution or distribute.OFF
    chief = distribution.is_chief
    paths = run_paths(run_dir if chief else worker_dir(run_dir, distribution.task), export_dir)
    start_epoch = resume_epoch(config, paths["backup"])
    backup_options = None
    if distribution.num_processes > 1:
        start_epoch = _agree_on_start(distribution, paths["backup"], start_epoch)
        backup_options = {"keep_previous": True, "restore_epoch": start_epoch}
    with precision(config.mixed_precision):
        keras.utils.set_random_seed(config.seed)
        trainer = Trainer(config, initial_weights=initial_weights, distribution=distribution)
        _prepare_run_dir(paths, start_epoch)
        if start_epoch:
            print(f"Resuming {run_dir} after epoch {start_epoch}.", file=sys.stderr)
        if start_epoch >= config.epochs:
            print(
                f"The run has already completed {start_epoch} epochs (--epochs "
                f"{config.epochs}); nothing to train.",
                file=sys.stderr,
            )
        callbacks = standard_callbacks(
            paths,
            config.settings(),
            verbose,
            tensorboard and chief,
            extra=callbacks,
            backup_options=backup_options,
        )
        trainer.fit(callbacks, start_epoch=start_epoch, verbose=verbose)
        with distribution.private_path(paths["model"]) as path:
            files.save_model_atomic(trainer.model, path)
        if export_dir is not None:
            with distribution.private_path(export_dir) as path:
                files.export_atomic(trainer.model, path)
    if not chief:  # written to temporary paths and deleted
        paths = {**paths, "model": None, "export": None, "summary": None, "tensorboard": None}
    rows = read_log(paths["csv_log"])
    summary = {
        **(extra_summary or {}),
        "settings": config.settings(),
        "epochs": len(rows),
        "resumed_from_epoch": start_epoch,
        **summarize(rows),
        "train_size": trainer.dataset.train_size,
        "test_size": trainer.dataset.test_size,
        "steps_per_epoch": trainer.steps_per_epoch,
        "parameters": trainer.model.count_params(),
        "wall_time_s": round(time.time() - started, 3),
        "paths": {key: value for key, value in paths.items() if value is not None},
        "versions": {
            "python": sys.version.split()[0],
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
        },
    }
    if distribution.mode != "off":
        summary["distribution"] = distribution.summary()
    if chief:
        files.write_json(paths["summary"], summary)
    return summary, rows


def worker_dir(run_dir, task):
    """Where a process other than the chief keeps its backup and log."""
    return os.path.join(run_dir, task)


def _agree_on_start(distribution, backup_dir, start_epoch):
    """The epoch every process resumes from: the last one that all of them completed.

    A process can be one backup behind the others (killed between their commits); each keeps
    the backup before its latest, so the agreed epoch is always among its backups.
    """
    epochs = distribution.agree(start_epoch)
    agreed = min(epochs)
    if agreed and agreed not in AtomicBackupAndRestore.backups(
        AtomicBackupAndRestore.read_metadata(backup_dir)
    ):
        raise RuntimeError(
            f"The processes' backups are at epochs {epochs}; {backup_dir} cannot go back to "
            f"epoch {agreed}. Delete the run's backups to start again."
        )
    if agreed != start_epoch:
        print(
            f"Backups at epochs {epochs} (one per process): resuming from epoch {agreed}.",
            file=sys.stderr,
        )
    return agreed


# ----------------------------------------------------------------------------- reporting


def mean_std(values):
    """`(mean, std, n)` of `values`: the sample standard deviation (n - 1 in the denominator),
    NaN when n < 2; `(nan, nan, 0)` for no values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan, 0
    std = float(values.std(ddof=1)) if values.size > 1 else math.nan
    return float(values.mean()), std, int(values.size)


def format_mean_std(values, scale=1.0, digits=4, signed=False):
    """ "mean ± std" (just the mean for one value, "–" for none)."""
    mean, std, count = mean_std(values)
    if count == 0:
        return "–"
    text = f"{scale * mean:{'+' if signed else ''}.{digits}f}"
    return text + (f" ± {scale * std:.{digits}f}" if count > 1 else "")
