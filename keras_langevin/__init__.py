"""Langevin and Layer Langevin optimizers for Keras 3.

Preconditioned Langevin optimizers (P. Bras, "Langevin algorithms for very deep Neural Networks
with application to image classification", arXiv 2212.14718): the update of a Keras optimizer
plus `sigma * sqrt(learning_rate * P) * xi`, `P` the optimizer's own preconditioner and `xi`
standard Gaussian noise, optionally only on the layers nearest the input.
"""

from keras_langevin import callbacks, sampling, schedules
from keras_langevin.adadelta import LAdadelta
from keras_langevin.adam import LAdam
from keras_langevin.base import LangevinMixin, langevin_optimizer
from keras_langevin.layer import LayerLAdadelta, LayerLAdam, LayerLRMSprop, LayerLSGD
from keras_langevin.rmsprop import LRMSprop
from keras_langevin.sgd import LSGD

__version__ = "0.1.0"

__all__ = [
    "LSGD",
    "LAdadelta",
    "LAdam",
    "LRMSprop",
    "LangevinMixin",
    "LayerLAdadelta",
    "LayerLAdam",
    "LayerLRMSprop",
    "LayerLSGD",
    "callbacks",
    "langevin_optimizer",
    "sampling",
    "schedules",
]
