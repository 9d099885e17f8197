"""repainter: score and improve text-to-image models by image regeneration.

    >>> import repainter
    >>> result = repainter.run()            # the built-in offline world  # doctest: +SKIP
    >>> result.summary()["models"]          # doctest: +SKIP
    >>> repainter.meta_eval()               # writes VALIDITY.md  # doctest: +SKIP
"""

__version__ = "0.1.0"

import repainter.meta_eval  # noqa: E402, F401  (callable: repainter.meta_eval(...))
from repainter.result import RunResult  # noqa: E402
from repainter.runner import run  # noqa: E402
from repainter.spec import RunSpec, build_spec, load_spec  # noqa: E402

__all__ = ["RunResult", "RunSpec", "build_spec", "load_spec", "meta_eval", "run", "__version__"]
