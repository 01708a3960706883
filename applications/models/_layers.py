"""What every model family shares: layer helpers, argument checks, the presets' type, and
the recursion-limit guard of very deep functional models.

Layer helpers: :data:`BN_EPSILON`, `_channel_axis`, `_bn_relu`, `_stem_conv` and
`_classifier_head` (global average pooling and the Dense classifier). Argument checks:
`_check_positive_int`, `_check_blocks` and `_blocks_from_depth`. :class:`Preset` is what a
family module registers under a model name (see `applications.models`).

Recursion limit: Keras maps a functional graph recursively, one Python frame per node of
the graph (`_build_map_helper` in `keras/src/ops/function.py`), when a `keras.Model` is
built from tensors and again whenever it is rebuilt (loading, cloning, `from_config`).
resnet1202, preact-resnet1001 and densenet-bc-250 have several thousand nodes, more than
Python's default limit of 1000 frames, so building them raised RecursionError in a fresh
process. :func:`functional_model`, which every builder here ends with, counts the nodes
(iteratively) and raises the limit to fit them first; :func:`ensure_recursion_limit` never
lowers the limit and leaves it raised, so that loading or cloning the model later works too.
Pure Python calls do not consume the C stack in CPython 3.11 and later, so a higher limit
is safe.
"""

import math
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import keras
from keras import layers

BN_EPSILON = 1.001e-5

#: Frames kept free above the graph's depth and the caller's stack, for Keras's own calls.
RECURSION_HEADROOM = 1000
#: Nodes assumed when a graph cannot be walked (a Keras without `_keras_history`).
FALLBACK_GRAPH_NODES = 50_000


class Preset(NamedTuple):
    """A model name's family function and the arguments the name fixes.

    Attributes:
        builder: the family function, called with `input_shape`, `classes` and `arguments`
            (updated with the caller's keyword arguments).
        arguments: keyword arguments the name fixes.
        names_model: whether `build_model` passes the registered name as the model's `name`
            (False for builders without a `name` argument of their own).
    """

    builder: Callable[..., keras.Model]
    arguments: dict[str, Any]
    names_model: bool = True


# ---------------------------------------------------------------------------
# Recursion limit
# ---------------------------------------------------------------------------


def _stack_depth():
    frame, depth = sys._getframe(1), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def ensure_recursion_limit(graph_nodes):
    """Raise Python's recursion limit so that Keras can map a graph of `graph_nodes` nodes.

    The limit becomes at least the current stack depth plus `graph_nodes` plus
    :data:`RECURSION_HEADROOM`. It is never lowered, and it stays raised: Keras maps the
    graph again when the model is loaded or cloned.

    Returns:
        The recursion limit now in force.
    """
    needed = _stack_depth() + int(graph_nodes) + RECURSION_HEADROOM
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)
    return sys.getrecursionlimit()


def count_graph_nodes(outputs):
    """Number of nodes (layer calls) of the functional graph that ends in `outputs`.

    Walks the tensors' Keras history with an explicit stack, so it does not recurse. The
    deepest recursion of Keras's graph mapping is at most this number of frames.
    """
    seen = set()
    pending = list(keras.tree.flatten(outputs))
    while pending:
        operation, node_index, _ = pending.pop()._keras_history
        if operation is None:
            continue
        node = operation._inbound_nodes[node_index]
        if id(node) not in seen:
            seen.add(id(node))
            pending.extend(node.input_tensors)
    return len(seen)


def functional_model(inputs, outputs, name):
    """`keras.Model(inputs, outputs, name=name)` with a recursion limit that fits the graph."""
    try:
        nodes = count_graph_nodes(outputs)
    except (AttributeError, IndexError, TypeError, ValueError):
        nodes = FALLBACK_GRAPH_NODES
    ensure_recursion_limit(nodes)
    return keras.Model(inputs, outputs, name=name)


# ---------------------------------------------------------------------------
# Kernel initialisers
# ---------------------------------------------------------------------------

#: The kernel initialisers a builder's `init` argument names.
INITS = ("he", "glorot", "orthogonal")


def kernel_initializer_for(init, activation="relu"):
    """The Keras initializer identifier of `init` for kernels followed by `activation`.

    * ``"he"``: He-normal (variance 2 / fan_in), the default of the ReLU builders: it keeps
      the second moment of the signal through a ReLU layer;
    * ``"glorot"``: Glorot-uniform (variance 2 / (fan_in + fan_out)), Keras's default for
      Dense and Conv layers: with ReLU it halves the signal's second moment per layer;
    * ``"orthogonal"``: an orthogonal matrix (convolutions: of the kernel reshaped to
      (k*k*in, out)) with gain sqrt(2) before a ReLU (He's scale), 1 otherwise.

    Returns an identifier that `keras.initializers.get` turns into a fresh initializer for
    every layer (a string, or a config dict for the orthogonal one).

    Raises:
        ValueError: `init` is not one of :data:`INITS`.
    """
    if init not in INITS:
        raise ValueError(f"Argument `init` must be one of {INITS}. Received: init={init!r}")
    if init == "he":
        return "he_normal"
    if init == "glorot":
        return "glorot_uniform"
    gain = math.sqrt(2.0) if activation == "relu" else 1.0
    return {"class_name": "Orthogonal", "config": {"gain": gain}}


def resolve_kernel_initializer(init, kernel_initializer, activation="relu"):
    """`kernel_initializer` when given (it wins), else the initializer of `init`; `init` is
    checked in both cases."""
    identifier = kernel_initializer_for(init, activation)
    return identifier if kernel_initializer is None else kernel_initializer


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------


def _channel_axis():
    return -1 if keras.backend.image_data_format() == "channels_last" else 1


def _bn_relu(x, bn_name, relu_name):
    """Batch normalization then ReLU, the pair every block here uses."""
    x = layers.BatchNormalization(axis=_channel_axis(), epsilon=BN_EPSILON, name=bn_name)(x)
    return layers.Activation("relu", name=relu_name)(x)


def _stem_conv(inputs, filters, kernel_initializer, use_bias=False):
    """The 3x3 stem convolution (no bias by default) of the CIFAR ResNets and DenseNets."""
    return layers.Conv2D(
        filters,
        3,
        padding="same",
        use_bias=use_bias,
        kernel_initializer=kernel_initializer,
        name="stem_conv",
    )(inputs)


def _classifier_head(x, classes, classifier_activation):
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return layers.Dense(classes, activation=classifier_activation, name="predictions")(x)


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------


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
            f"A {family} needs `depth` of the form {per_stage}n+2 with n >= 1; "
            f"received depth={depth!r}"
        )
    return (((depth - 2) // per_stage),) * stages
