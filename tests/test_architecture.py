"""The layout docs/architecture.md describes: no import cycles anywhere in the package
(function-level and TYPE_CHECKING imports included), and imports that point down the layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "mergekit_weightlevel"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

#: Each folder (or top-level module) and the ones it may import, bottom up
#: (docs/architecture.md, "Which way imports point").
ALLOWED = {
    "about": set(),
    "errors": set(),
    "tensor_names": set(),
    "checkpoints": set(),
    "method_configs": set(),
    "machine": set(),
    "reference": set(),
    "numerics": {"errors"},
    "checks": {"errors", "tensor_names"},
    "methods": {"about", "errors", "tensor_names", "numerics", "checks", "registry"},
    "registry": {"checks", "methods"},
    "analyze": {"about", "errors", "tensor_names", "numerics", "checks"},
    "evaluation": {"about", "errors", "checks"},
    "publishing": {"about", "errors", "checks", "methods", "registry", "analyze", "evaluation"},
    "running": {
        "about",
        "errors",
        "checks",
        "method_configs",
        "methods",
        "numerics",
        "registry",
        "publishing",
        "evaluation",
    },
    "timber_sweep": {"running"},
    "distributed": {"errors", "analyze", "running", "evaluation"},
    "demo": {
        "errors",
        "checkpoints",
        "method_configs",
        "reference",
        "analyze",
        "methods",
        "numerics",
        "running",
    },
    "toy": {
        "about",
        "errors",
        "checkpoints",
        "machine",
        "method_configs",
        "analyze",
        "demo",
        "methods",
        "numerics",
        "running",
        "evaluation",
    },
    "cli": {
        "about",
        "errors",
        "analyze",
        "demo",
        "publishing",
        "registry",
        "running",
        "evaluation",
        "distributed",
    },
    "__init__": {"about", "registry", "running"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in ROOT.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports anywhere (function level included)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {module for module in found if module in known and module != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, set(known)) for name, path in known.items()}


def test_the_walk_sees_function_level_imports(graph):
    # running.output_folder imports publishing.card inside a function.
    assert f"{PACKAGE}.publishing.card" in graph[f"{PACKAGE}.running.output_folder"]


def test_no_import_cycle_anywhere(graph):
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert cycles == []


def layer(module: str) -> str:
    rest = module.removeprefix(PACKAGE).lstrip(".")
    return rest.split(".")[0] if rest else "__init__"


def test_imports_point_down_the_layers(graph):
    wrong = sorted(
        f"{module} imports {other}"
        for module, imported in graph.items()
        for other in imported
        if layer(other) != layer(module) and layer(other) not in ALLOWED[layer(module)]
    )
    assert wrong == []


def test_every_folder_is_in_the_map():
    assert {layer(name) for name in modules()} <= set(ALLOWED)


#: Where a method's name may be written out: its own home, the light index of names, and the
#: places that use methods as a user does (the standard configs, the demo, the toy family).
NAMES_ALLOWED_IN = ("methods", "about", "method_configs", "demo", "toy")


def test_no_module_outside_methods_names_a_method():
    """A method's identity lives in its own module (its declaration); everything else reads it."""
    from mergekit_weightlevel.about import METHOD_NAMES

    found = []
    for name, path in modules().items():
        if name.split(".")[1] in NAMES_ALLOWED_IN if "." in name else True:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in METHOD_NAMES:
                found.append(f"{name}:{node.lineno} {node.value!r}")
    assert not found
