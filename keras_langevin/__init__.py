"""Langevin and Layer Langevin optimizers for Keras 3.

Preconditioned Langevin optimizers (P. Bras, "Langevin algorithms for very deep Neural Networks
with application to image classification", arXiv 2212.14718): the update of a Keras optimizer
plus `sigma * sqrt(learning_rate * P) * xi`, `P` the optimizer's own preconditioner and `xi`
standard Gaussian noise, optionally only on the layers nearest the input.
"""

from keras_langevin import callbacks, sampling, schedules
from keras_langevin.adadelta import LAdadelta
from keras_langevin.adam import LAdam
from keras_langevin.adamw import LAdamW
from keras_langevin.base import LangevinMixin, langevin_optimizer
from keras_langevin.layer import (
    LayerLAdadelta,
    LayerLAdam,
    LayerLAdamW,
    LayerLNadam,
    LayerLRMSprop,
    LayerLSGD,
)
from keras_langevin.nadam import LNadam
from keras_langevin.rmsprop import LRMSprop
from keras_langevin.sgd import LSGD
from keras_langevin.sghmc import LSGHMC

__version__ = "0.1.0"

__all__ = [
    "LSGD",
    "LSGHMC",
    "LAdadelta",
    "LAdam",
    "LAdamW",
    "LNadam",
    "LRMSprop",
    "LangevinMixin",
    "LayerLAdadelta",
    "LayerLAdam",
    "LayerLAdamW",
    "LayerLNadam",
    "LayerLRMSprop",
    "LayerLSGD",
    "callbacks",
    "langevin_optimizer",
    "sampling",
    "schedules",
]
