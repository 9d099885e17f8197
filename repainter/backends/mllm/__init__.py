"""MLLM backends, registered lazily: importing this package (or a helper module in it) loads
no backend. The bench's describers (``sim-describer``, ``scene-analyst``) register from
:mod:`repainter.bench` through the ``repainter.plugins`` entry point."""

from repainter.registry import MLLM

MLLM.register_lazy("openai", "repainter.backends.mllm.openai_compat:OpenAIMLLM")
