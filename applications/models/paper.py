"""Configurations of the experiments of P. Bras (2022), "Langevin algorithms for very deep
Neural Networks with application to image classification", arXiv:2212.14718.

Presets only, of the families of the other modules: paper-resnet, paper-densenet and
paper-mlp.
"""

from applications.models._layers import Preset
from applications.models.cifar_resnets import cifar_resnet
from applications.models.densenets import densenet
from applications.models.plain import mlp

PRESETS = {
    "paper-resnet": Preset(cifar_resnet, {"blocks_per_stage": (6, 6, 6), "base_filters": 8}),
    "paper-densenet": Preset(
        densenet, {"blocks": (6, 6, 6), "growth_rate": 5, "initial_channels": 16}
    ),
    "paper-mlp": Preset(mlp, {"depth": 11, "width": 64}),
}
