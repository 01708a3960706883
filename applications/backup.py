"""Backups that are never half-written, and where a run resumes from.

* `AtomicBackupAndRestore`: the training state (model and optimizer) after every epoch, in
  the manner of `keras.callbacks.BackupAndRestore`, committed atomically;
* `resume_epoch`: the epoch a run resumes from, refusing a backup of other settings;
* `agree_on_start`: the epoch every process of a multi-process run resumes from.
"""

import json
import os
import shutil
import sys

import keras

from applications import _keras_patches, files
from applications.run_config import RunConfig, SettingsMismatchError
from applications.trainer import build_on

METADATA = "training_metadata.json"


class AtomicBackupAndRestore(keras.callbacks.Callback):
    """A `keras.callbacks.BackupAndRestore` (same files, same use) whose backup is never
    half-written.

    Keras writes `latest.weights.h5`, then the metadata, in place: a process killed during the
    write can leave a truncated weights file, or new weights next to the old epoch number, and
    the resumed run would silently redo an epoch from the wrong state. Here each backup writes a
    new weights file (model and optimizer state), then commits it by atomically replacing
    `training_metadata.json`, which names the weights file and the epoch; older weights files
    are deleted afterwards. `extra_metadata` (e.g. the run's settings) is stored with the epoch.
    Backups are made at the end of every epoch. At the start of `fit` the committed backup is
    loaded and `fit` continues after its epoch. With `delete_checkpoint` the backup is deleted
    when training ends.

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
        super().__init__()
        if not backup_dir:
            raise ValueError(f"Argument `backup_dir` must be a path. Received: {backup_dir!r}")
        self.backup_dir = backup_dir
        self.delete_checkpoint = delete_checkpoint
        self.extra_metadata = dict(extra_metadata or {})
        self.keep_previous = keep_previous
        self.restore_epoch = restore_epoch

    @staticmethod
    def read_metadata(backup_dir):
        """The committed metadata of the backup in `backup_dir`, or None if there is none."""
        path = os.path.join(backup_dir, METADATA)
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

    def on_train_begin(self, logs=None):
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
        _keras_patches.set_initial_epoch(self.model, epoch)

    def on_epoch_end(self, epoch, logs=None):
        self.save(epoch + 1)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            shutil.rmtree(self.backup_dir, ignore_errors=True)

    def save(self, epoch):
        """Backs up the state after `epoch` completed epochs (then commits it)."""
        name = f"epoch-{epoch:06d}.weights.h5"
        files.save_weights_atomic(self.model, os.path.join(self.backup_dir, name))
        metadata = {**self.extra_metadata, "epoch": epoch, "batch": 0, "weights": name}
        keep = {name}
        if self.keep_previous:
            old = self.read_metadata(self.backup_dir)
            if old is not None and int(old["epoch"]) < epoch:
                metadata["previous"] = {"epoch": int(old["epoch"]), "weights": old["weights"]}
                keep.add(old["weights"])
        files.write_json(os.path.join(self.backup_dir, METADATA), metadata)  # the commit point
        for entry in os.listdir(self.backup_dir):
            if entry.endswith(".weights.h5") and entry not in keep:
                os.remove(os.path.join(self.backup_dir, entry))


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


def worker_dir(run_dir, task):
    """Where a process other than the chief keeps its backup and log."""
    return os.path.join(run_dir, task)


def agree_on_start(distribution, backup_dir, start_epoch):
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
