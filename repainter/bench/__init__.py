"""The simulation bench: offline models of known quality, and the worlds they draw, kept apart
from the product core.

The core (spec, records, graph, real-model backends, metrics for real images, runner, store,
report, CLI) never imports this package; the bench plugs in the way a third-party package
would: :func:`register` is the ``repainter.plugins`` entry point (``pyproject.toml``), and the
``meta-eval`` command is a ``repainter.commands`` entry point (:mod:`repainter.bench.cli`).
``RunSpec()`` names the bench's components by string only.

* :mod:`~repainter.bench.sim` - the simulated T2I model (``sim``), describer
  (``sim-describer``), the ``scene_truth`` metric and the zoo of models of known order;
* :mod:`~repainter.bench.metrics` - weight-free scene metrics tuned on the sim's flat-coloured
  object scenes (``lab_layout``, ``texture_energy``, ``region_match``);
* :mod:`~repainter.bench.world` - the procedural world: its scenes and grammar, the ``world``
  dataset and the backends built on it (``procedural`` T2I, ``scene-analyst`` MLLM,
  ``object_f1``), and the world's readers for galleries (the retrieval backend's ``scene``
  method, the ``scene_layout`` embedding, DAR's ``concepts`` / ``scene`` text scorers and
  built-in dialogues, self-feedback's background reader);
* :mod:`~repainter.bench.meta_eval` - ladders of degraded models and whether the metrics rank
  them in their known order (VALIDITY.md).

Two simulators remain on purpose: the ``sim`` models are the default run and the meta-
evaluation's ladders; the older ``world`` one (``procedural`` / ``scene-analyst``) stays
because diffusion-augmented retrieval (its dialogues, default gallery and scorers), the
retrieval galleries' ``scene`` method and ``preset: world`` use it, and the sim itself draws
and perceives through the world's scenes, vocabulary and analysis.
"""

from __future__ import annotations

#: name -> ("module:attr" under repainter.bench, traits), per registry.
_T2I = {
    "sim": ("sim.t2i:SimT2I", {"bench", "draws_scene"}),
    "procedural": ("world.procedural:ProceduralT2I", {"bench"}),
}
_MLLM = {
    "sim-describer": ("sim.describer:SimDescriber", {"bench"}),
    "scene-analyst": ("world.scene_analyst:SceneAnalyst", {"bench"}),
}
# The weight-free scene metrics were made and tuned for the bench's flat-coloured object
# scenes (VALIDITY.md part b): their scores say nothing about real models, hence ``bench``.
_METRICS = {
    "scene_truth": ("sim.truth:SceneTruth", {"bench", "needs_drawn_scene"}),
    "object_f1": ("world.object_f1:ObjectF1", {"bench"}),
    "lab_layout": ("metrics.lab_layout:LabLayoutSimilarity", {"bench"}),
    "texture_energy": ("metrics.texture_energy:TextureEnergySimilarity", {"bench"}),
    "region_match": ("metrics.region_match:RegionMatchSimilarity", {"bench"}),
}
_DATASETS = {
    "world": ("world.dataset:WorldDataset", {"bench", "truth_scenes"}),
}
# The world's readers, plugged into the core's extension points for galleries and descriptions.
_READERS = {
    "EMBEDDINGS": {"scene_layout": "world.embedding:SceneLayoutEmbedding"},
    "RETRIEVAL_METHODS": {"scene": "world.retrieval:SceneMatcher"},
    "DAR_TEXT_SCORERS": {"concepts": "world.dar:ConceptTextScorer",
                         "scene": "world.dar:SceneTextScorer"},
    "DAR_DIALOGUES": {"world": "world.dar:world_dialogues"},
    "BACKGROUND_READERS": {"world": "world.grammar:background_colour"},
}


def register() -> None:
    """Register the bench's components (the ``repainter.plugins`` entry point ``bench``).

    Light by design: registry calls with ``"module:attr"`` strings only, so listing components
    or building a real-model run imports nothing of the bench.
    """
    from repainter import registry

    for components, table in ((registry.T2I, _T2I), (registry.MLLM, _MLLM),
                              (registry.METRICS, _METRICS), (registry.DATASETS, _DATASETS)):
        for name, (target, traits) in table.items():
            components.register_lazy(name, f"repainter.bench.{target}", traits=traits)
    for registry_name, readers in _READERS.items():
        for name, target in readers.items():
            getattr(registry, registry_name).register_lazy(name, f"repainter.bench.{target}")
