"""The package's import graph, read from the source: subsystems import in one direction only (the torch-only core
below the offline tools, the tools below ROS, the CLI on top) and no modules import each other, neither at module
level nor inside functions."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'worldscape_ros'
# a subsystem may import its own layer and those below it
LAYERS = {'errors': 0, 'fileio': 0, 'model': 1, 'synthetic': 2, 'data': 2, 'train': 3, 'eval': 3,
          'tools': 4, 'envs': 4, 'viewer': 4, 'ros': 5, 'cli': 6}


def module_name(path: Path) -> str:
    return '.'.join(path.relative_to(PACKAGE.parent).with_suffix('').parts).removesuffix('.__init__')


def subsystem(module: str) -> str:
    return module.split('.')[1] if '.' in module else ''


def import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports, wherever the import statement is."""
    modules = {module_name(p): p for p in PACKAGE.rglob('*.py')}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f'{node.module}.{a.name}' for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope='module')
def graph():
    return import_graph()


def test_every_subsystem_has_a_layer(graph):
    assert {subsystem(m) for m in graph} - {''} <= set(LAYERS)


def test_no_subsystem_imports_one_above_it(graph):
    upward = sorted(f'{a} -> {b}' for a, targets in graph.items() for b in targets
                    if subsystem(a) != subsystem(b) and LAYERS.get(subsystem(a), 0) < LAYERS.get(subsystem(b), 0))
    assert upward == []


def test_no_modules_import_each_other_even_inside_functions(graph):
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_through_three_modules():
    assert cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
    assert cycles({'a': {'b'}, 'b': set()}) == []
