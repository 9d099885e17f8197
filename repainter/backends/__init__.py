"""Backends for the three roles of the loop: MLLM, T2I and metrics."""

from repainter.backends.base import (
    GeneratedImage,
    Metric,
    MLLMBackend,
    Reference,
    T2IBackend,
)

__all__ = ["GeneratedImage", "MLLMBackend", "Metric", "Reference", "T2IBackend"]
