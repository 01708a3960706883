"""Shared test helpers: small problems with externally given gradients."""

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
