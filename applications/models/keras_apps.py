"""The ImageNet ResNets and DenseNets that Keras already provides (`keras.applications`),
built without pretrained weights: :func:`keras_application`.

Registers resnet50, resnet101, resnet152, densenet121, densenet169 and densenet201.
"""

import keras

from applications.models._layers import Preset, ensure_recursion_limit

KERAS_APPLICATIONS = {
    "resnet50": "ResNet50",
    "resnet101": "ResNet101",
    "resnet152": "ResNet152",
    "densenet121": "DenseNet121",
    "densenet169": "DenseNet169",
    "densenet201": "DenseNet201",
}

#: More nodes than the largest graph here has (DenseNet201: about 710 layers), for the
#: recursion limit (see `applications.models._layers`).
_GRAPH_NODES = 2000


def keras_application(
    architecture,
    input_shape=(224, 224, 3),
    classes=1000,
    weights=None,
    classifier_activation="softmax",
    **kwargs,
):
    """An ImageNet model from `keras.applications`, by default untrained.

    Args:
        architecture: one of the keys of `KERAS_APPLICATIONS`, e.g.
            `"resnet50"`.
        input_shape: shape of one input image; Keras requires at least
            32x32 pixels.
        classes: number of classes.
        weights: `None` (random initialization) or what
            `keras.applications` accepts (`"imagenet"` needs 1000 classes
            and downloads the weights).
        classifier_activation: activation of the classifier.
        **kwargs: passed to the `keras.applications` constructor.

    Returns:
        A `keras.Model`.
    """
    if architecture not in KERAS_APPLICATIONS:
        raise ValueError(
            f"`architecture` must be one of {sorted(KERAS_APPLICATIONS)}; "
            f"received architecture={architecture!r}"
        )
    constructor = getattr(keras.applications, KERAS_APPLICATIONS[architecture])
    ensure_recursion_limit(_GRAPH_NODES)
    return constructor(
        weights=weights,
        input_shape=tuple(input_shape),
        classes=classes,
        classifier_activation=classifier_activation,
        **kwargs,
    )


# `keras.applications` names the model itself: the registry passes no `name`.
PRESETS = {
    architecture: Preset(keras_application, {"architecture": architecture}, names_model=False)
    for architecture in KERAS_APPLICATIONS
}
