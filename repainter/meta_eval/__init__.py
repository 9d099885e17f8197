"""``repainter meta-eval``: evidence that a run's metrics and the loop can be trusted.

    >>> from repainter.meta_eval import MetaEvalConfig
    >>> MetaEvalConfig().seeds
    [0, 1, 2]

See repainter.meta_eval.run for what is measured; VALIDITY.md for the latest numbers.
"""

from repainter.meta_eval.config import MetaEvalConfig
from repainter.meta_eval.run import meta_eval

__all__ = ["MetaEvalConfig", "meta_eval"]
