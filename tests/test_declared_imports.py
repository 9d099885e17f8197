"""Every third-party import of ``repainter/`` is declared in pyproject.toml (issue 24).

Read statically (ast), so it needs no extra installed to judge an import it can map. The rule:

* a module imported at load by a base module (one not in ``.ci/base_imports.py``'s
  ``EXTRA_ONLY``) comes from a base dependency;
* a module an extra-only module imports at load comes from the base or that module's extra;
* any other import (inside a function, under ``try``, ``importlib.import_module("x")``) comes
  from the base or some extra: whoever reaches it installed what it needs.

``.ci/base_imports.py`` is the dynamic half: it imports every base module in a venv holding only
the base install (``.ci/run`` runs it).
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "repainter"

#: Import names whose distribution is named otherwise, for when it is not installed here.
NOT_INSTALLED_NAMES = {"PIL": "pillow", "yaml": "pyyaml", "skimage": "scikit-image",
                       "open_clip": "open_clip_torch", "mlflow": "mlflow-skinny"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(requirements: list[str]) -> set[str]:
    return {_normalise(re.match(r"[A-Za-z0-9._-]+", req.strip()).group(0)) for req in requirements}


def declared(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, set[str]]:
    """"base" and each extra -> the distributions it declares (normalised names)."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    groups = {"base": _requirement_names(project["dependencies"])}
    for extra, requirements in project.get("optional-dependencies", {}).items():
        groups[extra] = _requirement_names(requirements) - {"repainter"}
    return groups


def extra_only() -> dict[str, tuple[str, str]]:
    spec = importlib.util.spec_from_file_location("base_imports", ROOT / ".ci" / "base_imports.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EXTRA_ONLY


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_module_literal(node: ast.AST) -> str | None:
    """``importlib.import_module("x")`` / ``__import__("x")`` with a literal name."""
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)):
        return None
    func = node.func
    if ((isinstance(func, ast.Attribute) and func.attr == "import_module")
            or (isinstance(func, ast.Name) and func.id == "__import__")):
        return node.args[0].value
    return None


def imports(tree: ast.Module) -> list[tuple[str, bool, int]]:
    """(dotted name, imported at load, line) for each absolute import in the module.

    "At load" means a statement that runs when the module is imported and whose failure is not
    caught: module level, in a class body, in an ``if`` or ``with`` there; not in a function,
    not in ``try`` (the module has a fallback) and not under ``if TYPE_CHECKING``."""
    found: list[tuple[str, bool, int]] = []

    def visit(node: ast.AST, at_load: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name, at_load, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, at_load, node.lineno))
        elif (literal := _import_module_literal(node)) is not None:
            found.append((literal, False, node.lineno))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.Try):
            at_load = False
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, at_load)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, at_load)

    visit(tree, True)
    return found


def is_third_party(name: str) -> bool:
    top = name.partition(".")[0]
    return top not in sys.stdlib_module_names and top not in {"repainter", "__future__"}


@cache
def _top_level_owners() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


@cache
def _files_of(distribution: str) -> frozenset[str]:
    files = importlib.metadata.distribution(distribution).files or []
    return frozenset(str(f).replace("\\", "/") for f in files)


def distributions(name: str) -> set[str]:
    """The installed distributions that can provide the module ``name`` (normalised).

    Several distributions share a namespace (``langgraph.checkpoint.sqlite`` is not in
    ``langgraph``): the one whose files hold the longest prefix of the dotted name wins."""
    top = name.partition(".")[0]
    owners = _top_level_owners().get(top, [])
    if not owners:
        return {_normalise(NOT_INSTALLED_NAMES.get(top, top))}
    parts = name.split(".")
    for length in range(len(parts), 0, -1):
        stem = "/".join(parts[:length])
        holders = {o for o in owners if any(f.startswith((stem + "/", stem + ".py"))
                                            for f in _files_of(o))}
        if holders:
            return {_normalise(o) for o in holders}
    return {_normalise(o) for o in owners}


def problems(package: Path = PACKAGE) -> list[str]:
    """Each third-party import in ``package`` (a ``repainter`` folder) not declared where the rule
    above wants it."""
    groups = declared()
    needing_extra = extra_only()
    anywhere = set().union(*groups.values())
    found = []
    for path in sorted(package.rglob("*.py")):
        module = module_name(path, package.parent)
        extra = needing_extra.get(module, (None, ""))[0]
        for name, at_load, line in imports(ast.parse(path.read_text(encoding="utf-8"))):
            if not is_third_party(name):
                continue
            allowed = (groups["base"] | groups.get(extra, set()) if at_load else anywhere)
            where = f"base or [{extra}]" if at_load and extra else "base" if at_load else "any extra"
            if not distributions(name) & allowed:
                found.append(f"{path.relative_to(package.parent)}:{line} imports {name} "
                             f"({' / '.join(sorted(distributions(name)))}), not declared in {where}")
    return found


def test_every_import_is_declared_where_it_is_needed():
    assert problems() == []


def test_extra_only_modules_exist_and_need_their_extra_at_load():
    """A stale entry would keep a module out of the base-install import check for nothing."""
    groups = declared()
    needing_extra = extra_only()
    for module, (extra, why) in needing_extra.items():
        path = ROOT / (module.replace(".", "/") + ".py")
        assert path.is_file(), f"{module} is listed in EXTRA_ONLY but has no file"
        assert extra in groups and why, module
        at_load = [name for name, load, _ in imports(ast.parse(path.read_text(encoding="utf-8")))
                   if load]
        assert any(name in needing_extra or (is_third_party(name) and distributions(name)
                                             & (groups[extra] - groups["base"]))
                   for name in at_load), f"{module} imports nothing of [{extra}] at load"


def test_no_base_module_imports_an_extra_only_module_at_load():
    """Otherwise that module would need the extra too and .ci/base_imports.py would fail."""
    needing_extra = extra_only()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        if module in needing_extra:
            continue
        for name, at_load, line in imports(ast.parse(path.read_text(encoding="utf-8"))):
            assert not (at_load and name in needing_extra), f"{module}:{line} imports {name}"


@pytest.mark.parametrize(("source", "line", "verdict"), [
    ("import click\n", 1, "base"),
    ("import yaml\n\ndef f():\n    import click\n", 4, "any extra"),
    ("try:\n    import click\nexcept ImportError:\n    pass\n", 2, "any extra"),
    ("import importlib\nimportlib.import_module('click')\n", 2, "any extra"),
])
def test_an_undeclared_import_is_named(tmp_path, source, line, verdict):
    """click stands for the next undeclared import (recent typer no longer installs it)."""
    assert "click" not in set().union(*declared().values())
    package = tmp_path / "repainter"
    package.mkdir()
    (package / "cli.py").write_text(source)
    assert problems(package) == [f"repainter/cli.py:{line} imports click (click), "
                                 f"not declared in {verdict}"]


def test_an_extra_only_module_may_import_its_extra_at_load(tmp_path):
    folder = tmp_path / "repainter" / "backends" / "metrics"
    folder.mkdir(parents=True)
    (folder / "dinov2.py").write_text("import torch\nimport transformers\n")
    (folder / "ssim.py").write_text("import torch\n")
    assert problems(tmp_path / "repainter") == [
        "repainter/backends/metrics/ssim.py:1 imports torch (torch), not declared in base"]
