"""The engine's layout: no import cycle between its modules, and pages import only its public surface."""
from __future__ import annotations

import ast
import importlib
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PUBLIC = {"engine", "engine.models"}


def _module(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path) -> set[str]:
    """Every engine module `path` imports, at the top or inside a function."""
    mod = _module(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            out.add(target)
            out |= {f"{target}.{a.name}" for a in node.names}      # `from . import safe` names a module
    return {m for m in out if m == "engine" or m.startswith("engine.")}


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in (ROOT / "engine").rglob("*.py")}
    return {m: {t for t in _imports(p) if t in files and t != m and not m.startswith(t + ".")}
            for m, p in files.items()}


def test_no_import_cycle_in_engine():
    graph, state, cycles = _graph(), {}, []

    def visit(m, trail):
        state[m] = "open"
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                cycles.append(trail[trail.index(t):] + [t])
            elif t not in state:
                visit(t, trail + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("path", sorted([*(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py"), ROOT / "app.py"]),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_import_only_the_public_surface(path):
    used = {m for m in _imports(path) if not any(m == f"{p}.{n}" for p in PUBLIC for n in _public_names(p))}
    assert used <= PUBLIC, f"{path.name} imports engine internals: {sorted(used - PUBLIC)}"


def _public_names(package: str) -> list[str]:
    return list(importlib.import_module(package).__all__)


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_every_public_name_resolves(package):
    mod = importlib.import_module(package)
    for name in mod.__all__:
        assert getattr(mod, name) is not None, f"{package}.{name}"
