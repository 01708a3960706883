"""The CIFAR ResNet of He et al. (2016), "Deep Residual Learning for Image Recognition".

6n+2 layers of basic blocks with 16/32/64 filters: :func:`cifar_resnet`, its block
:func:`basic_block` and the parameter-free shortcut :func:`zero_pad_shortcut`. Registers
resnet20, resnet32, resnet44, resnet56, resnet110 and resnet1202, the pattern
`resnet-<depth>` and the BatchNorm-free pattern `resnet-nobn-<depth>`.

Without batch normalization (`batch_norm=False`) every residual branch is multiplied by
`1 / sqrt(B)`, B the number of blocks: with He kernels a branch has about the second moment
of its input, so the sum's moment grows by at most a factor (1 + 1/B) per block, e in all,
instead of doubling at every block.
"""

import functools
import math
import re

from keras import layers

from applications.models._layers import (
    BN_EPSILON,
    Preset,
    _blocks_from_depth,
    _bn_relu,
    _channel_axis,
    _check_positive_int,
    _classifier_head,
    _stem_conv,
    functional_model,
    resolve_kernel_initializer,
)

SHORTCUTS = ("zero_pad", "projection")


def zero_pad_shortcut(x, filters, stride, name):
    """Parameter-free shortcut ("option A" of He et al., 2016).

    Takes every `stride`-th pixel of `x`, then appends zero channels up to
    `filters` channels.

    Args:
        x: input tensor.
        filters: number of channels of the output.
        stride: spatial subsampling factor.
        name: prefix of the layer names.

    Returns:
        Output tensor for the shortcut.
    """
    channel_axis = _channel_axis()
    if stride > 1:
        x = layers.MaxPooling2D(pool_size=1, strides=stride, name=f"{name}_subsample")(x)
    extra = filters - x.shape[channel_axis]
    if extra < 0:
        raise ValueError(
            f"A zero-padding shortcut cannot reduce {x.shape[channel_axis]} channels "
            f"to filters={filters}"
        )
    if extra > 0:
        # Pad the channel axis by treating it as the third axis of a 3D volume.
        shape = tuple(x.shape[1:])
        x = layers.Reshape(shape + (1,), name=f"{name}_expand")(x)
        padding = [(0, 0), (0, 0), (0, 0)]
        padding[2 if channel_axis == -1 else 0] = (0, extra)
        x = layers.ZeroPadding3D(
            padding=tuple(padding), data_format="channels_last", name=f"{name}_pad"
        )(x)
        padded = list(shape)
        padded[-1 if channel_axis == -1 else 0] = filters
        x = layers.Reshape(tuple(padded), name=f"{name}_squeeze")(x)
    return x


def _check_shortcut(shortcut):
    if shortcut not in SHORTCUTS:
        raise ValueError(
            f'`shortcut` must be "zero_pad" or "projection"; received shortcut={shortcut!r}'
        )


def _shortcut(x, filters, stride, shortcut, kernel_initializer, name, batch_norm=True):
    """The shortcut of a basic block: identity, zero padding or projection."""
    channel_axis = _channel_axis()
    if stride == 1 and x.shape[channel_axis] == filters:
        return x
    _check_shortcut(shortcut)
    if shortcut == "zero_pad":
        return zero_pad_shortcut(x, filters, stride, name=f"{name}_shortcut")
    residual = layers.Conv2D(
        filters,
        1,
        strides=stride,
        use_bias=not batch_norm,
        kernel_initializer=kernel_initializer,
        name=f"{name}_shortcut_conv",
    )(x)
    if not batch_norm:
        return residual
    return layers.BatchNormalization(
        axis=channel_axis, epsilon=BN_EPSILON, name=f"{name}_shortcut_bn"
    )(residual)


def basic_block(
    x,
    filters,
    stride=1,
    shortcut="zero_pad",
    kernel_initializer="he_normal",
    name=None,
    batch_norm=True,
    residual_scale=None,
):
    """Residual block of two 3x3 convolutions (He et al., 2016).

    conv-BN-ReLU-conv-BN, added to the shortcut, then ReLU. Without batch normalization:
    conv-ReLU-conv (with biases), times `residual_scale`, added to the shortcut, then ReLU.

    Args:
        x: input tensor.
        filters: number of filters of both convolutions.
        stride: stride of the first convolution (2 to downsample).
        shortcut: what the shortcut does when the shape changes:
            `"zero_pad"` (subsample and pad with zero channels, no parameters)
            or `"projection"` (1x1 convolution and batch normalization).
            When the shape does not change the shortcut is the identity.
        kernel_initializer: initializer of the convolution kernels.
        name: prefix of the layer names.
        batch_norm: whether the convolutions are followed by batch normalization.
        residual_scale: a constant multiplying the residual branch (None: 1).

    Returns:
        Output tensor for the block.
    """
    residual = _shortcut(x, filters, stride, shortcut, kernel_initializer, name, batch_norm)
    convolution = {
        "padding": "same",
        "use_bias": not batch_norm,
        "kernel_initializer": kernel_initializer,
    }
    x = layers.Conv2D(filters, 3, strides=stride, name=f"{name}_conv1", **convolution)(x)
    if batch_norm:
        x = _bn_relu(x, f"{name}_bn1", f"{name}_relu1")
    else:
        x = layers.Activation("relu", name=f"{name}_relu1")(x)
    x = layers.Conv2D(filters, 3, name=f"{name}_conv2", **convolution)(x)
    if batch_norm:
        x = layers.BatchNormalization(axis=_channel_axis(), epsilon=BN_EPSILON, name=f"{name}_bn2")(
            x
        )
    if residual_scale is not None:
        x = layers.Rescaling(residual_scale, name=f"{name}_scale")(x)
    x = layers.Add(name=f"{name}_add")([residual, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def cifar_resnet(
    input_shape=(32, 32, 3),
    classes=10,
    depth=None,
    blocks_per_stage=None,
    base_filters=16,
    shortcut="zero_pad",
    kernel_initializer=None,
    classifier_activation="softmax",
    name=None,
    init="he",
    batch_norm=True,
):
    """CIFAR ResNet of He et al. (2016), "Deep Residual Learning".

    A 3x3 stem convolution, then stages of basic blocks; stage `s` (from 0)
    has `base_filters * 2**s` filters and every stage after the first starts
    by halving the spatial size. Global average pooling and the classifier
    close the network. With `n` blocks in each of 3 stages the network has
    `6n+2` weighted layers (resnet20: n=3, ..., resnet1202: n=200).

    Args:
        input_shape: shape of one input image, e.g. `(32, 32, 3)`.
        classes: number of classes.
        depth: number of weighted layers, `6n+2`; 20 if neither `depth` nor
            `blocks_per_stage` is given.
        blocks_per_stage: number of basic blocks in each stage, e.g.
            `(6, 6, 6)`; any number of stages is allowed. Overrides `depth`.
        base_filters: number of filters of the stem and the first stage.
        shortcut: `"zero_pad"` (parameter-free, the original "option A") or
            `"projection"` (1x1 convolutions, "option B") for the shortcuts
            that change shape.
        kernel_initializer: initializer of the convolution kernels; None (default): the
            one `init` names. Given, it wins over `init`.
        classifier_activation: activation of the classifier.
        name: model name; `resnet<depth>` by default.
        init: the convolution kernels' initialiser, "he" (default), "glorot" or
            "orthogonal" (`applications.models.kernel_initializer_for`).
        batch_norm: False builds the network without batch normalization: the
            convolutions get biases and every residual branch is scaled by 1/sqrt(blocks).

    Returns:
        A `keras.Model`.
    """
    kernel_initializer = resolve_kernel_initializer(init, kernel_initializer)
    if not isinstance(batch_norm, bool):
        raise TypeError(f"`batch_norm` must be True or False; received batch_norm={batch_norm!r}")
    blocks_per_stage = _blocks_from_depth(
        depth, blocks_per_stage, "blocks_per_stage", 2, "CIFAR ResNet", 20
    )
    _check_positive_int("base_filters", base_filters)
    _check_positive_int("classes", classes)
    _check_shortcut(shortcut)
    if name is None:
        name = f"resnet{2 * sum(blocks_per_stage) + 2}"

    inputs = layers.Input(shape=input_shape, name="image")
    x = _stem_conv(inputs, base_filters, kernel_initializer, use_bias=not batch_norm)
    if batch_norm:
        x = _bn_relu(x, "stem_bn", "stem_relu")
    else:
        x = layers.Activation("relu", name="stem_relu")(x)
    scale = None if batch_norm else 1.0 / math.sqrt(sum(blocks_per_stage))
    for stage, blocks in enumerate(blocks_per_stage):
        for block in range(blocks):
            x = basic_block(
                x,
                base_filters * 2**stage,
                stride=2 if stage > 0 and block == 0 else 1,
                shortcut=shortcut,
                kernel_initializer=kernel_initializer,
                name=f"stage{stage + 1}_block{block + 1}",
                batch_norm=batch_norm,
                residual_scale=scale,
            )
    outputs = _classifier_head(x, classes, classifier_activation)
    return functional_model(inputs, outputs, name=name)


PRESETS = {
    f"resnet{depth}": Preset(cifar_resnet, {"depth": depth})
    for depth in (20, 32, 44, 56, 110, 1202)
}

# Any depth (6n+2) by name, as the depth study uses them: "resnet-8", "resnet-56".
# "resnet-nobn-<depth>": the same without batch normalization (residual branches scaled).
PATTERNS = {
    "resnet-<depth>": (re.compile(r"resnet-(\d+)"), cifar_resnet),
    "resnet-nobn-<depth>": (
        re.compile(r"resnet-nobn-(\d+)"),
        functools.partial(cifar_resnet, batch_norm=False),
    ),
}
