"""What a metric did, as the run folder records it: its own :meth:`Metric.identity` (model,
weights, preprocessing, resize) plus the repainter version and the versions of the libraries its
module imports.

Case records carry it per metric label (``metrics``), run.json once per label
(:func:`identities_of_records`). Identities are small (a few hundred bytes: a weights entry is a
path and a digest), against a case record of some 10 kB, so the full identity goes into each
record rather than a digest that would need run.json to be read.

>>> from repainter.backends.metrics.psnr import PSNR
>>> ident = metric_identity(PSNR())
>>> ident["resize"].startswith("native"), ident["repainter"] == __version__
(True, True)
>>> "numpy" in ident["libraries"]
True
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import inspect
import json
import sys
from typing import Any

from repainter.version import __version__

#: Import names whose distribution has another name (when the installed metadata cannot tell).
_DISTRIBUTIONS = {"PIL": "pillow", "skimage": "scikit-image", "sklearn": "scikit-learn",
                  "cv2": "opencv-python", "open_clip": "open_clip_torch", "yaml": "pyyaml"}


@functools.cache
def _imported_packages(module_name: str) -> tuple[str, ...]:
    """Top-level packages a module's source imports, at module level or inside functions (lazy
    imports of torch / open_clip count: they are what the metric runs on)."""
    module = sys.modules.get(module_name)
    try:
        tree = ast.parse(inspect.getsource(module)) if module else None
    except (OSError, TypeError, SyntaxError):  # no source to read (frozen, built-in)
        return ()
    names = set()
    for node in ast.walk(tree) if tree else ():
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return tuple(sorted(n for n in names
                        if n not in sys.stdlib_module_names and n not in {"repainter", "__future__"}))


def _version(package: str) -> str | None:
    module = sys.modules.get(package)
    if module is None:  # never imported in this process: it did not run here
        return None
    return _loaded_version(package)


@functools.cache
def _loaded_version(package: str) -> str | None:
    """The installed version of a package this process has imported: read once, since every
    case record asks again (a metadata lookup scans site-packages: milliseconds each)."""
    for dist in (_DISTRIBUTIONS.get(package), package):
        if dist:
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
    version = getattr(sys.modules.get(package), "__version__", None)
    return str(version) if version is not None else None


def _wrapped(obj: Any) -> Any:
    try:
        attrs = vars(obj)
    except TypeError:  # no __dict__: not a wrapper
        return None
    return attrs.get("inner", attrs.get("_inner"))


def library_versions(metric: Any) -> dict[str, str]:
    """Versions of the third-party packages the metric's module imports and this process loaded."""
    inner = metric
    # wrappers (cache, serial, the timing proxy) score with what they wrap; vars() and not
    # getattr, since the timing proxy forwards every missing attribute to its inner
    while (wrapped := _wrapped(inner)) is not None:
        inner = wrapped
    packages = _imported_packages(type(inner).__module__)
    return {p: v for p in packages if (v := _version(p)) is not None}


def metric_identity(metric: Any) -> dict[str, Any]:
    """``metric.identity()`` with the repainter version and its libraries' versions, as JSON
    holds it (tuples as lists, paths as text), so a record read back compares equal."""
    ident = {**metric.identity(), "repainter": __version__, "libraries": library_versions(metric)}
    return json.loads(json.dumps(ident, default=str))


def identities_of_records(records: Any) -> dict[str, Any]:
    """Label -> identity over the case records; a label whose identity differed between cases (a
    resumed run on other library versions) keeps every distinct one, in a list."""
    seen: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        for label, ident in (getattr(record, "metrics", None) or {}).items():
            known = seen.setdefault(label, [])
            if ident not in known:
                known.append(ident)
    return {label: found[0] if len(found) == 1 else found for label, found in sorted(seen.items())}


__all__ = ["identities_of_records", "library_versions", "metric_identity"]
