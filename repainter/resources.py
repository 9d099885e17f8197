"""Locate the repository-level ``prompts/`` and ``datasets/`` folders.

In a source checkout (and an editable install) they sit beside the package; a wheel carries copies
under ``repainter/_resources`` (see pyproject's force-include).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def resource_dir(name: str) -> Path:
    for candidate in (_PACKAGE / "_resources" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"repainter resource folder {name!r} not found next to {_PACKAGE}")
