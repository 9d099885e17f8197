"""repainter: score and improve text-to-image models by image regeneration.

    >>> import repainter
    >>> result = repainter.run()            # the built-in offline world  # doctest: +SKIP
    >>> result.summary()["models"]          # doctest: +SKIP
"""

__version__ = "0.1.0"

from repainter.result import RunResult  # noqa: E402
from repainter.runner import run  # noqa: E402
from repainter.spec import RunSpec, build_spec, load_spec  # noqa: E402

__all__ = ["RunResult", "RunSpec", "build_spec", "load_spec", "run", "__version__"]
