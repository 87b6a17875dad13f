"""The package's modules import each other without a circle: each layer builds on the ones below it.

Every import of a ``training_code`` module counts, at the top of a file or inside a function (a lazy
import still ties the two modules together), relative or absolute.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "training_code"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path) -> str:
    """The package a relative import in ``path`` starts from."""
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports anywhere in its text."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_of(path).split(".")
                base = base[:len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # "from . import dsl" names a module; "from .arc_loader import Task" names a module's member
            names = [stem] + [f"{stem}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            # "import training_code.grids" and "from training_code.grids import x" both reach the module
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != "training_code":
                found.add(name)
    found.discard(module_name(path))
    return found


def import_graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(f) for f in files}
    return {module_name(f): imported_modules(f, modules) for f in files}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each module that starts one (depth first, iterative), as the path that closes."""
    found, done = [], set()
    for start in sorted(graph):
        if start in done:
            continue
        path, on_path, stack = [start], {start}, [iter(sorted(graph[start]))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                stack.pop()
            elif nxt in on_path:
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in done:
                path.append(nxt)
                on_path.add(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return found


def test_the_walk_sees_relative_absolute_and_lazy_imports():
    graph = import_graph()
    assert "training_code.grids" in graph["training_code.arc_loader"]  # from .grids import ...
    assert "training_code.grids" in graph["training_code.metrics"]  # from training_code.grids import ...
    assert "training_code.induction.dsl" in graph["training_code.induction.programs"]  # from .. import dsl
    assert "training_code.induction.programs.generators" in graph["training_code.induction.programs"]
    assert "training_code.plots" in graph["training_code.report"]  # imported inside a function


def test_a_circle_is_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_the_package_has_no_import_circle():
    found = circles(import_graph())
    assert found == [], "import circles: " + "; ".join(" -> ".join(c) for c in found)
