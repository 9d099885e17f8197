"""How the report writes numbers: scores, signed differences, p-values and durations.

    >>> fmt(0.12345), fmt(12.5), fmt(None), fmt_signed(0.1), fmt_p(0.0001), fmt_seconds(150)
    ('0.123', '12.50', '–', '+0.100', '<0.001', '2.5 min')
"""

from __future__ import annotations

import math
from typing import Any


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if abs(value) >= 10:
            return f"{value:.{max(1, digits - 1)}f}"
        return f"{value:.{digits}f}"
    return str(value)


def fmt_signed(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    return ("+" if value >= 0 else "") + fmt(value, digits)


def fmt_p(value: Any) -> str:
    if value is None:
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3g}"


def fmt_seconds(value: Any) -> str:
    if value is None:
        return "–"
    value = float(value)
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"
