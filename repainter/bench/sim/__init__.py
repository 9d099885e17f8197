"""The simulated models of the bench: the ``sim`` T2I model with documented failure rates
(:mod:`~repainter.bench.sim.t2i`), the ``sim-describer`` MLLM, the ``scene_truth`` metric and the
zoo of models of known order (ladders). Registered by :func:`repainter.bench.register`."""
