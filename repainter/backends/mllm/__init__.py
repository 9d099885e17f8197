"""MLLM backends. The built-in scene analyst is imported here; API-backed ones lazily."""

from repainter.backends.mllm import scene_analyst  # noqa: F401
from repainter.registry import MLLM

MLLM.register_lazy("openai", "repainter.backends.mllm.openai_compat:OpenAIMLLM")
