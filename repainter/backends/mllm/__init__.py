"""MLLM backends, registered lazily: importing this package (or a helper module in it) loads
no backend, so the core never pulls in the offline world's analyst through it."""

from repainter.registry import MLLM

MLLM.register_lazy("openai", "repainter.backends.mllm.openai_compat:OpenAIMLLM")
MLLM.register_lazy("scene-analyst", "repainter.backends.mllm.scene_analyst:SceneAnalyst",
                   traits={"bench"})
