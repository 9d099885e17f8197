"""``repainter meta-eval``: evidence that a run's metrics and the loop can be trusted.

The package is callable, so ``repainter.bench.meta_eval(...)`` runs it while
``repainter.bench.meta_eval.degradations`` etc. stay importable submodules:

    >>> import repainter.bench.meta_eval
    >>> repainter.bench.meta_eval.MetaEvalConfig().seeds
    [0, 1, 2]
    >>> repainter.bench.meta_eval(scenes=4)  # writes runs/meta-eval/VALIDITY.md  # doctest: +SKIP

See repainter.bench.meta_eval.run for what is measured; VALIDITY.md for the latest numbers.
"""

import sys
import types

from repainter.bench.meta_eval.config import MetaEvalConfig
from repainter.bench.meta_eval.run import meta_eval

__all__ = ["MetaEvalConfig", "meta_eval"]


class _CallablePackage(types.ModuleType):
    """``repainter.bench.meta_eval(...)`` is ``repainter.bench.meta_eval.meta_eval(...)``."""

    def __call__(self, *args, **kwargs):
        return meta_eval(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
