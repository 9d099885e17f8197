"""Ladders of simulated T2I models whose true order is known, and their true quality.

A **nested ladder** starts from the default ``sim`` model and raises one failure rate per rung
(each rung keeps the failures of the rung above it), so every rung is truly worse than the one
before. The **zoo** mixes failure modes across models; its true order is by
:func:`true_quality`, the expected ``scene_truth`` of a model given oracle prompts (the ground
truth written in the describer's language, :func:`oracle_prompt`), estimated by simulating the
model's draws - no detector and no image is involved.

>>> ladder = ladders()["layout"]
>>> ladder.nested, [m["label"] for m in ladder.models][:2]
(True, ['layout-0', 'layout-1'])
>>> oracle_prompt({"background": {"color": "white", "rgb": [250, 250, 250]}, "objects": [
...     {"shape": "star", "color": "dark red", "rgb": [150, 25, 25], "size": 0.07, "x": 0.3,
...      "y": 0.12}]})
'A small dark red starburst at the top left-hand, on a snow-white background'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import numpy as np

from repainter.sim.describer import oracle_plan
from repainter.sim.phrasing import write_prompt
from repainter.sim.t2i import SimT2I
from repainter.sim.truth import scene_truth


@dataclass(frozen=True)
class Ladder:
    name: str
    description: str
    nested: bool
    #: ComponentSpec dicts ``{"name": "sim", "label": ..., "params": {...}}``, best -> worst.
    models: tuple[dict, ...]


def _nested(name: str, description: str, steps: list[dict]) -> Ladder:
    params: dict = {}
    models = [{"name": "sim", "label": f"{name}-0", "params": {}}]
    for k, step in enumerate(steps, 1):
        params = {**params, **step}
        models.append({"name": "sim", "label": f"{name}-{k}", "params": dict(params)})
    return Ladder(name, description, True, tuple(models))


#: A model that makes none of the failures (it still knows only its own lexicon).
FAITHFUL = {"vocabulary": 1.0, "order_drop": 0.0, "binding_leak": 0.0, "count_error": 0.0,
            "spatial_error": 0.0, "background_bias": 0.0, "style_bias": 0.0}

#: The zoo's models, in no particular order (its true order comes from :func:`true_quality`);
#: adjacent true qualities differ by 0.07 or more.
ZOO = {
    "faithful": FAITHFUL,
    "faithful-small-vocabulary": {**FAITHFUL, "vocabulary": 0.2},
    "weak-layout": {"spatial_error": 0.6, "count_error": 0.3},
    "careless": {"order_drop": 0.4, "binding_leak": 0.5, "vocabulary": 0.3},
    "short-context": {"token_budget": 10},
}

#: A zoo of close models (adjacent true qualities 0.02-0.06 apart): closer than the loop's
#: repairs differ between failure modes, so the loop may reorder them (see SIM_LADDERS.md).
ZOO_CLOSE = {
    "small-vocabulary": {"vocabulary": 0.0},
    "leaky-binding": {"binding_leak": 0.6},
    "short-context-14": {"token_budget": 14},
    "weak-layout": {"spatial_error": 0.6, "count_error": 0.3},
    "biased": {"background_bias": 0.5, "style_bias": 0.6},
    "careless": {"order_drop": 0.4, "binding_leak": 0.5, "vocabulary": 0.3},
}


def _zoo(name: str, description: str, models: dict[str, dict]) -> Ladder:
    ranked = sorted(models, key=lambda label: -true_quality(models[label]))
    return Ladder(name, description, False,
                  tuple({"name": "sim", "label": label, "params": dict(models[label])}
                        for label in ranked))


def ladders() -> dict[str, Ladder]:
    """Two nested ladders (``layout``, ``attributes``) and two non-nested zoos (``zoo``,
    ``zoo-close``), each ordered best -> worst."""
    layout = _nested("layout", "places, counts and word order: spatial_error 0.6, then "
                     "count_error 0.3, order_drop 0.3, token_budget 24",
                     [{"spatial_error": 0.6}, {"count_error": 0.3}, {"order_drop": 0.3},
                      {"token_budget": 24}])
    attributes = _nested("attributes", "what objects look like: binding_leak 0.6, then "
                         "background_bias 0.8, style_bias 1.0, vocabulary 0.2",
                         [{"binding_leak": 0.6}, {"background_bias": 0.8}, {"style_bias": 1.0},
                          {"vocabulary": 0.2}])
    return {"layout": layout, "attributes": attributes,
            "zoo": _zoo("zoo", "mixed failure modes, true qualities 0.07+ apart", ZOO),
            "zoo-close": _zoo("zoo-close", "mixed failure modes, true qualities 0.02-0.06 apart",
                              ZOO_CLOSE)}


def oracle_prompt(scene: dict) -> str:
    """The best prompt from a ground-truth scene (a ``SceneSpec`` dict), in the describer's
    language (its default idiolect), at the describer's granularity."""
    return write_prompt(oracle_plan(scene), idiolect=0)


@cache
def _world_scenes() -> tuple[dict, ...]:
    from repainter.world.dataset import WorldDataset

    return tuple(item.load().ground_truth for item in WorldDataset().items())


def true_quality(params: dict, references: Iterable[dict] | None = None,
                 seeds: Iterable[int] = (0, 1, 2)) -> float:
    """Expected ``scene_truth`` of ``SimT2I(**params)`` with oracle prompts, by simulation.

    ``references``: ground-truth scenes (``SceneSpec`` dicts, or ``Reference`` objects whose
    ``ground_truth`` is one; default: the bundled world's 32 scenes).
    """
    model = SimT2I(**params)
    scenes = [getattr(r, "ground_truth", r) for r in references] if references is not None \
        else list(_world_scenes())
    if any(not isinstance(scene, dict) for scene in scenes):
        raise ValueError("true_quality needs ground-truth scenes (world references)")
    values = [scene_truth(scene, model.draw(oracle_prompt(scene), seed)[0])
              for scene in scenes for seed in seeds]
    return float(np.mean(values))
