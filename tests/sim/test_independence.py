"""The bench's independence, checked on the import graph (transitively, within repainter/).

The describer must not reach the T2I model's parser or the world grammar; the truth metric must
not reach the describer's detector (its perception, or the world's image analysis); the T2I
parser must not reach the describer's phrasing; the default selection's metrics see pixels only
(no ground truth, no detector, no renderer); the describer, its perception and the world's image
analysis reach no renderer (neither the flat one nor the painterly one: the detector's shape
prototypes are rasterised by its own code). A new import that breaks one of these fails here.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

import repainter

ROOT = Path(repainter.__file__).resolve().parent


def _module_file(name: str) -> Path | None:
    parts = name.split(".")[1:]
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


@cache
def direct_imports(name: str) -> frozenset[str]:
    """repainter modules ``name`` imports (anywhere in the file, lazy imports included)."""
    path = _module_file(name)
    if path is None:
        return frozenset()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)  # "from pkg import module"
    # every repainter module and the packages above it (their __init__ runs on import)
    out = set()
    for module in found:
        if module.split(".")[0] != "repainter":
            continue
        parts = module.split(".")
        for k in range(1, len(parts) + 1):
            prefix = ".".join(parts[:k])
            if _module_file(prefix) is not None:
                out.add(prefix)
    return frozenset(out)


def reachable(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(direct_imports(module))
    return seen


SIM, WORLD = "repainter.bench.sim", "repainter.bench.world"
RENDERERS = {f"{WORLD}.scene", f"{WORLD}.painterly", f"{WORLD}.renderers"}


@pytest.mark.parametrize(("module", "forbidden"), [
    (f"{SIM}.describer", {f"{SIM}.lexicon", f"{SIM}.t2i", f"{WORLD}.grammar"}),
    (f"{SIM}.truth", {f"{SIM}.perception", f"{SIM}.describer", f"{WORLD}.analysis"}),
    (f"{SIM}.lexicon", {f"{SIM}.phrasing", f"{SIM}.describer"}),
    (f"{SIM}.t2i", {f"{SIM}.phrasing", f"{SIM}.describer", f"{SIM}.perception",
                    f"{WORLD}.grammar"}),
    *[(f"repainter.bench.metrics.{metric}",
       {f"{SIM}.truth", f"{SIM}.perception", f"{SIM}.t2i", f"{WORLD}.analysis", f"{WORLD}.scene"})
      for metric in ("lab_layout", "texture_energy", "region_match")],
    *[(module, RENDERERS) for module in (f"{SIM}.describer", f"{SIM}.perception",
                                         f"{WORLD}.analysis")],
])
def test_forbidden_imports_are_unreachable(module, forbidden):
    reached = reachable(module)
    assert len(reached) > 3  # the walk really follows imports
    assert not reached & forbidden, f"{module} reaches {sorted(reached & forbidden)}"


def test_the_walk_finds_a_known_edge():
    # sanity of the walker itself: the describer does use its own perception and phrasing
    reached = reachable(f"{SIM}.describer")
    assert {f"{SIM}.perception", f"{SIM}.phrasing", f"{WORLD}.analysis"} <= reached
    assert f"{WORLD}.grammar" in reachable(f"{WORLD}.procedural")
    assert {f"{WORLD}.renderers", f"{WORLD}.painterly"} <= reachable(f"{SIM}.t2i") | reachable(
        f"{WORLD}.renderers")
