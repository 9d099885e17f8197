"""The regeneration graph, served by ``langgraph dev`` (see langgraph.json at the repo root).

A graph factory, so importing the module does nothing. The spec comes from the file named by ``REPAINTER_SPEC`` (default: the built-in offline world).
Invoke with ``{"case_id": "<a dataset id>", "model": "<a T2I label>"}``; the LangGraph server
supplies its own checkpointer. ``repainter run`` uses the same graph via ``build_graph``.
"""

from __future__ import annotations

import os

from repainter.graph import build_graph
from repainter.runner import prepare_context
from repainter.spec import load_spec
from repainter.store import RunStore


def make_graph(config: dict | None = None):
    """Graph factory (LangGraph servers call it with the run's config); no work at import."""
    spec = load_spec(os.environ.get("REPAINTER_SPEC") or None)
    store = RunStore(spec.run_dir)
    store.init(spec)
    ctx, _items, _components = prepare_context(spec, store)
    return build_graph(ctx)

