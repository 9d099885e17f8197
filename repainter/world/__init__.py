"""The built-in offline world: procedural scenes with ground truth, and what makes them usable.

* :mod:`~repainter.world.vocabulary` - colour / size / position / shape / style words and values;
* :mod:`~repainter.world.scene` - :class:`SceneSpec` ground truth and deterministic rendering;
* :mod:`~repainter.world.grammar` - prompt text <-> scenes;
* :mod:`~repainter.world.analysis` - image -> background and objects (the analyst's eyes);
* :mod:`~repainter.world.generator` - random scenes by category and the bundled scene file;
* :mod:`~repainter.world.dataset` - the ``world`` dataset;
* :mod:`~repainter.world.selfcheck` - ``python -m repainter.world.selfcheck``: does the loop
  improve fidelity on the world?

The backends built on it are ``procedural`` (T2I), ``scene-analyst`` (MLLM) and ``object_f1``
(metric).
"""
