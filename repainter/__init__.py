"""repainter: score and improve text-to-image models by image regeneration.

    >>> import repainter
    >>> result = repainter.run()            # the built-in offline world  # doctest: +SKIP
    >>> result.summary()["models"]          # doctest: +SKIP
    >>> repainter.meta_eval()               # writes VALIDITY.md  # doctest: +SKIP
"""

__version__ = "0.1.0"

from repainter.result import RunResult  # noqa: E402
from repainter.runner import run  # noqa: E402
from repainter.spec import RunSpec, build_spec, load_spec  # noqa: E402

__all__ = ["RunResult", "RunSpec", "build_spec", "load_spec", "meta_eval", "run", "__version__"]


def __getattr__(name: str):
    """``repainter.meta_eval`` (a callable package) is imported on first use: importing
    repainter, or a module inside it, never loads the meta-evaluation and what it reaches."""
    if name == "meta_eval":
        import importlib

        return importlib.import_module("repainter.meta_eval")
    raise AttributeError(f"module 'repainter' has no attribute {name!r}")
