"""T2I backends, registered lazily: importing this package loads no backend.

The simulation bench's models (``sim``, ``procedural``) register from :mod:`repainter.bench`
through the ``repainter.plugins`` entry point, as a third party's would.
"""

from repainter.registry import T2I

T2I.register_lazy("diffusers", "repainter.backends.t2i.diffusers:DiffusersT2I")
T2I.register_lazy("retrieval", "repainter.backends.t2i.retrieval:RetrievalT2I")
