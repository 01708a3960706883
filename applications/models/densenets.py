"""The CIFAR DenseNet of Huang et al. (2017), "Densely Connected Convolutional Networks".

With or without bottleneck layers and compression (DenseNet-BC): :func:`densenet`, its
:func:`dense_layer` and :func:`transition_layer`. Registers densenet40, densenet100,
densenet-bc-100 and densenet-bc-250.
"""

import re

from keras import layers

from applications.models._layers import (
    Preset,
    _bn_relu,
    _channel_axis,
    _check_blocks,
    _check_positive_int,
    _classifier_head,
    _stem_conv,
    functional_model,
)


def dense_layer(x, growth_rate, bottleneck=False, kernel_initializer="he_normal", name=None):
    """One layer of a dense block: its output is concatenated to its input.

    BN-ReLU-conv3x3(growth_rate), preceded by BN-ReLU-conv1x1(4 * growth_rate)
    when `bottleneck` is true.

    Args:
        x: input tensor.
        growth_rate: number of channels the layer adds.
        bottleneck: whether to reduce the input to `4 * growth_rate` channels
            with a 1x1 convolution first.
        kernel_initializer: initializer of the convolution kernels.
        name: prefix of the layer names.

    Returns:
        Output tensor: the input with `growth_rate` more channels.
    """
    convolution = {"use_bias": False, "kernel_initializer": kernel_initializer}
    y = x
    if bottleneck:
        y = _bn_relu(y, f"{name}_bottleneck_bn", f"{name}_bottleneck_relu")
        y = layers.Conv2D(4 * growth_rate, 1, name=f"{name}_bottleneck_conv", **convolution)(y)
    y = _bn_relu(y, f"{name}_bn", f"{name}_relu")
    y = layers.Conv2D(growth_rate, 3, padding="same", name=f"{name}_conv", **convolution)(y)
    return layers.Concatenate(axis=_channel_axis(), name=f"{name}_concat")([x, y])


def transition_layer(x, compression=1.0, kernel_initializer="he_normal", name=None):
    """Transition between two dense blocks.

    BN-ReLU-conv1x1 keeping `floor(compression * channels)` channels, then
    2x2 average pooling (sizes are rounded up, so odd and tiny inputs work).

    Args:
        x: input tensor.
        compression: fraction of the channels to keep, in (0, 1].
        kernel_initializer: initializer of the convolution kernels.
        name: prefix of the layer names.

    Returns:
        Output tensor for the transition.
    """
    channels = max(1, int(x.shape[_channel_axis()] * compression))
    x = _bn_relu(x, f"{name}_bn", f"{name}_relu")
    x = layers.Conv2D(
        channels, 1, use_bias=False, kernel_initializer=kernel_initializer, name=f"{name}_conv"
    )(x)
    return layers.AveragePooling2D(2, strides=2, padding="same", name=f"{name}_pool")(x)


def _dense_blocks(depth, blocks, bottleneck):
    """Dense layers per block and the depth they give, from `depth` or `blocks`.

    Each dense layer holds 1 weighted layer (2 with `bottleneck`); the stem, the
    transitions and the classifier add `len(blocks) + 1`.
    """
    layers_per_block = 2 if bottleneck else 1
    if blocks is not None:
        blocks = _check_blocks("blocks", blocks)
        implied_depth = layers_per_block * sum(blocks) + len(blocks) + 1
        if depth is not None and depth != implied_depth:
            raise ValueError(
                f"`depth`={depth!r} disagrees with blocks={blocks!r}, which gives a "
                f"DenseNet of depth {implied_depth}; pass only one of them"
            )
        return blocks, implied_depth
    if depth is None:
        depth = 40
    per_depth = 3 * layers_per_block
    if (
        isinstance(depth, bool)
        or not isinstance(depth, int)
        or depth < per_depth + 4
        or (depth - 4) % per_depth != 0
    ):
        raise ValueError(
            f"A DenseNet {'with' if bottleneck else 'without'} bottleneck layers needs "
            f"`depth` of the form {per_depth}n+4 with n >= 1; received depth={depth!r}"
        )
    return ((depth - 4) // per_depth,) * 3, depth


def densenet(
    input_shape=(32, 32, 3),
    classes=10,
    depth=None,
    blocks=None,
    growth_rate=12,
    initial_channels=None,
    bottleneck=False,
    compression=1.0,
    kernel_initializer="he_normal",
    classifier_activation="softmax",
    name=None,
):
    """CIFAR DenseNet of Huang et al. (2017), "Densely Connected
    Convolutional Networks".

    A 3x3 stem convolution with `initial_channels` filters, then dense blocks
    separated by transition layers, a final BN-ReLU, global average pooling
    and the classifier. With `bottleneck=False` each dense layer is one 3x3
    convolution and 3 blocks of `n` layers give depth `3n+4`; with
    `bottleneck=True` each dense layer has a 1x1 and a 3x3 convolution and
    the depth is `6n+4`. DenseNet-BC is `bottleneck=True, compression=0.5`.

    Args:
        input_shape: shape of one input image, e.g. `(32, 32, 3)`.
        classes: number of classes.
        depth: number of weighted layers (`3n+4`, or `6n+4` with bottleneck
            layers), shared equally by 3 dense blocks; 40 if neither `depth`
            nor `blocks` is given.
        blocks: number of dense layers in each dense block, e.g. `(6, 6, 6)`;
            any number of blocks is allowed. Overrides `depth`.
        growth_rate: number of channels each dense layer adds (k).
        initial_channels: filters of the stem convolution; by default
            `2 * growth_rate` with bottleneck layers and 16 without.
        bottleneck: whether dense layers start with a 1x1 convolution to
            `4 * growth_rate` channels.
        compression: fraction of the channels that transitions keep, in (0, 1].
        kernel_initializer: initializer of the convolution kernels.
        classifier_activation: activation of the classifier.
        name: model name; `densenet<depth>` or `densenet-bc-<depth>` by default.

    Returns:
        A `keras.Model`.
    """
    blocks, implied_depth = _dense_blocks(depth, blocks, bottleneck)
    _check_positive_int("growth_rate", growth_rate)
    _check_positive_int("classes", classes)
    if initial_channels is None:
        initial_channels = 2 * growth_rate if bottleneck else 16
    _check_positive_int("initial_channels", initial_channels)
    if not isinstance(compression, (int, float)) or not 0.0 < compression <= 1.0:
        raise ValueError(f"`compression` must be in (0, 1]; received compression={compression!r}")
    if name is None:
        name = f"densenet-bc-{implied_depth}" if bottleneck else f"densenet{implied_depth}"

    inputs = layers.Input(shape=input_shape, name="image")
    x = _stem_conv(inputs, initial_channels, kernel_initializer)
    for block, count in enumerate(blocks):
        for layer in range(count):
            x = dense_layer(
                x,
                growth_rate,
                bottleneck=bottleneck,
                kernel_initializer=kernel_initializer,
                name=f"block{block + 1}_layer{layer + 1}",
            )
        if block < len(blocks) - 1:
            x = transition_layer(
                x, compression, kernel_initializer=kernel_initializer, name=f"transition{block + 1}"
            )
    x = _bn_relu(x, "post_bn", "post_relu")
    outputs = _classifier_head(x, classes, classifier_activation)
    return functional_model(inputs, outputs, name=name)


PRESETS = {
    "densenet40": Preset(densenet, {"depth": 40, "growth_rate": 12}),
    "densenet100": Preset(densenet, {"depth": 100, "growth_rate": 12}),
    "densenet-bc-100": Preset(
        densenet, {"depth": 100, "growth_rate": 12, "bottleneck": True, "compression": 0.5}
    ),
    "densenet-bc-250": Preset(
        densenet, {"depth": 250, "growth_rate": 24, "bottleneck": True, "compression": 0.5}
    ),
}

# Any depth (3n+4) by name, as the depth study uses them: "densenet-7", "densenet-40".
PATTERNS = {"densenet-<depth>": (re.compile(r"densenet-(\d+)"), densenet)}
