"""The regeneration graph, served by ``langgraph dev`` (see langgraph.json at the repo root).

    pip install -e . "langgraph-cli[inmem]"
    REPAINTER_SPEC=examples/specs/my-spec.yaml langgraph dev --port 8123   # none: the world

A graph factory: neither importing this module nor calling the factory reads a file, creates a
folder or loads a model (LangGraph's server refuses blocking calls in its event loop). The spec
named by ``REPAINTER_SPEC`` is read, its run folder made and its models built on the first node
call, in a worker thread. Invoke with ``{"case_id": "<a dataset id>", "model": "<a T2I label>"}``
(the graph's input schema); the server supplies its own checkpointer. ``repainter run`` uses the
same graph via ``build_graph``. The run folder's run.json says ``serving`` (cases run on request;
each finished case writes its record, and ``repainter report RUN`` summarises them).
"""

from __future__ import annotations

import os

from repainter.graph import LazyContext, build_graph


def load_context():
    """The spec's RunContext: read the spec, open its run folder, build its components."""
    from repainter.environment import capture
    from repainter.executors.prepare import prepare_context
    from repainter.preflight import preflight
    from repainter.runner import open_run_info
    from repainter.spec import load_spec
    from repainter.store import RunStore

    spec = load_spec(os.environ.get("REPAINTER_SPEC") or None)
    preflight(spec)
    store = RunStore(spec.run_dir)
    # run.json as for `repainter run`: the spec, its settings and warnings, the environment
    info = open_run_info(spec, store, status="serving")
    info.update(executor={"name": "langgraph server"}, environment=capture(),
                spec=spec.model_dump(mode="json"))
    store.write_run_info(store.read_run_info().merged(info))
    ctx, _items, _components = prepare_context(spec, store)
    return ctx


def make_graph(config: dict | None = None):
    """Graph factory (LangGraph servers call it with the run's config); no I/O until a node runs."""
    return build_graph(LazyContext(load_context))
