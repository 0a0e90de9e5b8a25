"""The import graph of a package, read with ``ast`` (every ``import`` counts: at module level, inside functions and
under ``TYPE_CHECKING``), and the checks the architecture test makes of it: no circle, and no import from a lower wing
into a higher one."""

from __future__ import annotations

import ast
from pathlib import Path

WING_LEVELS = {"common": 0, "lstm": 1, "format": 2, "zoos": 3, "hub": 4, "builder": 5, "release": 5, "models": 5,
               "experiments": 6}
"""Each wing of ``rnn_zoos`` and its level: a module may import its own wing and wings of a lower level only. The facade
(``rnn_zoos/__init__.py``), ``cli`` and ``auto_classes`` stand above every wing."""
FACADE_LEVEL = 7


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package ``root / package`` by dotted name (a package by its ``__init__``)."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imports(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (``from P import name`` counts as importing ``P.name`` when
    that is a module, else ``P``)."""
    modules = module_names(root, package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        base = name.split(".") if is_package else name.split(".")[:-1]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = base[: len(base) - node.level + 1]
                    target = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    submodule = f"{target}.{alias.name}"
                    found.add(submodule if submodule in modules else target)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {target for target in found if target in modules and target != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph``: its strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def wing(module: str) -> str | None:
    """The wing of ``rnn_zoos.WING...``; None for the facade and the top-level modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in WING_LEVELS else None


def level(module: str) -> int:
    """The level of ``module``'s wing (:data:`WING_LEVELS`), :data:`FACADE_LEVEL` above them all."""
    name = wing(module)
    return FACADE_LEVEL if name is None else WING_LEVELS[name]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``A -> B`` for every import of a module ``B`` of another wing that is not of a lower level than ``A``'s."""
    return sorted(f"{source} -> {target}" for source, targets in graph.items() for target in targets
                  if wing(source) != wing(target) and level(target) >= level(source))
