"""The reference image: the one type that datasets, galleries, backends, metrics, DAR and the
bench all pass around, kept in a module of its own at the bottom of the package so that none of
them imports another for it (no package-level cycles; see tests/test_import_graph.py).

:class:`Reference` is also importable from :mod:`repainter.backends.base`, where backends
have always found it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image


@dataclass
class Reference:
    """One reference image of a dataset, with what is known about it."""

    id: str
    image: Image.Image
    category: str = "default"
    ground_truth: dict[str, Any] | None = None
    source: str = ""
    license: str = ""
    # Preceding images / texts (GILL-style stories); empty for single-image datasets.
    context: list[dict[str, Any]] = field(default_factory=list)


__all__ = ["Reference"]
