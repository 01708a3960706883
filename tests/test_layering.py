"""The layering, read statically from the source: the library never imports the harness, and
no module of either package imports, at its top level, a module that imports it back.

An import inside a function runs when the function is called, after both modules exist, so
only top-level imports (and those in top-level `if`/`try` blocks) are edges here."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("keras_langevin", "applications")


def _modules():
    """`{dotted name: path}` of every module and package of the two packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _top_level_statements(body):
    for node in body:
        yield node
        if isinstance(node, ast.If):
            yield from _top_level_statements(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            blocks = node.body + node.orelse + node.finalbody
            yield from _top_level_statements(blocks + [s for h in node.handlers for s in h.body])


def _imports(name, path, known):
    """The project modules that module `name` imports at its top level. `from p import m`
    counts as an import of the module `p.m` where that is a module, else of `p`."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in _top_level_statements(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                parts = package[: len(package) - node.level + 1]
                module = ".".join(parts + ([module] if module else []))
            for alias in node.names:
                full = f"{module}.{alias.name}"
                found.add(full if full in known else module)
    return {module for module in found if module in known and module != name}


def _graph():
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def _cycles(graph):
    """Every cycle a depth-first search meets, as a list of module names."""
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == "open":
                cycles.append(stack[stack.index(successor) :] + [successor])
            elif successor not in state:
                visit(successor, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def test_the_graph_is_read():
    graph = _graph()
    assert "applications.engine" in graph and "keras_langevin.base" in graph
    assert "keras_langevin" in graph["applications.optimizers"]
    assert "applications.trainer" in graph["applications.engine"]


def test_the_library_never_imports_the_harness():
    graph = _graph()
    wrong = {
        (name, target)
        for name, targets in graph.items()
        if name.startswith("keras_langevin")
        for target in targets
        if target.startswith("applications")
    }
    assert not wrong


def test_no_import_cycle():
    assert _cycles(_graph()) == []


@pytest.mark.parametrize(
    "graph, cycle",
    [
        ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
        ({"a": {"a"}}, ["a", "a"]),
    ],
)
def test_cycles_are_found(graph, cycle):
    assert _cycles(graph) == [cycle]
    assert _cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []
