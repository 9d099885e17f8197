"""The modules of ``repainter/`` import each other without cycles (issue 13).

Every import counts: module-level, inside functions, under ``if TYPE_CHECKING``, and
``importlib.import_module("repainter....")`` / ``__import__(...)`` with a literal name. An import of a package is an
edge to its ``__init__``: ``from repainter.pkg import name`` is an edge to ``repainter.pkg`` and,
when ``name`` is a submodule, to ``repainter.pkg.name`` too; ``import repainter.pkg.mod`` is an
edge to ``repainter.pkg.mod`` only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "repainter"


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root`` (packages by their __init__)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, name] if name else base)


def imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """The ``repainter`` modules that ``module`` (the file ``path``) imports anywhere."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    targets: set[str] = set()

    def add(name: str) -> None:
        # "repainter.a.b.c" where only "repainter.a.b" is a module -> the closest module above
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            targets.add(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = (_resolve_relative(module, is_package, node.level, node.module)
                    if node.level else node.module or "")
            add(base)  # "from pkg import x" runs pkg/__init__ and reads x from it
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    add(f"{base}.{alias.name}")
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id == "__import__"))):
            add(node.args[0].value)  # a literal name hidden in a call is still an import
    targets.discard(module)
    return targets


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the repainter modules it imports."""
    files = module_files(root)
    known = set(files)
    return {name: imported_modules(name, path, known) for name, path in files.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return cycles


def _cycle_path(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    """One concrete loop through a component, for a readable failure message."""
    inside = set(members)
    start = members[0]
    path, seen = [start], {start}
    while True:
        following = sorted(graph[path[-1]] & inside)
        if start in following and len(path) > 1:
            return [*path, start]
        step = next((m for m in following if m not in seen), None)
        if step is None:
            return [*path, following[0] if following else "?"]
        path.append(step)
        seen.add(step)


def test_the_walker_sees_every_kind_of_import(tmp_path):
    package = tmp_path / "repainter"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from .leaf import x\n")
    (package / "sub" / "leaf.py").write_text("def f():\n    from repainter import other\n")
    (package / "other.py").write_text(
        "import importlib\nfrom typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import repainter.sub\n"
        "def g():\n    return importlib.import_module('repainter.sub.leaf')\n"
        "def h():\n    return __import__('repainter')\n")
    graph = import_graph(package)
    assert graph["repainter.sub"] == {"repainter.sub.leaf"}
    assert graph["repainter.sub.leaf"] == {"repainter", "repainter.other"}
    assert graph["repainter.other"] == {"repainter", "repainter.sub", "repainter.sub.leaf"}
    assert find_cycles(graph) == [["repainter.other", "repainter.sub", "repainter.sub.leaf"]]
    loop = _cycle_path(graph, ["repainter.other", "repainter.sub", "repainter.sub.leaf"])
    assert loop[0] == loop[-1] and all(b in graph[a] for a, b in zip(loop, loop[1:]))


def test_no_import_cycles_among_repainter_modules():
    graph = import_graph()
    assert len(graph) > 100, "the walker found too few modules: wrong root?"
    cycles = find_cycles(graph)
    if cycles:
        lines = [" -> ".join(_cycle_path(graph, members)) + f"  ({len(members)} modules)"
                 for members in cycles]
        pytest.fail("import cycles among repainter modules:\n" + "\n".join(lines))


# -- the bench fence and the package graph (issue 25) --------------------------------------------

BENCH = "repainter.bench"


def _in_bench(module: str) -> bool:
    return module == BENCH or module.startswith(BENCH + ".")


def bench_imports(graph: dict[str, set[str]]) -> list[str]:
    """``core -> bench`` for every import of the bench by a module outside it."""
    return sorted(f"{module} -> {target}" for module, targets in graph.items()
                  if not _in_bench(module) for target in targets if _in_bench(target))


def package_of(module: str) -> str:
    """The top-level subpackage (or module) of ``repainter`` that ``module`` belongs to."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Modules collapsed to their top-level subpackage: ``repainter.backends.t2i.retrieval``
    counts as ``repainter.backends``. The root ``repainter`` (the lazy facade of the public
    names) is left out: ``from repainter.x import y`` names it without depending on it."""
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if module == "repainter":
            continue
        edges = packages.setdefault(package_of(module), set())
        edges.update(package_of(t) for t in targets if t != "repainter")
    for package, edges in packages.items():
        edges.discard(package)
    return packages


def test_the_fence_and_package_checks_see_violations(tmp_path):
    package = tmp_path / "repainter"
    for folder in ("bench", "core", "other"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("from repainter.core import x\n")
    (package / "bench" / "sim.py").write_text("from repainter.core import a\n")
    (package / "core" / "a.py").write_text(
        "def f():\n    import importlib\n    return importlib.import_module('repainter.bench.sim')\n")
    (package / "core" / "b.py").write_text("from repainter.other import c\n")
    (package / "other" / "c.py").write_text("from repainter.core import b\n")
    graph = import_graph(package)
    assert bench_imports(graph) == ["repainter.core.a -> repainter.bench.sim"]
    packages = package_graph(graph)
    assert "repainter" not in packages
    assert find_cycles(packages) == [["repainter.bench", "repainter.core", "repainter.other"]]


def test_the_core_never_imports_the_bench():
    graph = import_graph()
    assert any(_in_bench(m) for m in graph), "no repainter.bench modules found"
    reaching = bench_imports(graph)
    assert not reaching, ("the core imports the simulation bench (it must plug in through the "
                          "registries instead):\n" + "\n".join(reaching))


def test_no_cycles_between_packages():
    packages = package_graph(import_graph())
    assert {"repainter.backends", "repainter.bench", "repainter.graph"} <= set(packages)
    cycles = find_cycles(packages)
    if cycles:
        lines = [" -> ".join(_cycle_path(packages, members)) for members in cycles]
        pytest.fail("import cycles between repainter's packages:\n" + "\n".join(lines))
