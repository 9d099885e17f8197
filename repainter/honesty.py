"""Honest defaults on other data: the offline world's models only understand the world's scenes.

The ``procedural`` T2I model draws what a world prompt names and the ``scene-analyst`` reads the
world's shapes; on photos their scores say nothing about real models. A run that pairs them with
another dataset gets a warning in the terminal, in run.json (``warnings``) and as a banner in the
report, and ``export-preferences`` refuses it unless forced.

    >>> from repainter.spec import RunSpec
    >>> offline_world_warnings(RunSpec())
    []
    >>> offline_world_warnings(RunSpec(dataset={"name": "folder", "params": {"path": "."}}))[0][:40]
    "the offline world's models (procedural, "
"""

from __future__ import annotations

from typing import Any

#: Components that only understand scenes of the built-in world (``sim`` / ``sim-describer``:
#: the simulation bench's T2I zoo and describer).
OFFLINE_WORLD_COMPONENTS = {"procedural", "scene-analyst", "sim", "sim-describer"}
#: Datasets made of the world's scenes.
WORLD_DATASETS = {"world"}

WARNING = ("the offline world's models ({names}) only understand the world's scenes, not dataset "
           "{dataset!r}; their scores here mean nothing about real models: use real models for "
           "photos (see README, 'Use real models')")


def offline_world_warnings(spec: Any) -> list[str]:
    """The warning for ``spec`` (a RunSpec) when it runs offline-world models on other data."""
    if spec.dataset.name in WORLD_DATASETS:
        return []
    used = sorted({c.name for c in [*spec.t2i, *spec.mllms]} & OFFLINE_WORLD_COMPONENTS)
    if not used:
        return []
    return [WARNING.format(names=", ".join(used), dataset=spec.dataset.name)]
