"""Collecting posterior samples during `model.fit`, on disk, resumably."""

import collections
import json
import math
import os

import keras
from keras import ops

from keras_langevin.sampling import _checks, _guards, _weights_io

MANIFEST = "manifest.json"
_FORMAT = "keras_langevin.posterior_samples"
_VERSION = 2  # 2: the run's settings in the manifest; version 1 manifests are still read
# Optimizer settings that a run may change between `fit` calls (float variables, set like
# `optimizer.learning_rate = ...`): not part of a run's identity.
_SETTABLE = ("name", "learning_rate", "sigma", "sigma_paused", "jit_compile")
_TEMP_PREFIX = ".tmp-"

Sample = collections.namedtuple("Sample", ["epoch", "step", "path"])
Sample.__doc__ = """One posterior sample: the model's weights after epoch `epoch` (counted from 1),
i.e. after `step` optimizer updates, stored at `path` (a `.weights.h5` file)."""


def _file_name(epoch):
    return f"epoch_{epoch:06d}.weights.h5"


def _fsync(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. directories on Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _read_manifest(directory):
    path = os.path.join(directory, MANIFEST)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a manifest of posterior samples (format {_FORMAT!r}).")
    return manifest


def load_samples(directory):
    """The samples listed in the manifest of `directory`, as `Sample(epoch, step, path)`,
    ordered by epoch. An empty list when the directory holds no manifest yet."""
    directory = os.fspath(directory)
    manifest = _read_manifest(directory)
    if manifest is None:
        return []
    return [
        Sample(entry["epoch"], entry["step"], os.path.join(directory, entry["file"]))
        for entry in sorted(manifest["samples"], key=lambda entry: entry["epoch"])
    ]


class PosteriorSampler(keras.callbacks.Callback):
    """Collects weight samples during `model.fit`, on disk, for Bayesian model averaging.

    With a Langevin optimizer at the posterior noise level
    (`sigma=keras_langevin.sampling.posterior_sigma(N)`), the weights visited after burn-in are
    approximate draws from the posterior. At the end of selected epochs this callback writes the
    model's weights (every layer variable, BatchNormalization's moving statistics included; not
    the optimizer's state) to `directory/epoch_EEEEEE.weights.h5`, in Keras's weights format, so
    memory stays bounded whatever the number of samples. `PosteriorEnsemble` averages them.

    Which epochs (counted from 1: "after epoch `e`" is after `e` epochs of training): after
    epoch `e` when `e > burn_in_epochs` and either `(e - burn_in_epochs)` is a multiple of
    `every_epochs`, or, when `epochs` is given, `e` is in `epochs` (for cyclical SG-MCMC:
    `epochs=CyclicalSigma(...).sampling_epochs(steps_per_epoch, num_epochs)`, the cycle ends).

    Epochs are counted with the optimizer's step counter (`optimizer.iterations`), not with
    the epoch number of the current `fit` call (which Keras starts at 0 in every call): the
    epoch that ends after `step` updates, `K` of them in that epoch, is epoch `ceil(step / K)`
    (with a constant number `K` of steps per epoch: epoch `e` ends after `e * K` updates).
    Several `fit` calls therefore sample as one long `fit` would, and `burn_in_epochs` counts
    from the optimizer's first update, whichever call made it.

    At most `max_samples` samples: once the directory holds that many, the sampler stops
    collecting (later epochs are not sampled). It keeps the earliest samples rather than a
    reservoir or the latest ones because that keeps every file, once written, final: a restarted
    run never deletes or rewrites a sample, and the set of samples does not depend on how often
    the run was interrupted. Choose `burn_in_epochs` and the spacing so that the samples you
    want come first.

    Crash safety and resumption: each sample is written to a temporary file and renamed into
    place (`os.replace`), then a small JSON manifest (`manifest.json`, also replaced
    atomically) lists the samples with their epoch and optimizer step. At the start of every
    `fit` the sampler reads the manifest of `directory` and keeps the samples in it; an epoch
    already listed is never sampled again. A killed run restarted with the same `directory`
    and `keras.callbacks.BackupAndRestore` (which restores the weights, the optimizer, its noise
    state and the epoch) therefore ends with the same samples as an uninterrupted run when the
    training itself is deterministic (fixed seeds, e.g. `shuffle=False` or seeded data
    pipeline). A sample written after the last backup is kept, and its epoch, replayed after
    the restart, is skipped. Put the sampler before `BackupAndRestore` in `callbacks`: an
    epoch is then backed up only once its sample is on disk, and a kill in between replays the
    epoch instead of losing its sample.

    A fresh run needs a fresh (or empty) directory: samples already in `directory` count as
    this run's. The manifest records the run's settings (the shapes of the model's weights,
    `burn_in_epochs`, `every_epochs`, `epochs`, and the optimizer's class and configuration
    except its name and the values settable during a run: a float `learning_rate` or
    `sigma` and whether it is paused, `jit_compile`), and `fit` refuses a directory whose
    samples were taken with other settings, naming them: only the same run, resuming,
    continues there. `max_samples` may change (raise it to collect more).

    One process writes (the usual single-host `fit`, `tf.distribute.MirroredStrategy`
    included).

    Guards (at the start of `fit`): a loss with `reduction="sum"` (the posterior would be
    `sqrt(batch size)` times too narrow) is refused; an optimizer that adds no noise (not a
    Langevin optimizer, or a float `sigma` of 0: the samples are then an optimisation path, as
    a MAP or deep-ensemble baseline saves them on purpose) and a constant sigma that is
    `posterior_sigma(N)` with `N` at most the number of batches per epoch (the number of
    batches passed instead of examples) give a `UserWarning`.

    Args:
        directory: path of the folder for the samples (created if needed).
        burn_in_epochs: int >= 0, epochs at the start with no sample. Defaults to `0`.
        every_epochs: int >= 1, spacing of the samples after burn-in. Defaults to `1`.
        epochs: optional iterable of epoch numbers (from 1) to sample after, instead of the
            regular spacing (`burn_in_epochs` still applies).
        max_samples: optional int >= 1, the most samples kept (see above).
        verbose: `0` (silent) or `1` (a line per sample written).
    """

    def __init__(
        self,
        directory,
        *,
        burn_in_epochs=0,
        every_epochs=1,
        epochs=None,
        max_samples=None,
        verbose=0,
    ):
        super().__init__()
        if not isinstance(directory, (str, os.PathLike)):
            raise TypeError(
                f"Argument `directory` must be a path (str or os.PathLike). "
                f"Received: directory={directory!r}"
            )
        self.directory = os.fspath(directory)
        self.burn_in_epochs = _checks.positive_int("burn_in_epochs", burn_in_epochs, minimum=0)
        self.every_epochs = _checks.positive_int("every_epochs", every_epochs)
        if epochs is not None:
            try:
                epochs = [_checks.positive_int("epochs", e) for e in epochs]
            except (TypeError, ValueError):
                raise ValueError(
                    "Argument `epochs` must be None or an iterable of ints >= 1. "
                    f"Received: epochs={epochs!r}"
                ) from None
            epochs = tuple(sorted(set(epochs)))
        self.epochs = epochs
        self.max_samples = _checks.optional_positive_int("max_samples", max_samples)
        if verbose not in (0, 1):
            raise ValueError(f"Argument `verbose` must be 0 or 1. Received: verbose={verbose!r}")
        self.verbose = verbose
        self._samples = load_samples(self.directory)

    # ------------------------------------------------------------------------- queries

    @property
    def samples(self):
        """The samples collected so far (this run's and earlier runs' in `directory`)."""
        return list(self._samples)

    def wants_epoch(self, epoch):
        """Whether the schedule asks for a sample after epoch `epoch` (counted from 1),
        regardless of `max_samples` and of the samples already taken."""
        if epoch <= self.burn_in_epochs:
            return False
        if self.epochs is not None:
            return epoch in self.epochs
        return (epoch - self.burn_in_epochs) % self.every_epochs == 0

    # ----------------------------------------------------------------------- callbacks

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        _guards.check_noise(optimizer)
        _guards.check_loss_reduction(self.model)
        _guards.check_num_examples(optimizer, _guards.steps_per_epoch(self.params))
        os.makedirs(self.directory, exist_ok=True)
        for name in os.listdir(self.directory):  # leftovers of a write cut short by a crash
            if name.startswith(_TEMP_PREFIX):
                os.remove(os.path.join(self.directory, name))
        manifest = _read_manifest(self.directory)
        if manifest is not None and manifest.get("samples"):
            self._check_same_run(manifest)
        self._samples = load_samples(self.directory)

    def _settings(self):
        """This run's identity, as JSON would store it."""
        optimizer = self.model.optimizer
        config = {
            key: value
            for key, value in optimizer.get_config().items()
            if not (key in _SETTABLE and (value is None or isinstance(value, (bool, int, float))))
            and key != "name"
        }
        settings = {
            "burn_in_epochs": self.burn_in_epochs,
            "every_epochs": self.every_epochs,
            "epochs": None if self.epochs is None else list(self.epochs),
            "optimizer": {"class_name": type(optimizer).__name__, "config": config},
        }
        return json.loads(json.dumps(settings, default=repr))

    def _check_same_run(self, manifest):
        if manifest.get("weight_shapes") != self._weight_shapes():
            raise ValueError(
                f"The directory {self.directory} holds posterior samples of a model with other "
                "weight shapes; use a new directory for this model."
            )
        stored = manifest.get("settings")
        if stored is None:  # a version 1 manifest: no settings recorded
            return
        current = self._settings()
        differing = [
            f"{key}: {stored.get(key)!r} there, {current[key]!r} now"
            for key in ("burn_in_epochs", "every_epochs", "epochs")
            if stored.get(key) != current[key]
        ]
        old, new = stored.get("optimizer", {}), current["optimizer"]
        if old.get("class_name") != new["class_name"]:
            differing.append(f"optimizer: {old.get('class_name')} there, {new['class_name']} now")
        old_config = old.get("config", {})
        for key in sorted(set(old_config) | set(new["config"])):
            if old_config.get(key) != new["config"].get(key):
                differing.append(
                    f"optimizer {key}: {old_config.get(key)!r} there, "
                    f"{new['config'].get(key)!r} now"
                )
        if differing:
            raise ValueError(
                f"The directory {self.directory} holds posterior samples of another run (taken "
                f"with other settings: {'; '.join(differing)}). Only the same run, resuming, "
                "continues in a directory: use a new directory for this run (or delete the old "
                "samples)."
            )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start_step = self._step()

    def on_epoch_end(self, epoch, logs=None):
        step = self._step()
        steps = step - getattr(self, "_epoch_start_step", 0)
        if steps <= 0:
            return  # no update in this epoch: nothing new to sample
        epoch = math.ceil(step / steps)  # counted from 1, over all `fit` calls
        if not self.wants_epoch(epoch):
            return
        if any(sample.epoch == epoch for sample in self._samples):
            return  # taken before a restart
        if self.max_samples is not None and len(self._samples) >= self.max_samples:
            return
        self._write_sample(epoch)

    # ---------------------------------------------------------------------------- disk

    def _step(self):
        return int(ops.convert_to_numpy(self.model.optimizer.iterations))

    def _weight_shapes(self):
        return [list(w.shape) for w in self.model.weights]

    def _write_sample(self, epoch):
        name = _file_name(epoch)
        final = os.path.join(self.directory, name)
        temporary = os.path.join(self.directory, _TEMP_PREFIX + name)
        _weights_io.save_model_weights(self.model, temporary)
        _fsync(temporary)
        os.replace(temporary, final)
        step = self._step()
        samples = sorted(self._samples + [Sample(epoch, step, final)], key=lambda s: s.epoch)
        self._write_manifest(samples)
        self._samples = samples
        if self.verbose:
            print(f"\nEpoch {epoch}: posterior sample {len(samples)} written to {final}")

    def _write_manifest(self, samples):
        manifest = {
            "format": _FORMAT,
            "version": _VERSION,
            "weight_shapes": self._weight_shapes(),
            "settings": self._settings(),
            "samples": [
                {"epoch": s.epoch, "step": s.step, "file": os.path.basename(s.path)}
                for s in samples
            ],
        }
        final = os.path.join(self.directory, MANIFEST)
        temporary = os.path.join(self.directory, _TEMP_PREFIX + MANIFEST)
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, final)
        _fsync(self.directory)
