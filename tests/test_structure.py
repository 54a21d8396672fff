"""The code's shape: no two modules of one package import each other, directly or through others.

import-linter's layers keep the packages in order; this keeps each package's own modules in order too, so that
a reader can follow any module to the bottom without coming back to where they started. Imports inside
functions count: they are still a dependency, only a hidden one.
"""

import grimp
import pytest

ROOTS = ("hub", "scheduling", "workflows", "connectors")


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(*ROOTS)


def _child(module: str, package: str) -> str | None:
    if not module.startswith(package + "."):
        return None
    return f"{package}.{module[len(package) + 1 :].split('.')[0]}"


def sibling_imports(graph, package: str) -> dict[str, set[str]]:
    """For each child of the package (a module, or a subpackage with everything in it), the siblings it imports."""
    children = graph.find_children(package)
    edges: dict[str, set[str]] = {child: set() for child in children}
    for child in children:
        for module in {child} | graph.find_descendants(child):
            for imported in graph.find_modules_directly_imported_by(module):
                target = _child(imported, package)
                if target in children and target != child:
                    edges[child].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_package_has_an_import_cycle_between_its_modules(graph):
    packages = sorted(module for module in graph.modules if graph.find_children(module))
    assert "hub.models" in packages and "connectors" in packages
    found = {package: cycles(sibling_imports(graph, package)) for package in packages}
    assert {package: groups for package, groups in found.items() if groups} == {}
