"""Modules use each other's public names only (issue 13).

A name that starts with an underscore is private to its module: importing it from another
module (``from repainter.x import _helper``) couples the two through an implementation detail,
and a public name imported under a private alias (``import fmt_value as _f``) hides what it is.
What several modules share is made public where it belongs. The check walks the AST of every
module in ``repainter/`` (imports at any depth); importing a private name from one's own
package ``__init__`` or a dunder (``__version__``) is fine.
"""

from __future__ import annotations

import ast
import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "repainter"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def private_imports(path: Path) -> list[str]:
    """``file:line: from x import _y`` for every private name ``path`` imports from another
    repainter module."""
    module = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        source = _absolute(module, path.name == "__init__.py", node)
        if source != "repainter" and not source.startswith("repainter."):
            continue
        for alias in node.names:
            for name in (alias.name, alias.asname or ""):  # "import public as _private" too
                if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
                    continue
                if source == module:
                    continue
                found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: "
                             f"from {source} import {alias.name}"
                             + (f" as {alias.asname}" if alias.asname else ""))
                break
    return found


def test_the_check_finds_a_private_import(tmp_path):
    package = tmp_path / "repainter"
    package.mkdir()
    (package / "a.py").write_text("def f():\n    from repainter.b import _helper, public\n"
                                  "from repainter.c import shown as _hidden\n")
    global ROOT
    saved, ROOT = ROOT, package
    try:
        assert private_imports(package / "a.py") == [
            "repainter/a.py:3: from repainter.c import shown as _hidden",
            "repainter/a.py:2: from repainter.b import _helper"]
    finally:
        ROOT = saved


def test_no_private_names_are_imported_across_modules():
    offenders = [line for path in sorted(ROOT.rglob("*.py")) for line in private_imports(path)]
    assert not offenders, ("private names imported across modules (make them public where "
                           "they belong):\n" + "\n".join(offenders))


@pytest.mark.parametrize("name", [
    "repainter.scoring", "repainter.network", "repainter.version", "repainter.gallery_features",
    "repainter.records.dar", "repainter.components", "repainter.weights",
    "repainter.backends.metrics._preprocess"])
def test_the_shared_modules_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
