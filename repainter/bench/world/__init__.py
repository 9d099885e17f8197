"""The procedural world of the simulation bench: scenes with ground truth, and what makes them
usable.

* :mod:`~repainter.bench.world.vocabulary` - colour / size / position / shape / style words and
  values;
* :mod:`~repainter.bench.world.scene` - :class:`SceneSpec` ground truth and deterministic
  rendering; :mod:`~repainter.bench.world.painterly` a second renderer with another look, and
  :mod:`~repainter.bench.world.renderers` the two by name (``flat``, ``painterly``);
* :mod:`~repainter.bench.world.grammar` - prompt text <-> scenes (and the ``world`` background
  reader of the ``self_feedback`` metric);
* :mod:`~repainter.bench.world.analysis` - image -> background and objects (the analyst's eyes);
* :mod:`~repainter.bench.world.generator` - random scenes by category and the bundled scene file;
* :mod:`~repainter.bench.world.dataset` - the ``world`` dataset;
* the backends built on it: :mod:`~repainter.bench.world.procedural` (T2I ``procedural``),
  :mod:`~repainter.bench.world.scene_analyst` (MLLM ``scene-analyst``) and
  :mod:`~repainter.bench.world.object_f1` (metric ``object_f1``);
* its gallery readers: :mod:`~repainter.bench.world.retrieval` (the ``retrieval`` backend's
  ``scene`` method), :mod:`~repainter.bench.world.embedding` (``scene_layout``) and
  :mod:`~repainter.bench.world.dar` (DAR's built-in dialogues and ``concepts`` / ``scene`` text
  scorers).

Everything is registered by :func:`repainter.bench.register`; nothing is imported here.
"""
