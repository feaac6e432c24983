"""The package's layout: a public facade over private modules, without import cycles.

The imports are read from the source (``ast``), all of them: at module level, inside
functions (the lazy ones) and under ``TYPE_CHECKING``, so a cycle hidden in a function
counts as one.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import xcrop

ROOT = Path(xcrop.__file__).parent
#: The public modules besides the facade; everything else under xcrop/ is private.
PUBLIC = {"xcrop", "xcrop.plot", "xcrop.errors", "xcrop.datasets"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str]]:
    """(imported module, imported name or "") for every import of an xcrop module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                if full in modules:  # from . import _module
                    found.append((full, ""))
                elif target in modules:
                    found.append((target, alias.name))
        elif isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name in modules]
    return [(t, n) for t, n in found if t != name]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {t for t, _ in _imports(name, path, modules)} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected sets of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_xcrop_modules():
    cycles = _cycles(_graph())
    assert not cycles, f"import cycles (each set imports itself through the others): {cycles}"


def test_the_facade_sits_on_top_nothing_imports_it():
    importers = sorted(name for name, targets in _graph().items() if "xcrop" in targets)
    assert importers == [], f"{importers} import the facade: import the private module instead"


def test_no_module_imports_another_modules_private_names():
    modules = _modules()
    private = [
        f"{name} imports {target}.{imported}"
        for name, path in modules.items()
        for target, imported in _imports(name, path, modules)
        if imported.startswith("_")
    ]
    assert not private, private


def test_implementation_modules_are_private():
    public = {
        name
        for name in _modules()
        if not any(part.startswith("_") for part in name.split("."))
        and not name.startswith("xcrop.datasets.")
    }
    assert public == PUBLIC


@pytest.mark.parametrize("name", sorted(PUBLIC - {"xcrop"}))
def test_no_public_module_is_shadowed_by_a_function(name):
    module = importlib.import_module(name)
    assert getattr(xcrop, name.rpartition(".")[2]) is module


def test_every_public_name_resolves_and_no_private_module_is_a_public_attribute():
    for name in xcrop.__all__:
        assert getattr(xcrop, name) is not None, name
    shadowing = [
        info.name
        for info in pkgutil.iter_modules(xcrop.__path__)
        if not info.name.startswith("_") and f"xcrop.{info.name}" not in PUBLIC
    ]
    assert shadowing == []


def test_dir_lists_the_public_api_lazy_names_included_and_nothing_else():
    names = set(dir(xcrop))
    assert {"train", "predict", "MultiHeadLSTM", "run_demo", "composite", "plot"} <= names
    assert not names & {"TYPE_CHECKING", "annotations", "missing_extra", "VERSION"}
    assert names == {*xcrop.__all__, "__version__", "plot", "datasets", "errors"}


if __name__ == "__main__":  # the module graph: .venv/bin/python tests/test_layout.py
    graph = _graph()
    for name in sorted(graph):
        print(f"{name} -> {', '.join(sorted(graph[name])) or '-'}")
    print("cycles:", _cycles(graph) or "none")
