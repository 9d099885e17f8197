"""repainter: score and improve text-to-image models by image regeneration.

    >>> import repainter
    >>> result = repainter.run()            # the built-in offline world  # doctest: +SKIP
    >>> result.summary()["models"]          # doctest: +SKIP

The public names are imported on first use, so ``import repainter`` (and every ``--help``)
does not pay for the graph and model libraries. The meta-evaluation belongs to the simulation
bench (``repainter meta-eval``, :mod:`repainter.bench.meta_eval`), which the core never imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from repainter.version import __version__

_EXPORTS = {
    "RunResult": "repainter.result",
    "run": "repainter.runner",
    "RunSpec": "repainter.spec",
    "build_spec": "repainter.spec",
    "load_spec": "repainter.spec",
}

if TYPE_CHECKING:  # pragma: no cover
    from repainter.result import RunResult
    from repainter.runner import run
    from repainter.spec import RunSpec, build_spec, load_spec


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'repainter' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = ["RunResult", "RunSpec", "build_spec", "load_spec", "run", "__version__"]
