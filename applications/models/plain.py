"""Plain networks (no shortcuts) of any depth, for depth studies.

:func:`mlp`, a fully connected network, and :func:`plain_cnn`, a convolutional one.
Registers the name patterns `mlp-<depth>` and `cnn-<depth>`.
"""

import re

from keras import layers, regularizers

from applications.models._layers import (
    BN_EPSILON,
    _channel_axis,
    _check_positive_int,
    _classifier_head,
    functional_model,
    resolve_kernel_initializer,
)


def mlp(
    input_shape=(32, 32, 3),
    classes=10,
    depth=10,
    width=64,
    activation="relu",
    kernel_initializer=None,
    classifier_activation="softmax",
    name=None,
    l2=None,
    init="he",
):
    """Plain fully connected network: Flatten, `depth - 1` hidden Dense
    layers, and the classifier (so `depth` Dense layers in all).

    Args:
        input_shape: shape of one input, flattened first.
        classes: number of classes.
        depth: number of Dense layers, the classifier included (>= 1).
        width: units of each hidden layer.
        activation: activation of the hidden layers.
        kernel_initializer: initializer of the hidden kernels; None (default): the one
            `init` names. Given, it wins over `init`.
        classifier_activation: activation of the classifier.
        name: model name; `mlp-<depth>` by default.
        l2: optional coefficient `lam > 0` of a `keras.regularizers.L2` on every
            Dense kernel (the classifier's included, not the biases). With a
            loss averaged over `N` examples it is a Gaussian prior of variance
            `1 / (2 N lam)` on each kernel weight (docs/guide/posterior_sampling.md).
        init: the hidden kernels' initialiser, "he" (default), "glorot" or "orthogonal"
            (`applications.models.kernel_initializer_for`). The classifier keeps Keras's
            default (Glorot-uniform) whatever `init`.

    Returns:
        A `keras.Model`.
    """
    kernel_initializer = resolve_kernel_initializer(init, kernel_initializer, activation)
    _check_positive_int("depth", depth)
    _check_positive_int("width", width)
    _check_positive_int("classes", classes)
    if l2 is not None and (isinstance(l2, bool) or not isinstance(l2, (int, float)) or l2 <= 0):
        raise ValueError(f"Argument `l2` must be None or a number > 0. Received: l2={l2!r}")
    regularizer = None if l2 is None else regularizers.L2(float(l2))
    if name is None:
        name = f"mlp-{depth}"
    inputs = layers.Input(shape=input_shape, name="inputs")
    x = layers.Flatten(name="flatten")(inputs)
    for layer in range(depth - 1):
        x = layers.Dense(
            width,
            activation=activation,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=regularizer,
            name=f"dense{layer + 1}",
        )(x)
    outputs = layers.Dense(
        classes,
        activation=classifier_activation,
        kernel_regularizer=regularizer,
        name="predictions",
    )(x)
    return functional_model(inputs, outputs, name=name)


def _downsample_indices(convolutions):
    """Indices of the stride-2 convolutions: the first of the second and third stages."""
    # First layer of stage s (s = 1, 2) is index ceil(s * convolutions / 3).
    downsample_at = {-(-s * convolutions // 3) for s in (1, 2)}
    return {index for index in downsample_at if 0 < index < convolutions}


def _activation_label(activation):
    return activation if isinstance(activation, str) else "activation"


def plain_cnn(
    input_shape=(32, 32, 3),
    classes=10,
    depth=10,
    width=16,
    batch_norm=False,
    double_width_on_downsample=True,
    activation="relu",
    kernel_initializer=None,
    classifier_activation="softmax",
    name=None,
    init="he",
):
    """Plain convolutional network (no shortcuts) of any depth.

    `depth - 1` 3x3 convolutions split into three stages of (nearly) equal
    length; the first convolution of the second and third stages has stride 2.
    Then global average pooling and the classifier, so `depth` weighted layers
    in all. As in the plain baselines of He et al. (2016), the number of
    filters doubles at each downsampling unless
    `double_width_on_downsample=False`.

    Args:
        input_shape: shape of one input image, e.g. `(16, 16, 1)`.
        classes: number of classes.
        depth: number of weighted layers, the classifier included (>= 1;
            depth 1 is global average pooling and the classifier).
        width: filters of the first stage.
        batch_norm: whether each convolution is followed by batch
            normalization (then the convolutions have no bias).
        double_width_on_downsample: whether each downsampling doubles the
            number of filters.
        activation: activation after each convolution.
        kernel_initializer: initializer of the convolution kernels; None (default): the
            one `init` names. Given, it wins over `init`.
        classifier_activation: activation of the classifier.
        name: model name; `cnn-<depth>` by default.
        init: the convolution kernels' initialiser, "he" (default), "glorot" or
            "orthogonal" (`applications.models.kernel_initializer_for`).

    Returns:
        A `keras.Model`.
    """
    kernel_initializer = resolve_kernel_initializer(init, kernel_initializer, activation)
    _check_positive_int("depth", depth)
    _check_positive_int("width", width)
    _check_positive_int("classes", classes)
    if name is None:
        name = f"cnn-{depth}"
    downsample_at = _downsample_indices(depth - 1)
    label = _activation_label(activation)

    inputs = layers.Input(shape=input_shape, name="image")
    x = inputs
    filters = width
    for index in range(depth - 1):
        downsample = index in downsample_at
        if downsample and double_width_on_downsample:
            filters *= 2
        x = layers.Conv2D(
            filters,
            3,
            strides=2 if downsample else 1,
            padding="same",
            use_bias=not batch_norm,
            kernel_initializer=kernel_initializer,
            name=f"conv{index + 1}",
        )(x)
        if batch_norm:
            x = layers.BatchNormalization(
                axis=_channel_axis(), epsilon=BN_EPSILON, name=f"conv{index + 1}_bn"
            )(x)
        x = layers.Activation(activation, name=f"conv{index + 1}_{label}")(x)
    outputs = _classifier_head(x, classes, classifier_activation)
    return functional_model(inputs, outputs, name=name)


PRESETS = {}

#: Name patterns: a full match gives the family function; the group is the depth.
PATTERNS = {
    "mlp-<depth>": (re.compile(r"mlp-(\d+)"), mlp),
    "cnn-<depth>": (re.compile(r"cnn-(\d+)"), plain_cnn),
}
