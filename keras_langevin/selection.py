"""Which variables receive Langevin noise (Layer Langevin).

Layers are identified from the variables themselves: a Keras 3 variable's ``path`` is
``<owner layer path>/<variable name>`` (nested models give ``outer/inner/dense/kernel``), so the
owner of a variable is its path without the last component. The layers that own trainable
variables are ordered by the first appearance of one of their variables in the list the
optimizer is built with. ``model.fit`` builds it with ``model.trainable_variables``, whose order
is the forward order: Sequential models in order, functional models in topological order
(nearest the input first), nested models flattened in place, subclassed models in the order
their variables were created.

A selection is one of:

* ``None``: every variable;
* a float ``f`` in (0, 1]: the first ``ceil(f * L)`` of the ``L`` weighted layers;
* a list of layer names or glob patterns (``"conv1_*"``, ``"block/dense"``), matched against
  the layer's name and its full path; every entry must match at least one layer;
* a callable ``predicate(variable) -> bool``.

Weightless layers (activations, ``Add``, pooling) are not counted, unlike the reference
implementation of the paper, which took a fraction of every entry of ``model.layers``.
"""

import fnmatch
import math
from numbers import Real


def validate_selection(langevin_layers):
    """Checks `langevin_layers` at construction; returns its normalised form."""
    if langevin_layers is None or callable(langevin_layers):
        return langevin_layers
    if isinstance(langevin_layers, str):
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


def owner_path(variable):
    """The path of the layer that owns `variable` ('' for a variable outside any layer)."""
    path = getattr(variable, "path", None) or variable.name
    return path.rsplit("/", 1)[0] if "/" in path else ""


def weighted_layers(variables):
    """Layer paths in first-appearance order, each with the indices of its variables."""
    layers = {}
    for index, variable in enumerate(variables):
        layers.setdefault(owner_path(variable), []).append(index)
    return list(layers.items())


def _matches(path, pattern):
    name = path.rsplit("/", 1)[-1]
    return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(name, pattern)


def select(variables, langevin_layers):
    """Indices into `variables` of the variables that receive noise, as a frozenset.

    Raises:
        ValueError: a name or pattern matches no layer.
    """
    if langevin_layers is None:
        return frozenset(range(len(variables)))
    if callable(langevin_layers):
        return frozenset(i for i, v in enumerate(variables) if langevin_layers(v))
    layers = weighted_layers(variables)
    if isinstance(langevin_layers, float):
        count = math.ceil(langevin_layers * len(layers) - 1e-9)
        return frozenset(i for _, indices in layers[:count] for i in indices)
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
