"""The package's shape: one folder per concern, imports pointing one way (docs/architecture.md)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hello_kubeflow"
# Lowest first: a unit may import only units before it (docs/architecture.md draws it).
LAYERS = [
    "errors",
    "project",
    "settings",
    "console",
    "retry",
    "http_client",
    "data",
    "model",
    "serving",
    "images",
    "kube",
    "install",
    "deploy",
    "pipeline",
    "gateway",
    "query",
    "compare",
    "kfp",
    "notebook",
    "cli",
]


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    """The hello_kubeflow modules `path` imports, inside functions and for type checks too."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {name for name in found if name.startswith("hello_kubeflow.")}


def _modules() -> dict[str, Path]:
    return {_module(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_folder_and_top_level_module_has_a_layer() -> None:
    units = {_unit(m) for m in _modules()} - {"__init__"}
    assert units == set(LAYERS), "add the new unit to LAYERS and to docs/architecture.md"


def test_imports_point_down_the_layers_only() -> None:
    """Nothing low imports something high, not even inside a function."""
    rank = {unit: i for i, unit in enumerate(LAYERS)}
    upward = []
    for module, path in _modules().items():
        mine = _unit(module)
        for target in _imports(path):
            theirs = _unit(target)
            if theirs in rank and mine in rank and rank[theirs] > rank[mine]:
                upward.append(f"{module} -> {target}")
    assert not upward, upward


def test_no_import_cycles_between_modules() -> None:
    """No module comes back to itself through others, not even by an import in a function."""
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        graph[module] = {t for t in _imports(path) if t in modules} - {module}
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            cycles.append([*trail[trail.index(node) :], node])
            return
        if node in done:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, [*trail, node])
        done.add(node)

    for module in sorted(graph):
        visit(module, [])
    assert not cycles, cycles[:3]
