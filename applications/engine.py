"""The run engine that every script shares: one resumable training run, and its parts.

* `RunConfig` (`applications.run_config`): everything that determines a run's computation,
  built from the command line by `RunConfig.from_args`; its optimizer settings resolved by
  `applications.settings`;
* `Trainer`, `save_initial_weights`, `check_configs` (`applications.trainer`): a config's
  data, model and optimizer, compiled once; the same initial weights per seed;
* `run` (here): one resumable `fit` with the standard callbacks (progress bar, CSV records,
  TensorBoard, backup after every epoch), then the model, the summary and the optional
  SavedModel export;
* callbacks and records (`applications.records`): `EpochInfo`, `EpochRecords`, `read_log`,
  `summarize`, `mean_std`; backups (`applications.backup`): `AtomicBackupAndRestore` (a
  backup never half-written), `resume_epoch`.

The names of those modules are importable from here too (`engine.RunConfig`, `engine.Trainer`,
...), as the scripts use them. Epochs are numbered from 1 in every record: epoch k is the state
after k epochs of training.
"""

import importlib.util
import os
import shutil
import sys
import time

import keras

from applications import files
from applications.backup import (
    AtomicBackupAndRestore,
    agree_on_start,
    resume_epoch,
    worker_dir,
)
from applications.data import augment
from applications.records import (
    LOG_FIELDS,
    EpochInfo,
    EpochRecords,
    format_mean_std,
    mean_std,
    read_log,
    summarize,
)
from applications.run_config import RunConfig, SettingsMismatchError, UsageError
from applications.trainer import (
    Trainer,
    build_model,
    build_on,
    build_optimizer,
    check_configs,
    load_data,
    precision,
    reseed,
    save_initial_weights,
    training_stream,
)

__all__ = [
    "LOG_FIELDS",
    "AtomicBackupAndRestore",
    "EpochInfo",
    "EpochRecords",
    "RunConfig",
    "SettingsMismatchError",
    "Trainer",
    "UsageError",
    "agree_on_start",
    "build_model",
    "build_on",
    "build_optimizer",
    "check_configs",
    "format_mean_std",
    "load_data",
    "mean_std",
    "precision",
    "read_log",
    "reseed",
    "resume_epoch",
    "run",
    "run_paths",
    "save_initial_weights",
    "standard_callbacks",
    "summarize",
    "training_stream",
    "worker_dir",
]

#: The name this module had before `applications.backup` (the tests of distribute use it).
_agree_on_start = agree_on_start


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
    start_epoch, backup_options = _start_epoch(config, paths["backup"], distribution)
    with precision(config.mixed_precision):
        keras.utils.set_random_seed(config.seed)
        trainer = Trainer(config, initial_weights=initial_weights, distribution=distribution)
        _prepare_run_dir(paths, start_epoch)
        _say_where_it_starts(config, run_dir, start_epoch)
        callbacks = standard_callbacks(
            paths,
            config.settings(),
            verbose,
            tensorboard and chief,
            extra=callbacks,
            backup_options=backup_options,
        )
        trainer.fit(callbacks, start_epoch=start_epoch, verbose=verbose)
        _save_outputs(trainer.model, paths, distribution)
    return _finish(config, trainer, paths, start_epoch, distribution, extra_summary, started)


def _finish(config, trainer, paths, start_epoch, distribution, extra_summary, started):
    """`(summary, rows)` of a trained run; the chief writes the summary."""
    if not distribution.is_chief:  # written to temporary paths and deleted
        paths = {**paths, "model": None, "export": None, "summary": None, "tensorboard": None}
    rows = read_log(paths["csv_log"])
    summary = {
        **(extra_summary or {}),
        **_run_summary(config, trainer, rows, start_epoch, paths),
        "wall_time_s": round(time.time() - started, 3),
    }
    if distribution.mode != "off":
        summary["distribution"] = distribution.summary()
    if distribution.is_chief:
        files.write_json(paths["summary"], summary)
    return summary, rows


def _start_epoch(config, backup_dir, distribution):
    """The epoch to start from and the backup's options (several processes: the agreed one)."""
    start_epoch = resume_epoch(config, backup_dir)
    if distribution.num_processes == 1:
        return start_epoch, None
    start_epoch = agree_on_start(distribution, backup_dir, start_epoch)
    return start_epoch, {"keep_previous": True, "restore_epoch": start_epoch}


def _say_where_it_starts(config, run_dir, start_epoch):
    if start_epoch:
        print(f"Resuming {run_dir} after epoch {start_epoch}.", file=sys.stderr)
    if start_epoch >= config.epochs:
        print(
            f"The run has already completed {start_epoch} epochs (--epochs "
            f"{config.epochs}); nothing to train.",
            file=sys.stderr,
        )


def _save_outputs(model, paths, distribution):
    """The trained model and, if asked for, its export (processes other than the chief write
    theirs to temporary paths, in lockstep)."""
    with distribution.private_path(paths["model"]) as path:
        files.save_model_atomic(model, path)
    if paths["export"] is not None:
        with distribution.private_path(paths["export"]) as path:
            files.export_atomic(model, path)


def _run_summary(config, trainer, rows, start_epoch, paths):
    batched = any(policy in augment.BATCH_POLICIES for policy in trainer.dataset.augment)
    return {
        "settings": config.settings(),
        # which layers ran the batch policies (keras-cv or Keras's own: augment.choice)
        "augmentation": {
            "policies": list(trainer.dataset.augment),
            "batch_implementation": augment.implementation() if batched else None,
        },
        "epochs": len(rows),
        "resumed_from_epoch": start_epoch,
        **summarize(rows),
        "train_size": trainer.dataset.train_size,
        "test_size": trainer.dataset.test_size,
        "steps_per_epoch": trainer.steps_per_epoch,
        "parameters": trainer.model.count_params(),
        "paths": {key: value for key, value in paths.items() if value is not None},
        "versions": {
            "python": sys.version.split()[0],
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
        },
    }
