"""Imports point down the layers, and there is no import cycle (issue 16; docs/architecture.md).

Every module of ``smfsym/`` is given a layer; a module may import from its own layer or a lower
one. The graph is read from the source (``ast``; imports inside functions count too), so the test
needs nothing imported. ``BACK_EDGES`` and ``KNOWN_CYCLES`` are empty since the layered layout of
issue 16, and must stay so.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "smfsym"

#: Layers from the bottom up; a module's layer is that of its longest listed prefix.
LAYERS = [
    ("base", ["smfsym._checks", "smfsym._fs", "smfsym._version", "smfsym._aliases", "smfsym.limits", "smfsym.backends",
              "smfsym.spec.expr"]),
    ("data", ["smfsym.data"]),
    ("symbolic", ["smfsym.symbolic", "smfsym.meanfield.problem", "smfsym.meanfield.latex"]),
    ("numerics", ["smfsym.numerics", "smfsym.meanfield.factored", "smfsym.meanfield.kernel"]),
    ("montecarlo", ["smfsym.montecarlo", "smfsym.engine"]),
    ("simulation", ["smfsym.simulation", "smfsym.optimizers", "smfsym.meanfield.particles", "smfsym.meanfield.data",
                    "smfsym.meanfield.options",
                    "smfsym.meanfield.observables", "smfsym.meanfield.result", "smfsym.meanfield.sgd",
                    "smfsym.meanfield.ddsmf", "smfsym.meanfield.limit", "smfsym.meanfield.linearisation",
                    "smfsym.meanfield.device"]),
    ("studies", ["smfsym.studies", "smfsym.meanfield"]),
    ("io", ["smfsym.io"]),
    ("spec", ["smfsym.spec"]),
    ("interface", ["smfsym.cli", "smfsym.__main__", "smfsym"]),
]

#: Imports that point up a layer, as (importer, imported): none is left, and none may come back.
BACK_EDGES: set = set()


def modules() -> dict:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _targets(mods: dict, importer: str, node) -> list:
    is_pkg = mods[importer].name == "__init__.py"
    package = importer if is_pkg else importer.rpartition(".")[0]
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        names = [f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module for a in node.names]
    return [n for n in names if n in mods and n != importer]


def import_graph() -> dict:
    """Module -> the modules its imports run: each target, and the ``__init__`` of every package above
    it (importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first), except the importer's own."""
    mods = modules()
    graph = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(mods, name, node):
                    graph[name].add(target)
                    parts = target.split(".")
                    graph[name].update(p for p in (".".join(parts[:k]) for k in range(1, len(parts)))
                                       if p in mods and p != name and not name.startswith(p + "."))
    return graph


def layer_of(module: str) -> int:
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if module == p or (p != "smfsym" and module.startswith(p + ".")):  # the package itself: exactly
                if best is None or len(p) > best[1]:
                    best = (rank, len(p))
    assert best is not None, f"module {module} has no layer: add it to LAYERS in tests/package/test_layers.py"
    return best[0]


def test_every_module_has_a_layer():
    for m in modules():
        layer_of(m)


def test_imports_point_down():
    graph = import_graph()
    up = {(a, b) for a, targets in graph.items() for b in targets
          if layer_of(b) > layer_of(a) and not (a == "smfsym" or b.startswith(a + "."))}
    new = up - BACK_EDGES
    gone = BACK_EDGES - up
    assert not new, f"imports pointing up a layer (see docs/architecture.md): {sorted(new)}"
    assert not gone, f"these back-edges are gone: delete them from BACK_EDGES: {sorted(gone)}"


def cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_a_cycle_through_a_package_init_is_seen():
    """meanfield.study -> studies.storage runs studies/__init__, which imported studies.cost, which
    imported meanfield.study: a cycle at run time with no direct edge back (found this way)."""
    graph = import_graph()
    assert "smfsym.studies" in graph["smfsym.meanfield.study"]  # the package's __init__ runs first


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    """Importing ``a.sub`` runs ``a/__init__``, so a package's re-exports are edges too."""
    found = cycles(import_graph())
    assert found == KNOWN_CYCLES, f"import cycles (see docs/architecture.md): {found}"


#: Import cycles: none is left, and none may come back.
KNOWN_CYCLES: list = []
