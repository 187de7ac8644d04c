"""worldmodel's modules import each other without a cycle: read from the source with ``ast``, every import
counts (module level, inside functions, under ``if TYPE_CHECKING``), so a cycle cannot hide in a lazy import."""

from __future__ import annotations

import ast
from pathlib import Path

import worldmodel

PACKAGE_DIR = Path(worldmodel.__file__).parent


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its ``__init__.py``)."""
    modules = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = ("worldmodel", *path.relative_to(PACKAGE_DIR).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(name: str, source: str, modules: dict[str, Path]) -> set[str]:
    """The package's modules that module ``name`` (its ``source``) imports anywhere: for ``from a.b import c`` the
    module ``a.b.c`` if there is one, else ``a.b``; and the packages above an imported module, which Python
    initialises first, except the importer's own packages (already initialising when it runs)."""
    is_package = modules[name].name == "__init__.py"
    targets = set()
    for node in ast.walk(ast.parse(source, filename=str(modules[name]))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importer's package, one level up per extra dot
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in modules else base)
    found = set()
    own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in modules and prefix != name and prefix not in own_packages:
                found.add(prefix)
    return found


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles as [a, b, ..., a], found by a depth-first search (a module reached again while still on the
    search's path closes one): empty exactly when the graph has no cycle (not every cycle is listed)."""
    state: dict[str, str] = {}  # "open" while on the path, "done" after
    path: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_find_cycle_finds_a_lazy_import_cycle() -> None:
    """The checker itself: a cycle through a function-level import and one under TYPE_CHECKING both count."""
    sources = {
        "worldmodel.a": "def f():\n    from worldmodel.b import g\n",
        "worldmodel.b": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from worldmodel import a\n",
    }
    modules = {name: Path(f"{name}.py") for name in sources}
    graph = {name: imported_modules(name, source, modules) for name, source in sources.items()}
    assert graph == {"worldmodel.a": {"worldmodel.b"}, "worldmodel.b": {"worldmodel.a"}}
    assert find_cycles(graph) == [["worldmodel.a", "worldmodel.b", "worldmodel.a"]]
    assert find_cycles({"worldmodel.a": {"worldmodel.b"}, "worldmodel.b": set()}) == []


def test_worldmodel_has_no_import_cycle() -> None:
    modules = module_files()
    assert "worldmodel.models.rssm" in modules and "worldmodel.envs.pixels" in modules
    graph = {name: imported_modules(name, path.read_text(), modules) for name, path in modules.items()}
    assert "worldmodel.models.rssm" in graph["worldmodel.models.world_model"]  # the walk sees imports
    cycles = find_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)
