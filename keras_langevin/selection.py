"""Which variables receive Langevin noise (Layer Langevin).

Layers are identified from the variables themselves: a Keras 3 variable's ``path`` is
``<owner layer path>/<variable name>`` (nested models give ``outer/inner/dense/kernel``), so the
owner of a variable is its path without the last component. For a fraction, the layers that own
trainable variables are ordered by the first appearance of one of their variables in *forward
order*, the order in which the forward pass uses them:

* Sequential and functional models carry their graph: their layers are taken in that order
  (topological, nearest the input first), nested models flattened in place;
* any other layer that holds weighted sublayers (a subclassed model, a custom block) is traced:
  its ``call`` is run once symbolically, on the input shape it was built with, and its variables
  are ordered by their first read. The order of attribute assignment in ``__init__`` plays no
  part. Where the trace is impossible (the layer was never called, its ``call`` cannot run
  symbolically), a fraction is refused with an error that asks for layer names;
* variables the forward pass never reads come last, in the order they were given.

The model is the one among the callers of ``optimizer.build`` whose trainable variables contain
the optimizer's (``model.fit``, ``model.compile`` after loading, or a custom loop holding
``model`` in a local variable). Built with a bare list of variables that belong to no such model,
the optimizer takes the list's order as the forward order.

A selection is one of:

* ``None``: every variable;
* a float ``f`` in (0, 1]: the first ``ceil(f * L)`` of the ``L`` weighted layers (at least one);
* a list of layer names or glob patterns (``"conv1_*"``, ``"block/dense"``), matched against
  the layer's name and its full path; every entry must match at least one layer;
* a callable ``predicate(variable) -> bool``.

Weightless layers (activations, ``Add``, pooling) are not counted, unlike the reference
implementation of the paper, which took a fraction of every entry of ``model.layers``.
"""

from __future__ import annotations

import fnmatch
import math
import sys
from collections.abc import Callable, Sequence
from numbers import Real

import keras
from keras.src.backend import compute_output_spec
from keras.src.backend.common.stateless_scope import StatelessScope
from keras.src.models.functional import Functional

LayerSelection = None | float | str | Sequence[str] | Callable[[keras.Variable], bool]


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
    """The path of the layer that owns `variable` ('' for a variable outside any layer)."""
    path = getattr(variable, "path", None) or variable.name
    return path.rsplit("/", 1)[0] if "/" in path else ""


def weighted_layers(variables, order=None):
    """Layer paths in first-appearance order, each with the indices of its variables.

    `order`: indices into `variables` in forward order (default: the list's order).
    """
    layers = {}
    for index in range(len(variables)) if order is None else order:
        layers.setdefault(owner_path(variables[index]), []).append(index)
    return list(layers.items())


def _matches(path, pattern):
    name = path.rsplit("/", 1)[-1]
    return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(name, pattern)


class UnknownForwardOrder(ValueError):
    """The forward order of a model's layers cannot be determined."""


def select(variables, langevin_layers, model=None):
    """Indices into `variables` of the variables that receive noise, as a frozenset.

    `model`: the model (or layer) the variables belong to, which gives the forward order of a
    fraction; None: the list's order is the forward order.

    Raises:
        ValueError: a name or pattern matches no layer, or a fraction is asked of a model whose
            forward order cannot be determined.
    """
    if langevin_layers is None:
        return frozenset(range(len(variables)))
    if callable(langevin_layers):
        return frozenset(i for i, v in enumerate(variables) if langevin_layers(v))
    if isinstance(langevin_layers, float):
        order = None
        if model is not None:
            try:
                order = forward_order(variables, model)
            except UnknownForwardOrder as error:
                names = [path for path, _ in weighted_layers(variables)][:3]
                raise ValueError(
                    f"Argument `langevin_layers` is a fraction of the layers in forward order, "
                    f"which cannot be determined for {error}. Pass the names (or glob patterns) "
                    f"of the layers nearest the input instead, e.g. langevin_layers={names!r}. "
                    f"Received: langevin_layers={langevin_layers!r}"
                ) from None
        layers = weighted_layers(variables, order)
        count = fraction_count(langevin_layers, len(layers))
        return frozenset(i for _, indices in layers[:count] for i in indices)
    layers = weighted_layers(variables)
    unmatched = [p for p in langevin_layers if not any(_matches(path, p) for path, _ in layers)]
    if unmatched:
        known = ", ".join(path for path, _ in layers[:20])
        raise ValueError(
            f"Argument `langevin_layers` names no layer of the model: {unmatched!r}. "
            f"Layers with trainable variables (first 20): {known}"
        )
    return frozenset(
        i
        for path, indices in layers
        if any(_matches(path, p) for p in langevin_layers)
        for i in indices
    )


# ------------------------------------------------------------------------- forward order


def calling_model(variables, depth=2):
    """The Keras layer among the callers' local variables whose trainable variables contain
    all of `variables` (the smallest such in the nearest frame), or None."""
    wanted = {id(v) for v in variables}
    if not wanted:
        return None
    seen = set()
    frame = sys._getframe(depth)
    while frame is not None:
        found = []
        for value in list(frame.f_locals.values()):
            if isinstance(value, keras.Layer) and id(value) not in seen:
                seen.add(id(value))
                owned = {id(v) for v in value.trainable_variables}
                if wanted <= owned:
                    found.append((len(owned), value))
        if found:
            return min(found, key=lambda pair: pair[0])[1]
        frame = frame.f_back
    return None


def _sublayers(layer):
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is None:
        return []
    return list(flatten(include_self=False, recursive=False))


def _is_graph_model(layer):
    return isinstance(layer, (Functional, keras.Sequential))


def _forward_variables(layer, out):
    """Appends the trainable variables of `layer` to `out` in forward order."""
    if not layer.trainable_variables:
        return
    if _is_graph_model(layer):
        for sublayer in layer.layers:
            _forward_variables(sublayer, out)
        return
    weighted = [sub for sub in _sublayers(layer) if sub.trainable_variables]
    if not weighted:  # a leaf: its own variables
        out.extend(layer.trainable_variables)
        return
    out.extend(_traced_variables(layer))


class _ReadOrder(StatelessScope):
    """A stateless scope that records the variables in the order they are first read."""

    def __init__(self):
        super().__init__()
        self.read = []
        self._ids = set()

    def get_current_value(self, variable):
        if id(variable) not in self._ids:
            self._ids.add(id(variable))
            self.read.append(variable)
        # the variable's own value


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
    recorder = _ReadOrder()

    def call(inputs):
        with recorder:
            return layer(inputs)

    try:
        compute_output_spec(call, specs)
    except Exception as error:  # noqa: BLE001 - any failure means the order is unknown
        raise UnknownForwardOrder(
            f"{_describe(layer)} (its call could not be traced symbolically: "
            f"{type(error).__name__}: {str(error)[:200]})"
        ) from None
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
