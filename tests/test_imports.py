"""Imports flow one way: no module of the package takes part in an import cycle.

The walker reads every module's source (no import is executed), collects the package-internal
``import`` / ``from ... import`` statements at any depth — module level, inside functions and under
``if TYPE_CHECKING:``, since a deferred or type-only import is still a dependency — and builds a graph
of module → modules it imports. A cycle is reported as a readable chain ``a → b → c → a``.

The subpackages are layers (core → data → training → models → experiments → course → grading →
cli): a module imports only from its own layer or the layers below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "featureae_lite"


def module_names(package_dir: Path) -> dict[str, Path]:
    """Dotted name → source file of every module under ``package_dir`` (a package ``__init__`` is
    named after its package)."""
    root = package_dir.parent
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _import_nodes(node: ast.AST):
    """Every Import / ImportFrom under ``node``, at any depth (``if TYPE_CHECKING:`` included)."""
    for child in ast.walk(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module of the package, or None (external)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(module: str, modules: dict[str, Path]) -> set[str]:
    """Package-internal modules that ``module`` imports (itself excluded).

    ``from pkg.x import y`` counts as importing ``pkg.x.y`` when that is a module, else ``pkg.x``;
    relative imports are resolved against the module's package.
    """
    path = modules[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            targets = [_known(alias.name, modules) for alias in node.names]
        else:
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [_known(f"{source}.{alias.name}", modules) if f"{source}.{alias.name}" in modules
                       else _known(source, modules) for alias in node.names]
        found.update(t for t in targets if t is not None and t != module)
    return found


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module → package-internal modules it imports, for every module under ``package_dir``."""
    modules = module_names(package_dir)
    return {name: imports_of(name, modules) for name in modules}


CYCLE_LIMIT = 200


def find_cycles(graph: dict[str, set[str]], limit: int = CYCLE_LIMIT) -> list[str]:
    """Every elementary cycle of ``graph`` (up to ``limit``) as a chain ``a → b → c → a``.

    Each cycle is listed once, starting from its alphabetically first module; shorter chains first.
    """
    nodes = sorted(set(graph) | {m for targets in graph.values() for m in targets})
    order = {n: i for i, n in enumerate(nodes)}
    cycles: list[list[str]] = []

    def walk(start: str, path: list[str], on_path: set[str]) -> None:
        for nxt in sorted(graph.get(path[-1], ())):
            if len(cycles) >= limit or order[nxt] < order[start]:
                continue
            if nxt == start:
                cycles.append([*path, start])
            elif nxt not in on_path:
                on_path.add(nxt)
                walk(start, [*path, nxt], on_path)
                on_path.discard(nxt)

    for start in nodes:
        walk(start, [start], {start})
    return [" → ".join(c) for c in sorted(cycles, key=lambda c: (len(c), c))]


LAYERS = ("core", "data", "training", "models", "experiments", "course", "grading", "cli")


def layer(module: str) -> int:
    """Rank of a package module's layer (the package's ``__init__``, the public face, is on top)."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 else len(LAYERS)


def test_layers_import_only_downwards():
    graph = import_graph(PACKAGE_DIR)
    assert {m.split(".")[1] for m in graph if "." in m} == set(LAYERS)
    upward = sorted(f"{m} ({LAYERS[layer(m)] if layer(m) < len(LAYERS) else 'package'}) imports {t} "
                    f"({LAYERS[layer(t)] if layer(t) < len(LAYERS) else 'package'})"
                    for m, targets in graph.items() for t in targets if layer(t) > layer(m))
    assert not upward, "imports that go up a layer:\n" + "\n".join(upward)


def test_package_has_no_import_cycle():
    cycles = find_cycles(import_graph(PACKAGE_DIR))
    count = f"{len(cycles)}{'+' if len(cycles) >= CYCLE_LIMIT else ''}"
    assert not cycles, f"{count} import cycle(s) in featureae_lite:\n" + "\n".join(cycles)


def test_graph_sees_function_level_relative_and_submodule_imports():
    graph = import_graph(PACKAGE_DIR)
    assert "featureae_lite.data.nifti" in graph["featureae_lite.data.cohort"]  # inside a function
    assert "featureae_lite.data.cohort" in graph["featureae_lite.data"]  # __init__ → submodule
    assert all(m.startswith("featureae_lite") for targets in graph.values() for m in targets)


def test_finder_reports_a_deliberate_cycle(tmp_path):
    pkg = tmp_path / "toy"
    (pkg / "sub").mkdir(parents=True)
    sources = {
        "__init__.py": "",
        "a.py": "import os\n\ndef f():\n    from toy import b\n    return b\n",
        "b.py": "from .sub import c\n",
        "sub/__init__.py": "",
        "sub/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from toy import d\n"
                    "else:\n    import toy.a\n",
        "d.py": "from toy.sub.c import x\n",  # c → d under TYPE_CHECKING: a cycle too
        "e.py": "from toy import e\nfrom toy.sub import c\n",  # itself: ignored; package import
        "sub/f.py": "from .. import d\nfrom toy import sub\n",  # relative; sub-package __init__
    }
    for name, text in sources.items():
        (pkg / name).write_text(text)
    graph = import_graph(pkg)
    assert graph["toy.a"] == {"toy.b"} and graph["toy.sub.c"] == {"toy.a", "toy.d"}
    assert graph["toy.e"] == {"toy.sub.c"} and graph["toy.sub.f"] == {"toy.d", "toy.sub"}
    assert find_cycles(graph) == ["toy.d → toy.sub.c → toy.d", "toy.a → toy.b → toy.sub.c → toy.a"]

    hand_made = {"x": {"y"}, "y": {"z", "x"}, "z": {"x"}, "w": {"x"}}
    assert find_cycles(hand_made) == ["x → y → x", "x → y → z → x"]
    assert find_cycles({"p": {"q"}, "q": set()}) == []
