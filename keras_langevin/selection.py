"""Which variables receive Langevin noise (Layer Langevin).

The optimizer's model gives the layers: the one `model.fit` trains (Keras's trainer holds it,
and its optimizer is this very optimizer), or the one given by `optimizer.set_model(model)`
(a custom training loop says it once). Each layer that owns trainable variables has a path of
layer names inside the model, nested models included (``inner/dense``), so a selection saved
with the model reloads whatever Keras names the variables after loading.

For a fraction, the layers are ordered by the first appearance of one of their variables in
*forward order*, the order in which the forward pass uses them:

* Sequential and functional models carry their graph: their layers are taken in that order
  (topological, nearest the input first), nested models flattened in place;
* any other layer that holds weighted sublayers (a subclassed model, a custom block) is traced:
  its ``call`` is run once symbolically, on the input shape it was built with, and its variables
  are ordered by their first read. The order of attribute assignment in ``__init__`` plays no
  part. Where the trace is impossible (the layer was never called, its ``call`` cannot run
  symbolically), a fraction is refused with an error that asks for layer names;
* variables the forward pass never reads come last, in the order they were given.

Without a model, a fraction is refused (the order of a bare list of variables is not a forward
order one can trust); names and predicates work on the variables' own paths.

A selection is one of:

* ``None``: every variable;
* a float ``f`` in (0, 1]: the first ``ceil(f * L)`` of the ``L`` weighted layers (at least one);
* a list of layer names or glob patterns (``"conv1_*"``, ``"inner/dense"``), matched against a
  layer's name, its path in the model, and the paths of the models that contain it (so the name
  of a nested model selects all of its layers); every entry must match at least one layer;
* a callable ``predicate(variable) -> bool``.

Weightless layers (activations, ``Add``, pooling) are not counted, unlike the reference
implementation of the paper, which took a fraction of every entry of ``model.layers``.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Sequence
from numbers import Integral, Real

import keras

from keras_langevin import _compat

LayerSelection = None | float | str | Sequence[str] | Callable[[keras.Variable], bool]

NO_MODEL_MESSAGE = (
    "Argument `langevin_layers` is a fraction of the model's layers in forward order, but the "
    "optimizer does not know its model. `model.fit` tells it; in a custom training loop, call "
    "`optimizer.set_model(model)` once before the first step (or before `optimizer.build`). "
    "Received: langevin_layers={value!r}"
)


def validate_selection(langevin_layers):
    """Checks `langevin_layers` at construction; returns its normalised form."""
    if langevin_layers is None or callable(langevin_layers):
        return langevin_layers
    if isinstance(langevin_layers, str):
        if not langevin_layers:
            raise ValueError(
                "Argument `langevin_layers` as a layer name or pattern must not be empty. "
                f"Received: langevin_layers={langevin_layers!r}"
            )
        return (langevin_layers,)
    if isinstance(langevin_layers, Integral) and not isinstance(langevin_layers, bool):
        if langevin_layers == 1:
            return 1.0
        raise ValueError(
            "Argument `langevin_layers` as a number is the fraction of the layers that get "
            "noise, a float in (0, 1] (1 means all); an int other than 1 is not a fraction. "
            "To select particular layers, pass their names or glob patterns. "
            f"Received: langevin_layers={langevin_layers!r}"
        )
    if isinstance(langevin_layers, Real) and not isinstance(langevin_layers, bool):
        fraction = float(langevin_layers)
        if not 0.0 < fraction <= 1.0:
            raise ValueError(
                "Argument `langevin_layers` as a fraction must be in (0, 1]. "
                f"Received: langevin_layers={langevin_layers!r}"
            )
        return fraction
    if (
        isinstance(langevin_layers, (list, tuple))
        and langevin_layers
        and all(isinstance(name, str) and name for name in langevin_layers)
    ):
        return tuple(langevin_layers)
    raise TypeError(
        "Argument `langevin_layers` must be None, a float in (0, 1], a non-empty list of layer "
        "names or glob patterns, or a callable taking a variable. "
        f"Received: langevin_layers={langevin_layers!r}"
    )


def fraction_count(fraction, num_layers):
    """`ceil(fraction * num_layers)`, at least one layer when there is one.

    The product is rounded to 9 decimals first, so that 0.3 * 10 (3.0000000000000004 in
    floating point) counts 3 layers, not 4.
    """
    if num_layers == 0:
        return 0
    return min(num_layers, max(1, math.ceil(round(fraction * num_layers, 9))))


def owner_path(variable):
    """The path of the layer that owns `variable` ('' for a variable outside any layer), as
    the variable's own `path` says (which depends on how and when Keras created it)."""
    path = getattr(variable, "path", None) or variable.name
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _prefixes(path):
    parts = path.split("/")
    return ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]


class Layer:
    """A layer that owns some of the variables: its display path, the names a pattern may
    match (its name, its path and the paths of its ancestors), and its variables' indices."""

    def __init__(self, path, names, indices):
        self.path = path
        self.names = names
        self.indices = indices

    def matches(self, pattern):
        return any(fnmatch.fnmatchcase(name, pattern) for name in self.names)


def _variable_names(variables, indices):
    names = set()
    for index in indices:
        owner = owner_path(variables[index])
        if owner:
            names.update(_prefixes(owner))
            names.add(owner.rsplit("/", 1)[-1])
    return names


def weighted_layers(variables, order=None):
    """The layers of a bare list of variables, grouped by their variables' owner paths, in
    first-appearance order (`order`: indices into `variables`, default the list's order)."""
    groups = {}
    for index in range(len(variables)) if order is None else order:
        groups.setdefault(owner_path(variables[index]), []).append(index)
    return [
        Layer(path, _variable_names(variables, indices), indices)
        for path, indices in groups.items()
    ]


def _children(layer):
    if isinstance(layer, keras.Model):
        return list(layer.layers)
    return _compat.sublayers(layer)


def model_layers(variables, model):
    """The layers of `model` that own some of `variables`, in the model's structure order.

    A layer's path is the names from the model down to it (``inner/dense``); a layer shared
    by several parents keeps its first path. Variables of `variables` outside `model` are not
    in any layer.
    """
    position = {id(v): i for i, v in enumerate(variables)}
    claimed = set()
    layers = []

    def walk(layer, path):
        children = _children(layer)
        inside = {id(v) for child in children for v in child.trainable_variables}
        own = []
        for variable in layer.trainable_variables:
            key = id(variable)
            if key not in inside and key not in claimed and key in position:
                claimed.add(key)
                own.append(position[key])
        if own:
            label = "/".join(path) or model.name
            names = set(_prefixes(label)) | {path[-1] if path else model.name}
            names.update(_prefixes(f"{model.name}/{label}") if path else ())
            names.update(_variable_names(variables, own))
            layers.append(Layer(label, names, own))
        for child in children:
            walk(child, (*path, child.name))

    walk(model, ())
    return layers


def unowned(variables, model):
    """Indices of the variables that `model` does not hold."""
    held = {id(v) for v in model.trainable_variables}
    return [i for i, v in enumerate(variables) if id(v) not in held]


class UnknownForwardOrder(ValueError):
    """The forward order of a model's layers cannot be determined."""


def select(variables, langevin_layers, model=None):
    """Indices into `variables` of the variables that receive noise, as a frozenset.

    `model`: the model (or layer) holding the variables, which names their layers and gives
    the forward order of a fraction; None: the variables' own paths name their layers, and a
    fraction is refused.

    Raises:
        ValueError: a name or pattern matches no layer; a fraction without a model, or of a
            model whose forward order cannot be determined.
    """
    if langevin_layers is None:
        return frozenset(range(len(variables)))
    if callable(langevin_layers):
        return frozenset(i for i, v in enumerate(variables) if langevin_layers(v))
    layers = weighted_layers(variables) if model is None else model_layers(variables, model)
    if isinstance(langevin_layers, float):
        if model is None:
            raise ValueError(NO_MODEL_MESSAGE.format(value=langevin_layers))
        layers = _in_forward_order(variables, model, layers, langevin_layers)
        count = fraction_count(langevin_layers, len(layers))
        return frozenset(i for layer in layers[:count] for i in layer.indices)
    unmatched = [p for p in langevin_layers if not any(layer.matches(p) for layer in layers)]
    if unmatched:
        known = ", ".join(layer.path for layer in layers[:20])
        raise ValueError(
            f"Argument `langevin_layers` names no layer of the model: {unmatched!r}. "
            f"Layers with trainable variables (first 20): {known}"
        )
    return frozenset(
        i
        for layer in layers
        if any(layer.matches(p) for p in langevin_layers)
        for i in layer.indices
    )


def _in_forward_order(variables, model, layers, fraction):
    try:
        order = forward_order(variables, model)
    except UnknownForwardOrder as error:
        names = [layer.path for layer in layers][:3]
        raise ValueError(
            f"Argument `langevin_layers` is a fraction of the layers in forward order, "
            f"which cannot be determined for {error}. Pass the names (or glob patterns) "
            f"of the layers nearest the input instead, e.g. langevin_layers={names!r}. "
            f"Received: langevin_layers={fraction!r}"
        ) from None
    rank = {}
    for position, index in enumerate(order):
        rank.setdefault(index, position)
    return sorted(layers, key=lambda layer: min(rank[i] for i in layer.indices))


# ------------------------------------------------------------------------- forward order


def _is_graph_model(layer):
    return isinstance(layer, keras.Sequential) or _compat.is_functional(layer)


def _forward_variables(layer, out):
    """Appends the trainable variables of `layer` to `out` in forward order."""
    if not layer.trainable_variables:
        return
    if _is_graph_model(layer):
        for sublayer in layer.layers:
            _forward_variables(sublayer, out)
        return
    weighted = [sub for sub in _children(layer) if sub.trainable_variables]
    if not weighted:  # a leaf: its own variables
        out.extend(layer.trainable_variables)
        return
    out.extend(_traced_variables(layer))


def _describe(layer):
    return f"{type(layer).__name__} '{layer.name}'"


def _traced_variables(layer):
    """The variables of `layer` ordered by their first read in one symbolic call."""
    config = layer.get_build_config() if layer.built else None
    if not config or "input_shape" not in config:
        raise UnknownForwardOrder(
            f"{_describe(layer)} (it holds weighted sublayers, is neither Sequential nor "
            "functional, and has not been called on one input, so its call cannot be traced)"
        )
    dtype = getattr(layer, "input_dtype", None) or keras.backend.floatx()
    specs = keras.tree.map_shape_structure(
        lambda shape: keras.KerasTensor(shape, dtype=dtype), config["input_shape"]
    )
    recorder = _compat.read_recorder()

    def call(inputs):
        with recorder:
            return layer(inputs)

    try:
        _compat.compute_output_spec(call, specs)
    except _compat.KerasInternalsError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure means the order is unknown
        raise UnknownForwardOrder(
            f"{_describe(layer)} (its call could not be traced symbolically: "
            f"{type(error).__name__}: {str(error)[:200]})"
        ) from None
    _compat.check_reads_recorded(recorder, layer)
    trainable = {id(v) for v in layer.trainable_variables}
    return [v for v in recorder.read if id(v) in trainable]


def forward_order(variables, model):
    """Indices into `variables` in forward order through `model`.

    Variables that the forward pass does not reach come last, in their given order.

    Raises:
        UnknownForwardOrder: a layer of `model` needs a trace that cannot be made.
    """
    ordered = []
    _forward_variables(model, ordered)
    position = {id(v): i for i, v in enumerate(variables)}
    order, taken = [], set()
    for variable in ordered:
        index = position.get(id(variable))
        if index is not None and index not in taken:
            taken.add(index)
            order.append(index)
    order.extend(i for i in range(len(variables)) if i not in taken)
    return order
