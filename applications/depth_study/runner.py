"""Running the study's runs: data (with the validation split), one compiled trainer per
configuration reused across seeds, the tuning runs and the paired runs.

The pieces come from the run engine (`applications.engine`: data, model, initial weights,
the training stream, per-epoch records); the optimizer comes from `applications.settings`
(the one owner of the defaults) or, for the controls, `controls.py`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import warnings

import keras
import numpy as np
from keras import ops

from applications import engine
from applications import settings as settings_lib
from applications.depth_study import controls
from applications.depth_study.plan import format_sigma, keras_name, study_kind
from applications.depth_study.state import CSV_FIELDS, RUNS_CSV


def weights_fingerprint(weights):
    """Short hash of a list of arrays (the model's weights, non-trainable ones included)."""
    digest = hashlib.sha1()
    for array in weights:
        array = np.ascontiguousarray(array)
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


class Fingerprint(keras.callbacks.Callback):
    """Hashes the weights training starts from."""

    def on_train_begin(self, logs=None):
        self.value = weights_fingerprint(self.model.get_weights())


# ------------------------------------------------------------------------------ data


def validation_split(config, fraction):
    """`config`'s dataset with the last `fraction` of its training examples (after
    `train_take`) as the evaluation split ("test" of the result) and the others as the
    training split. The test set is never read."""
    from applications import data
    from applications.data import pipeline

    full = engine.load_data(config)
    source = data.SOURCES[config.dataset].load(config.data_dir, False)
    train = source.train if config.train_take is None else source.train.take(config.train_take)
    held_out = max(1, round(fraction * full.train_size))
    split = source._replace(
        train=train.take(full.train_size - held_out), test=train.skip(full.train_size - held_out)
    )
    options = pipeline.Options(
        name=full.name,
        batch_size=full.batch_size,
        hw=tuple(full.input_shape[:2]),
        channels=full.input_shape[2],
        stages=full.augment,
        one_hot=full.one_hot,
        flip=full.flip,
        pad=full.pad,
        seed=config.seed,
        shuffle_buffer=None,
        cache=True,
        mean=full.mean,
        std=full.std,
        augment_options=None,
    )
    return pipeline.build(split, options)


@dataclasses.dataclass
class Job:
    """One configuration: study name, engine config, resolved optimizer settings."""

    name: str
    config: engine.RunConfig
    settings: object
    validation: float | None = None  # fraction held out for tuning; None: the test split


def optimizer_settings(config, epochs):
    """The resolved settings of `config`'s (Keras) optimizer."""
    given = {key: getattr(config, key, None) for key in engine.RunConfig.OPTIMIZER_FIELDS}
    return settings_lib.resolve(config.optimizer, epochs=epochs, **given)


class StudyTrainer:
    """A job's data, model and optimizer, compiled once, for runs of several seeds."""

    def __init__(self, job, initial_weights):
        self.job = job
        self.dataset = self._load(job.config)
        model = self.model = engine.build_model(job.config, self.dataset)
        model.load_weights(initial_weights)
        self.optimizer = controls.build_optimizer(
            job.name, job.settings, self.dataset.steps_per_epoch, job.config.seed
        )
        if hasattr(self.optimizer, "set_model"):
            self.optimizer.set_model(model)
        self.optimizer.build(model.trainable_variables)
        model.compile(optimizer=self.optimizer, loss=self.dataset.loss, metrics=["accuracy"])
        self._fresh = [np.array(ops.convert_to_numpy(v)) for v in self.optimizer.variables]

    def _load(self, config):
        if self.job.validation is None:
            return engine.load_data(config)
        return validation_split(config, self.job.validation)

    def reset(self, seed, initial_weights):
        """Weights from `initial_weights`, fresh optimizer state, noise and data from `seed`."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            self.model.load_weights(initial_weights)
        for variable, value in zip(self.optimizer.variables, self._fresh):
            variable.assign(value)
        engine.reseed(self.optimizer, seed)
        keras.utils.set_random_seed(seed)
        self.job.config = self.job.config.replace(seed=seed)
        self.dataset = self._load(self.job.config)

    def fit(self, callbacks):
        return self.model.fit(
            engine.training_stream(self.dataset),
            epochs=self.job.config.epochs,
            steps_per_epoch=self.dataset.steps_per_epoch,
            validation_data=self.dataset.test,
            callbacks=callbacks,
            verbose=0,
            shuffle=False,
        )


def run_specs(output, family, job, specs, initial, record, norms=None, csv_rows=True):
    """Runs `specs` (one job, several seeds) through one compiled trainer.

    `norms[(depth, seed)]` holds the Layer Langevin norms a rescaled control follows.
    `record(spec, rows, extra, seconds)` returns False to stop (--stop-after).
    """
    with engine.precision(job.config.mixed_precision):
        trainer = StudyTrainer(job, initial[specs[0].seed])
        try:
            for spec in specs:
                started = time.perf_counter()
                trainer.reset(spec.seed, initial[spec.seed])
                fingerprint = Fingerprint()
                callbacks = [fingerprint]
                kind = study_kind(job.name)[1]
                if kind == "layer":
                    callbacks.append(controls.NormRecorder())
                elif kind == "rescaled":
                    callbacks.append(controls.NormRescaler(norms[(spec.depth, spec.seed)]))
                constants = {"family": family, **dataclasses.asdict(spec)}
                constants["lr"] = job.settings.lr
                constants.setdefault("sigma", format_sigma(job.settings.sigma or 0.0))
                path = os.path.join(output, RUNS_CSV if csv_rows else "tuning.csv")
                records = engine.EpochRecords(path, CSV_FIELDS, constants=constants)
                trainer.fit([*callbacks, records])
                extra = {"initial_weights": fingerprint.value, "lr": job.settings.lr}
                if kind == "layer":
                    extra["norms"] = callbacks[1].norms
                elif kind == "rescaled":
                    extra["rescale_factors"] = callbacks[1].factors
                if not record(spec, records.rows, extra, time.perf_counter() - started):
                    return False
        finally:
            del trainer
            keras.backend.clear_session()
    return True


def check_jobs(jobs):
    """Raises ValueError (naming the setting) if a job cannot run on its model: builds each
    distinct model once and each optimizer on it, from a clean session, before any file is
    written."""
    from applications import data

    built = {}
    try:
        for job in jobs:
            config = job.config
            key = (config.model, config.model_options, config.dataset, config.image_size)
            if key not in built:
                keras.backend.clear_session()
                dataset = engine.load_data(config)
                built[key] = engine.build_model(config, dataset)
            model = built[key]
            optimizer = controls.build_optimizer(job.name, job.settings, 1, 0)
            if hasattr(optimizer, "set_model"):
                optimizer.set_model(model)
            optimizer.build(model.trainable_variables)
    except (TypeError, data.DatasetNotAvailableError) as error:
        raise ValueError(str(error)) from error
    finally:
        built.clear()
        keras.backend.clear_session()


def job_for(args, run_config, name, depth, lr, sigma=None, validation=None):
    """The job of study name `name` at `depth` with learning rate `lr`."""
    twin = keras_name(name)
    config = run_config(args, depth, twin, sigma, lr=lr)
    return Job(name, config, optimizer_settings(config, args.epochs), validation)
