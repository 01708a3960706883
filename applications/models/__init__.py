"""Model builders for the Langevin experiments, one family per module, and their registry.

Every builder returns a Keras 3 functional model that ends with a Dense
classifier of `classes` units (softmax by default). Only `keras.layers` are
used, so the models run on any Keras backend.

Families (each one a function whose depth and width are arguments):

- `cifar_resnet` (`cifar_resnets.py`): the CIFAR ResNet of He et al. (2016),
  6n+2 layers of basic blocks with 16/32/64 filters.
- `preact_resnet` (`preact_resnets.py`): the pre-activation bottleneck ResNet
  of He et al. (2016b), 9n+2 layers.
- `densenet` (`densenets.py`): the CIFAR DenseNet of Huang et al. (2017), with
  or without bottleneck layers and compression (DenseNet-BC).
- `mlp` and `plain_cnn` (`plain.py`): a plain fully connected network and a
  plain convolutional network of any depth.
- `keras_application` (`keras_apps.py`): the ImageNet ResNets and DenseNets
  that Keras already provides (`keras.applications`), built without
  pretrained weights.

`paper.py` holds the configurations of P. Bras (2022), and `_layers.py` what
the families share.

`build_model(name, ...)` picks a family and its settings from a name: the names
in `MODEL_NAMES`, or the patterns `mlp-<depth>`, `cnn-<depth>`, `resnet-<depth>`,
`resnet-nobn-<depth>` (no batch normalization) and `densenet-<depth>`.

Kernel initialisers: `mlp`, `plain_cnn` and `cifar_resnet` take `init="he"` (default, the
ReLU networks' choice), `"glorot"` or `"orthogonal"` (`INITS`, `kernel_initializer_for`). Each module
of `_REGISTRANTS` declares its names in `PRESETS` (name -> `Preset`) and may
declare name patterns in `PATTERNS`; adding a family is one module and one
entry there.

Any depth builds in a fresh process (resnet1202, preact-resnet1001,
densenet-bc-250 included): Keras maps a functional graph recursively, one
Python frame per node, and these graphs have more nodes than Python's default
recursion limit of 1000. Every builder raises the limit to fit its graph before
building, never lowers it, and leaves it raised for later loading or cloning
(see `_layers.py`).
"""

from applications.models import (
    cifar_resnets,
    densenets,
    keras_apps,
    paper,
    plain,
    preact_resnets,
)
from applications.models._layers import (
    BN_EPSILON,
    INITS,
    Preset,
    count_graph_nodes,
    ensure_recursion_limit,
    functional_model,
    kernel_initializer_for,
)
from applications.models.cifar_resnets import basic_block, cifar_resnet, zero_pad_shortcut
from applications.models.densenets import dense_layer, densenet, transition_layer
from applications.models.keras_apps import KERAS_APPLICATIONS, keras_application
from applications.models.plain import mlp, plain_cnn
from applications.models.preact_resnets import preact_bottleneck_block, preact_resnet

#: The modules that register names, in the order of `MODEL_NAMES`.
_REGISTRANTS = (cifar_resnets, preact_resnets, densenets, keras_apps, paper, plain)


def _collect(attribute):
    collected = {}
    for module in _REGISTRANTS:
        for key, value in getattr(module, attribute, {}).items():
            if key in collected:
                raise ValueError(f"{module.__name__} registers {key!r} a second time")
            collected[key] = value
    return collected


#: Fixed name -> `Preset` (family function and the arguments the name fixes).
PRESETS = _collect("PRESETS")
#: Pattern description (e.g. "mlp-<depth>") -> (compiled pattern, family function).
PATTERNS = _collect("PATTERNS")

MODEL_NAMES = tuple(PRESETS)


def _preset(name):
    """The `Preset` of a fixed name or of a name matching a pattern."""
    if isinstance(name, str):
        if name in PRESETS:
            return PRESETS[name]
        for pattern, builder in PATTERNS.values():
            match = pattern.fullmatch(name)
            if match:
                return Preset(builder, {"depth": int(match.group(1))})
    raise ValueError(
        f"Unknown model name={name!r}; expected one of {', '.join(MODEL_NAMES)}, "
        f"or {' / '.join(PATTERNS)}"
    )


def is_model_name(name):
    """Whether `build_model` knows `name` (a fixed name or one matching a pattern)."""
    try:
        _preset(name)
    except ValueError:
        return False
    return True


def build_model(name, input_shape=(32, 32, 3), classes=10, **kwargs):
    """Build a model by name.

    Args:
        name: one of `MODEL_NAMES`, or `mlp-<depth>` / `cnn-<depth>` for a
            plain network of `depth` weighted layers (e.g. `"mlp-40"`).
        input_shape: shape of one input image.
        classes: number of classes.
        **kwargs: further arguments of the family function (for instance
            `width=32` for `mlp-10`, `shortcut="projection"` for `resnet20`);
            they override the ones the name fixes.

    Returns:
        A `keras.Model` named after `name`.

    Raises:
        ValueError: for an unknown name or invalid arguments.
    """
    preset = _preset(name)
    arguments = {**preset.arguments, **kwargs}
    if preset.names_model:
        arguments.setdefault("name", name)
    return preset.builder(input_shape=input_shape, classes=classes, **arguments)


__all__ = [
    "BN_EPSILON",
    "INITS",
    "KERAS_APPLICATIONS",
    "MODEL_NAMES",
    "PATTERNS",
    "PRESETS",
    "Preset",
    "basic_block",
    "build_model",
    "cifar_resnet",
    "count_graph_nodes",
    "dense_layer",
    "densenet",
    "ensure_recursion_limit",
    "functional_model",
    "is_model_name",
    "keras_application",
    "kernel_initializer_for",
    "mlp",
    "plain_cnn",
    "preact_bottleneck_block",
    "preact_resnet",
    "transition_layer",
    "zero_pad_shortcut",
]
