"""The package's shape: its modules import each other in one direction only.

Imports are read by parsing (`codebase.imported_modules`, the same reader that
decides each job's code files), so imports inside functions and under
`TYPE_CHECKING` count: a cycle hidden there is still a cycle.
"""

from __future__ import annotations

import graphlib

import pytest

from tlrepro.plan import codebase


def package_modules() -> list[str]:
    """Every module of the package, by its dotted name (a package by its own name)."""
    names = []
    for path in sorted(codebase.PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(codebase.PACKAGE_DIR.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def import_cycle(graph: dict[str, frozenset[str]]) -> list[str] | None:
    """One cycle of `graph` (module -> the modules it imports), first module repeated at
    the end; None when it has none."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return None


def test_no_module_of_the_package_imports_one_that_imports_it_back():
    modules = package_modules()
    assert "tlrepro.reporting.tables" in modules and "tlrepro.methods.registry" in modules
    cycle = import_cycle({module: codebase.imported_modules(module) for module in modules})
    assert cycle is None, (
        "import cycle: " + " -> ".join(cycle) + "; move what both sides need into a module "
        "that imports neither (see tlrepro.reporting: results / aggregate / markdown)"
    )


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset()}, None),
        ({"a": frozenset({"b"}), "b": frozenset({"a"})}, {"a", "b"}),
        ({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"})}, {"a", "b", "c"}),
    ],
)
def test_the_cycle_check_finds_direct_and_longer_cycles(graph, expected):
    cycle = import_cycle(graph)
    assert (cycle if cycle is None else set(cycle)) == expected
