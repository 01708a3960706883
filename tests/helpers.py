"""Shared test helpers: small problems with externally given gradients, and small models
and data trained with `fit`."""

import keras
import numpy as np
from keras import ops

import keras_langevin as kl

SHAPES = [(7, 5), (5,), (3, 3, 2, 4), (11,)]

BASES = {
    kl.LSGD: keras.optimizers.SGD,
    kl.LAdam: keras.optimizers.Adam,
    kl.LRMSprop: keras.optimizers.RMSprop,
    kl.LAdadelta: keras.optimizers.Adadelta,
    kl.LAdamW: keras.optimizers.AdamW,
    kl.LNadam: keras.optimizers.Nadam,
    kl.LSGHMC: keras.optimizers.SGD,
}


def make_variables(seed=0, shapes=SHAPES, dtype="float32"):
    rng = np.random.default_rng(seed)
    return [
        keras.Variable(rng.standard_normal(s).astype(dtype), name=f"v{i}")
        for i, s in enumerate(shapes)
    ]


def gradient_sequence(steps, seed=1, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype("float32") for s in shapes] for _ in range(steps)]


def values(variables):
    return [np.array(ops.convert_to_numpy(v), copy=True) for v in variables]


def run(optimizer, grads_per_step, seed=0, shapes=SHAPES, curvature=None):
    """Applies the gradients step by step; returns the trajectory of variable values.

    With `curvature` (a list of arrays like the variables), the gradient at each step is
    `curvature * theta + g`: a random quadratic problem whose gradients depend on the weights.
    """
    variables = make_variables(seed, shapes)
    trajectory = [values(variables)]
    for grads in grads_per_step:
        if curvature is not None:
            grads = [h * v + g for h, v, g in zip(curvature, trajectory[-1], grads)]
        optimizer.apply([ops.convert_to_tensor(g) for g in grads], variables)
        trajectory.append(values(variables))
    return trajectory, variables


# ------------------------------------------------------------- small models trained with fit


def classification_data(n=64, features=8, classes=3, seed=0):
    """Standard normal features with uniformly random labels: something to fit, not to learn."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, features)).astype("float32"), rng.integers(0, classes, n)


def probe_model(features=8, classes=3):
    """A classifier whose 'probe' layer gets a zero gradient: its increments are the noise alone."""
    inputs = keras.Input((features,))
    probe = keras.layers.Dense(4, name="probe")(inputs)
    zeroed = keras.layers.Lambda(lambda t: t * 0.0, name="zero")(probe)
    hidden = keras.layers.Dense(6, activation="relu", name="hidden")(inputs)
    merged = keras.layers.Concatenate()([hidden, zeroed])
    outputs = keras.layers.Dense(classes, activation="softmax", name="out")(merged)
    return keras.Model(inputs, outputs)


class ProbeRecorder(keras.callbacks.Callback):
    """The 'probe' layer's kernel at the start of training and after every batch."""

    def __init__(self):
        super().__init__()
        self.values = []

    def _record(self):
        kernel = self.model.get_layer("probe").kernel
        self.values.append(np.array(ops.convert_to_numpy(kernel), copy=True))

    def on_train_begin(self, logs=None):
        self._record()

    def on_train_batch_end(self, batch, logs=None):
        self._record()

    def increments(self):
        """The kernel's change at each step, stacked: shape (steps, *kernel.shape)."""
        return np.diff(np.stack(self.values), axis=0)


def dense_classifier(
    optimizer, hidden=(16,), features=8, classes=3, batch_norm=False, **compile_kwargs
):
    """A compiled ReLU MLP built from random seed 0, so equal calls give equal initial weights.

    `hidden` lists the widths of the hidden Dense layers (named d1, d2, ...); `batch_norm` puts a
    BatchNormalization (named bn) after the first. The loss is sparse categorical cross-entropy.
    """
    keras.utils.set_random_seed(0)
    layers = [keras.Input((features,))]
    for i, width in enumerate(hidden):
        layers.append(keras.layers.Dense(width, activation="relu", name=f"d{i + 1}"))
        if batch_norm and i == 0:
            layers.append(keras.layers.BatchNormalization(name="bn"))
    layers.append(keras.layers.Dense(classes, activation="softmax", name="out"))
    model = keras.Sequential(layers)
    model.compile(optimizer, "sparse_categorical_crossentropy", **compile_kwargs)
    return model
