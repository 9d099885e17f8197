"""The one switch for "no network": weights (:mod:`repainter.weights`) and dataset downloads
(:mod:`repainter.fetch`) both ask :func:`is_offline`, so one variable turns both off.

>>> import os
>>> from unittest import mock
>>> with mock.patch.dict(os.environ, {"HF_HUB_OFFLINE": "1"}):
...     is_offline()
True
>>> with mock.patch.dict(os.environ, {v: "0" for v in OFFLINE_VARIABLES}):
...     is_offline()
False
"""

from __future__ import annotations

import os

#: Any of these set to a true value (1, true, yes, on) means: download nothing.
OFFLINE_VARIABLES = ("REPAINTER_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")

_TRUE = {"1", "true", "yes", "on"}


def is_offline() -> bool:
    """True when the user asked for no network (read from the environment at call time)."""
    return any(os.environ.get(var, "").strip().lower() in _TRUE for var in OFFLINE_VARIABLES)


def offline_reason() -> str:
    """Which variables say offline, for messages: ``"HF_HUB_OFFLINE=1"``, or "" when online."""
    return ", ".join(f"{var}={os.environ[var]}" for var in OFFLINE_VARIABLES
                     if os.environ.get(var, "").strip().lower() in _TRUE)


__all__ = ["OFFLINE_VARIABLES", "is_offline", "offline_reason"]
