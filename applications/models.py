"""Model builders for the Langevin experiments.

Every builder returns a Keras 3 functional model that ends with a Dense
classifier of `classes` units (softmax by default). Only `keras.layers` are
used, so the models run on any Keras backend.

Families (each one a function whose depth and width are arguments):

- `cifar_resnet`: the CIFAR ResNet of He et al. (2016), 6n+2 layers of basic
  blocks with 16/32/64 filters.
- `preact_resnet`: the pre-activation bottleneck ResNet of He et al. (2016b),
  9n+2 layers.
- `densenet`: the CIFAR DenseNet of Huang et al. (2017), with or without
  bottleneck layers and compression (DenseNet-BC).
- `mlp`: a plain fully connected network of any depth.
- `plain_cnn`: a plain convolutional network of any depth.
- `keras_application`: the ImageNet ResNets and DenseNets that Keras already
  provides (`keras.applications`), built without pretrained weights.

`build_model(name, ...)` picks a family and its settings from a name: the names
in `MODEL_NAMES`, or the patterns `mlp-<depth>` and `cnn-<depth>`.
"""

import re

import keras
from keras import layers

BN_EPSILON = 1.001e-5


def _channel_axis():
    return -1 if keras.backend.image_data_format() == "channels_last" else 1


def _bn_relu(x, bn_name, relu_name):
    """Batch normalization then ReLU, the pair every block here uses."""
    x = layers.BatchNormalization(axis=_channel_axis(), epsilon=BN_EPSILON, name=bn_name)(x)
    return layers.Activation("relu", name=relu_name)(x)


def _check_positive_int(argument, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"`{argument}` must be an integer >= {minimum}; received {argument}={value!r}"
        )


def _check_blocks(argument, blocks):
    if isinstance(blocks, (str, bytes)) or not hasattr(blocks, "__len__") or len(blocks) == 0:
        raise ValueError(
            f"`{argument}` must be a non-empty sequence of positive integers; "
            f"received {argument}={blocks!r}"
        )
    for count in blocks:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(
                f"`{argument}` must be a non-empty sequence of positive integers; "
                f"received {argument}={blocks!r}"
            )
    return tuple(blocks)


def _blocks_from_depth(
    depth, blocks, blocks_argument, layers_per_block, family, default_depth, stages=3
):
    """Number of blocks per stage, from either `depth` or an explicit list.

    A network of `stages` stages with `n` blocks each, every block holding
    `layers_per_block` weighted layers, has `stages * layers_per_block * n + 2`
    weighted layers (the stem convolution and the classifier being the two
    others).
    """
    if blocks is not None:
        blocks = _check_blocks(blocks_argument, blocks)
        implied_depth = layers_per_block * sum(blocks) + 2
        if depth is not None and depth != implied_depth:
            raise ValueError(
                f"`depth`={depth!r} disagrees with {blocks_argument}={blocks!r}, "
                f"which gives a {family} of depth {implied_depth}; pass only one of them"
            )
        return blocks
    if depth is None:
        depth = default_depth
    per_stage = stages * layers_per_block
    if (
        isinstance(depth, bool)
        or not isinstance(depth, int)
        or depth < per_stage + 2
        or (depth - 2) % per_stage != 0
    ):
        raise ValueError(
            f"A {family} needs `depth` of the form {per_stage}n+2 with n >= 1; received depth={depth!r}"
        )
    return (((depth - 2) // per_stage),) * stages


def _classifier_head(x, classes, classifier_activation):
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return layers.Dense(classes, activation=classifier_activation, name="predictions")(x)


# ---------------------------------------------------------------------------
# CIFAR ResNet (He et al., 2016)
# ---------------------------------------------------------------------------


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


def basic_block(
    x, filters, stride=1, shortcut="zero_pad", kernel_initializer="he_normal", name=None
):
    """Residual block of two 3x3 convolutions (He et al., 2016).

    conv-BN-ReLU-conv-BN, added to the shortcut, then ReLU.

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

    Returns:
        Output tensor for the block.
    """
    channel_axis = _channel_axis()
    if stride != 1 or x.shape[channel_axis] != filters:
        if shortcut == "zero_pad":
            residual = zero_pad_shortcut(x, filters, stride, name=f"{name}_shortcut")
        elif shortcut == "projection":
            residual = layers.Conv2D(
                filters,
                1,
                strides=stride,
                use_bias=False,
                kernel_initializer=kernel_initializer,
                name=f"{name}_shortcut_conv",
            )(x)
            residual = layers.BatchNormalization(
                axis=channel_axis, epsilon=BN_EPSILON, name=f"{name}_shortcut_bn"
            )(residual)
        else:
            raise ValueError(
                f'`shortcut` must be "zero_pad" or "projection"; received shortcut={shortcut!r}'
            )
    else:
        residual = x

    x = layers.Conv2D(
        filters,
        3,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer=kernel_initializer,
        name=f"{name}_conv1",
    )(x)
    x = _bn_relu(x, f"{name}_bn1", f"{name}_relu1")
    x = layers.Conv2D(
        filters,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer=kernel_initializer,
        name=f"{name}_conv2",
    )(x)
    x = layers.BatchNormalization(axis=channel_axis, epsilon=BN_EPSILON, name=f"{name}_bn2")(x)
    x = layers.Add(name=f"{name}_add")([residual, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def cifar_resnet(
    input_shape=(32, 32, 3),
    classes=10,
    depth=None,
    blocks_per_stage=None,
    base_filters=16,
    shortcut="zero_pad",
    kernel_initializer="he_normal",
    classifier_activation="softmax",
    name=None,
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
        kernel_initializer: initializer of the convolution kernels.
        classifier_activation: activation of the classifier.
        name: model name; `resnet<depth>` by default.

    Returns:
        A `keras.Model`.
    """
    blocks_per_stage = _blocks_from_depth(
        depth, blocks_per_stage, "blocks_per_stage", 2, "CIFAR ResNet", 20
    )
    _check_positive_int("base_filters", base_filters)
    _check_positive_int("classes", classes)
    if shortcut not in ("zero_pad", "projection"):
        raise ValueError(
            f'`shortcut` must be "zero_pad" or "projection"; received shortcut={shortcut!r}'
        )
    if name is None:
        name = f"resnet{2 * sum(blocks_per_stage) + 2}"

    inputs = layers.Input(shape=input_shape, name="image")
    x = layers.Conv2D(
        base_filters,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer=kernel_initializer,
        name="stem_conv",
    )(inputs)
    x = _bn_relu(x, "stem_bn", "stem_relu")
    for stage, blocks in enumerate(blocks_per_stage):
        filters = base_filters * 2**stage
        for block in range(blocks):
            x = basic_block(
                x,
                filters,
                stride=2 if stage > 0 and block == 0 else 1,
                shortcut=shortcut,
                kernel_initializer=kernel_initializer,
                name=f"stage{stage + 1}_block{block + 1}",
            )
    outputs = _classifier_head(x, classes, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


# ---------------------------------------------------------------------------
# Pre-activation ResNet (He et al., 2016b)
# ---------------------------------------------------------------------------


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
    channel_axis = _channel_axis()
    out_channels = 4 * width
    preact = _bn_relu(x, f"{name}_preact_bn", f"{name}_preact_relu")
    if stride != 1 or x.shape[channel_axis] != out_channels:
        residual = layers.Conv2D(
            out_channels,
            1,
            strides=stride,
            use_bias=False,
            kernel_initializer=kernel_initializer,
            name=f"{name}_shortcut_conv",
        )(preact)
    else:
        residual = x

    x = layers.Conv2D(
        width, 1, use_bias=False, kernel_initializer=kernel_initializer, name=f"{name}_conv1"
    )(preact)
    x = _bn_relu(x, f"{name}_bn1", f"{name}_relu1")
    x = layers.Conv2D(
        width,
        3,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer=kernel_initializer,
        name=f"{name}_conv2",
    )(x)
    x = _bn_relu(x, f"{name}_bn2", f"{name}_relu2")
    x = layers.Conv2D(
        out_channels,
        1,
        use_bias=False,
        kernel_initializer=kernel_initializer,
        name=f"{name}_conv3",
    )(x)
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
    x = layers.Conv2D(
        base_width,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer=kernel_initializer,
        name="stem_conv",
    )(inputs)
    for stage, blocks in enumerate(blocks_per_stage):
        width = base_width * 2**stage
        for block in range(blocks):
            x = preact_bottleneck_block(
                x,
                width,
                stride=2 if stage > 0 and block == 0 else 1,
                kernel_initializer=kernel_initializer,
                name=f"stage{stage + 1}_block{block + 1}",
            )
    x = _bn_relu(x, "post_bn", "post_relu")
    outputs = _classifier_head(x, classes, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


# ---------------------------------------------------------------------------
# DenseNet (Huang et al., 2017)
# ---------------------------------------------------------------------------


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
    channel_axis = _channel_axis()
    y = x
    if bottleneck:
        y = _bn_relu(y, f"{name}_bottleneck_bn", f"{name}_bottleneck_relu")
        y = layers.Conv2D(
            4 * growth_rate,
            1,
            use_bias=False,
            kernel_initializer=kernel_initializer,
            name=f"{name}_bottleneck_conv",
        )(y)
    y = _bn_relu(y, f"{name}_bn", f"{name}_relu")
    y = layers.Conv2D(
        growth_rate,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer=kernel_initializer,
        name=f"{name}_conv",
    )(y)
    return layers.Concatenate(axis=channel_axis, name=f"{name}_concat")([x, y])


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
    channel_axis = _channel_axis()
    channels = max(1, int(x.shape[channel_axis] * compression))
    x = _bn_relu(x, f"{name}_bn", f"{name}_relu")
    x = layers.Conv2D(
        channels, 1, use_bias=False, kernel_initializer=kernel_initializer, name=f"{name}_conv"
    )(x)
    return layers.AveragePooling2D(2, strides=2, padding="same", name=f"{name}_pool")(x)


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
    layers_per_block = 2 if bottleneck else 1
    if blocks is not None:
        blocks = _check_blocks("blocks", blocks)
        implied_depth = layers_per_block * sum(blocks) + len(blocks) + 1
        if depth is not None and depth != implied_depth:
            raise ValueError(
                f"`depth`={depth!r} disagrees with blocks={blocks!r}, which gives a "
                f"DenseNet of depth {implied_depth}; pass only one of them"
            )
    else:
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
        blocks = ((depth - 4) // per_depth,) * 3
        implied_depth = depth
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
    x = layers.Conv2D(
        initial_channels,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer=kernel_initializer,
        name="stem_conv",
    )(inputs)
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
                x,
                compression=compression,
                kernel_initializer=kernel_initializer,
                name=f"transition{block + 1}",
            )
    x = _bn_relu(x, "post_bn", "post_relu")
    outputs = _classifier_head(x, classes, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


# ---------------------------------------------------------------------------
# Plain networks for depth studies
# ---------------------------------------------------------------------------


def mlp(
    input_shape=(32, 32, 3),
    classes=10,
    depth=10,
    width=64,
    activation="relu",
    kernel_initializer="glorot_uniform",
    classifier_activation="softmax",
    name=None,
):
    """Plain fully connected network: Flatten, `depth - 1` hidden Dense
    layers, and the classifier (so `depth` Dense layers in all).

    Args:
        input_shape: shape of one input, flattened first.
        classes: number of classes.
        depth: number of Dense layers, the classifier included (>= 1).
        width: units of each hidden layer.
        activation: activation of the hidden layers.
        kernel_initializer: initializer of the hidden kernels.
        classifier_activation: activation of the classifier.
        name: model name; `mlp-<depth>` by default.

    Returns:
        A `keras.Model`.
    """
    _check_positive_int("depth", depth)
    _check_positive_int("width", width)
    _check_positive_int("classes", classes)
    if name is None:
        name = f"mlp-{depth}"
    inputs = layers.Input(shape=input_shape, name="inputs")
    x = layers.Flatten(name="flatten")(inputs)
    for layer in range(depth - 1):
        x = layers.Dense(
            width,
            activation=activation,
            kernel_initializer=kernel_initializer,
            name=f"dense{layer + 1}",
        )(x)
    outputs = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def plain_cnn(
    input_shape=(32, 32, 3),
    classes=10,
    depth=10,
    width=16,
    batch_norm=False,
    double_width_on_downsample=True,
    activation="relu",
    kernel_initializer="glorot_uniform",
    classifier_activation="softmax",
    name=None,
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
        kernel_initializer: initializer of the convolution kernels.
        classifier_activation: activation of the classifier.
        name: model name; `cnn-<depth>` by default.

    Returns:
        A `keras.Model`.
    """
    _check_positive_int("depth", depth)
    _check_positive_int("width", width)
    _check_positive_int("classes", classes)
    if name is None:
        name = f"cnn-{depth}"
    channel_axis = _channel_axis()
    convolutions = depth - 1
    # First layer of stage s (s = 1, 2) is index ceil(s * convolutions / 3).
    downsample_at = {-(-s * convolutions // 3) for s in (1, 2)}
    downsample_at = {index for index in downsample_at if 0 < index < convolutions}

    inputs = layers.Input(shape=input_shape, name="image")
    x = inputs
    filters = width
    for index in range(convolutions):
        stride = 1
        if index in downsample_at:
            stride = 2
            if double_width_on_downsample:
                filters *= 2
        x = layers.Conv2D(
            filters,
            3,
            strides=stride,
            padding="same",
            use_bias=not batch_norm,
            kernel_initializer=kernel_initializer,
            name=f"conv{index + 1}",
        )(x)
        if batch_norm:
            x = layers.BatchNormalization(
                axis=channel_axis, epsilon=BN_EPSILON, name=f"conv{index + 1}_bn"
            )(x)
        x = layers.Activation(activation, name=f"conv{index + 1}_{_activation_label(activation)}")(
            x
        )
    outputs = _classifier_head(x, classes, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


def _activation_label(activation):
    return activation if isinstance(activation, str) else "activation"


# ---------------------------------------------------------------------------
# ImageNet models provided by keras.applications
# ---------------------------------------------------------------------------

KERAS_APPLICATIONS = {
    "resnet50": "ResNet50",
    "resnet101": "ResNet101",
    "resnet152": "ResNet152",
    "densenet121": "DenseNet121",
    "densenet169": "DenseNet169",
    "densenet201": "DenseNet201",
}


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
    return constructor(
        weights=weights,
        input_shape=tuple(input_shape),
        classes=classes,
        classifier_activation=classifier_activation,
        **kwargs,
    )


# ---------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------

# Each fixed name maps to its family function and the arguments it fixes.
# Keyword arguments given to `build_model` are applied on top.
_PRESETS = {
    **{f"resnet{depth}": (cifar_resnet, {"depth": depth}) for depth in (20, 32, 44, 56, 110, 1202)},
    "preact-resnet164": (preact_resnet, {"depth": 164}),
    "preact-resnet1001": (preact_resnet, {"depth": 1001}),
    "densenet40": (densenet, {"depth": 40, "growth_rate": 12}),
    "densenet100": (densenet, {"depth": 100, "growth_rate": 12}),
    "densenet-bc-100": (
        densenet,
        {"depth": 100, "growth_rate": 12, "bottleneck": True, "compression": 0.5},
    ),
    "densenet-bc-250": (
        densenet,
        {"depth": 250, "growth_rate": 24, "bottleneck": True, "compression": 0.5},
    ),
    **{
        architecture: (keras_application, {"architecture": architecture})
        for architecture in KERAS_APPLICATIONS
    },
    # Configurations of the experiments of P. Bras (2022), "Langevin
    # algorithms for very deep Neural Networks with application to image
    # classification", arXiv:2212.14718.
    "paper-resnet": (cifar_resnet, {"blocks_per_stage": (6, 6, 6), "base_filters": 8}),
    "paper-densenet": (
        densenet,
        {"blocks": (6, 6, 6), "growth_rate": 5, "initial_channels": 16},
    ),
    "paper-mlp": (mlp, {"depth": 11, "width": 64}),
}

MODEL_NAMES = tuple(_PRESETS)

_PLAIN_PATTERN = re.compile(r"(mlp|cnn)-(\d+)")


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
    match = _PLAIN_PATTERN.fullmatch(name) if isinstance(name, str) else None
    if name in _PRESETS:
        family, arguments = _PRESETS[name]
    elif match:
        family = mlp if match.group(1) == "mlp" else plain_cnn
        arguments = {"depth": int(match.group(2))}
    else:
        raise ValueError(
            f"Unknown model name={name!r}; expected one of {', '.join(MODEL_NAMES)}, "
            "or mlp-<depth> / cnn-<depth>"
        )
    arguments = {**arguments, **kwargs}
    if family is not keras_application:
        arguments.setdefault("name", name)
    return family(input_shape=input_shape, classes=classes, **arguments)
