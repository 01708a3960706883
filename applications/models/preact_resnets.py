"""The pre-activation bottleneck ResNet of He et al. (2016b), "Identity Mappings in Deep
Residual Networks".

9n+2 layers: :func:`preact_resnet` and its block :func:`preact_bottleneck_block`.
Registers preact-resnet164 and preact-resnet1001.
"""

from keras import layers

from applications.models._layers import (
    Preset,
    _blocks_from_depth,
    _bn_relu,
    _channel_axis,
    _check_positive_int,
    _classifier_head,
    _stem_conv,
    functional_model,
)


def preact_bottleneck_block(x, width, stride=1, kernel_initializer="he_normal", name=None):
    """Pre-activation bottleneck block (He et al., 2016b).

    BN-ReLU-conv1x1(width), BN-ReLU-conv3x3(width, stride),
    BN-ReLU-conv1x1(4 * width), added to the shortcut. When the shape changes
    the shortcut is a 1x1 convolution of the pre-activated input.

    Args:
        x: input tensor.
        width: number of filters of the two inner convolutions; the block
            outputs `4 * width` channels.
        stride: stride of the 3x3 convolution (2 to downsample).
        kernel_initializer: initializer of the convolution kernels.
        name: prefix of the layer names.

    Returns:
        Output tensor for the block.
    """
    out_channels = 4 * width
    convolution = {"use_bias": False, "kernel_initializer": kernel_initializer}
    preact = _bn_relu(x, f"{name}_preact_bn", f"{name}_preact_relu")
    if stride != 1 or x.shape[_channel_axis()] != out_channels:
        residual = layers.Conv2D(
            out_channels, 1, strides=stride, name=f"{name}_shortcut_conv", **convolution
        )(preact)
    else:
        residual = x

    x = layers.Conv2D(width, 1, name=f"{name}_conv1", **convolution)(preact)
    x = _bn_relu(x, f"{name}_bn1", f"{name}_relu1")
    x = layers.Conv2D(
        width, 3, strides=stride, padding="same", name=f"{name}_conv2", **convolution
    )(x)
    x = _bn_relu(x, f"{name}_bn2", f"{name}_relu2")
    x = layers.Conv2D(out_channels, 1, name=f"{name}_conv3", **convolution)(x)
    return layers.Add(name=f"{name}_add")([residual, x])


def preact_resnet(
    input_shape=(32, 32, 3),
    classes=10,
    depth=None,
    blocks_per_stage=None,
    base_width=16,
    kernel_initializer="he_normal",
    classifier_activation="softmax",
    name=None,
):
    """Pre-activation bottleneck ResNet of He et al. (2016b), "Identity
    Mappings in Deep Residual Networks".

    A 3x3 stem convolution with `base_width` filters, then stages of
    pre-activation bottleneck blocks; stage `s` (from 0) has bottleneck width
    `base_width * 2**s` and outputs 4 times as many channels, and every stage
    after the first starts by halving the spatial size. A final BN-ReLU,
    global average pooling and the classifier close the network. With `n`
    blocks in each of 3 stages the network has `9n+2` weighted layers
    (preact-resnet164: n=18, preact-resnet1001: n=111).

    Args:
        input_shape: shape of one input image, e.g. `(32, 32, 3)`.
        classes: number of classes.
        depth: number of weighted layers, `9n+2`; 164 if neither `depth` nor
            `blocks_per_stage` is given.
        blocks_per_stage: number of bottleneck blocks in each stage;
            any number of stages is allowed. Overrides `depth`.
        base_width: number of filters of the stem and bottleneck width of
            the first stage.
        kernel_initializer: initializer of the convolution kernels.
        classifier_activation: activation of the classifier.
        name: model name; `preact-resnet<depth>` by default.

    Returns:
        A `keras.Model`.
    """
    blocks_per_stage = _blocks_from_depth(
        depth, blocks_per_stage, "blocks_per_stage", 3, "pre-activation ResNet", 164
    )
    _check_positive_int("base_width", base_width)
    _check_positive_int("classes", classes)
    if name is None:
        name = f"preact-resnet{3 * sum(blocks_per_stage) + 2}"

    inputs = layers.Input(shape=input_shape, name="image")
    x = _stem_conv(inputs, base_width, kernel_initializer)
    for stage, blocks in enumerate(blocks_per_stage):
        for block in range(blocks):
            x = preact_bottleneck_block(
                x,
                base_width * 2**stage,
                stride=2 if stage > 0 and block == 0 else 1,
                kernel_initializer=kernel_initializer,
                name=f"stage{stage + 1}_block{block + 1}",
            )
    x = _bn_relu(x, "post_bn", "post_relu")
    outputs = _classifier_head(x, classes, classifier_activation)
    return functional_model(inputs, outputs, name=name)


PRESETS = {
    "preact-resnet164": Preset(preact_resnet, {"depth": 164}),
    "preact-resnet1001": Preset(preact_resnet, {"depth": 1001}),
}
