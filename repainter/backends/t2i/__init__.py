"""T2I backends. The procedural one is imported here; model-backed ones register lazily."""

from repainter.backends.t2i import procedural  # noqa: F401
from repainter.registry import T2I

T2I.register_lazy("diffusers", "repainter.backends.t2i.diffusers:DiffusersT2I")
T2I.register_lazy("retrieval", "repainter.backends.t2i.retrieval:RetrievalT2I")
