"""Building a run: its data, model and optimizer, compiled once (`Trainer`).

* `Trainer`: a config's data, model and optimizer, compiled once. `Trainer.reset` puts back
  given initial weights, a fresh optimizer state and a noise seed, so one compiled model serves
  many runs (the depth study runs every seed through it);
* `save_initial_weights`: the one mechanism for "the same initial weights per seed": the model
  built from a clean Keras session after `keras.utils.set_random_seed(seed)`, saved once to a
  weights file that every run of that seed loads;
* `check_configs`: every model and optimizer of a script built once before anything is written;
* `training_stream`: the seeded stream of batches that a resumed run continues exactly.
"""

import contextlib
import dataclasses
import os
import warnings

import keras
import numpy as np
from keras import ops

import keras_langevin as kl
from applications import _keras_patches, files
from applications.run_config import UsageError


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
        # are built in its scope, it places the data, `fit` runs under it; `config.batch_size`
        # is the global batch.
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
            _keras_patches.build_compiled_state(self.model, self.dataset.train.element_spec)
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
        reseed(self.model.optimizer, seed)
        keras.utils.set_random_seed(seed)
        # A new pipeline: a second pass over the old one would be shuffled differently.
        self.config = self.config.replace(seed=seed)
        self.dataset = load_data(self.config)

    def fit(self, callbacks, start_epoch=0, verbose=0):
        """`model.fit` up to `config.epochs` on the seeded training stream, from `start_epoch`."""
        # Placed as this distribution's `fit` reads them (`Distribution.place`).
        train = self.distribution.place(training_stream(self.dataset, start_epoch))
        test = self.distribution.place(self.dataset.test)
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


def reseed(optimizer, seed):
    """Gives a Langevin optimizer (or one wrapped for mixed precision) the noise seed `seed`;
    nothing for a Keras optimizer."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's
    if isinstance(inner, kl.LangevinMixin):
        inner.reseed(seed)


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
