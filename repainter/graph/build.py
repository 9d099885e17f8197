"""The regeneration graph, assembled in one place.

    describe -> compose_prompt -> write_variants -> generate -> score -> select
                                      ^                                   |
                                      |-- revise <- critique <- (go on) --+
                                                                          |
                                    finalize <- decide <- judge <- (stop)+

The baselines (``loop.strategy`` best_of_n / one_shot) skip critique and revise: select goes
straight back to write_variants, which renders the initial prompt again without the MLLM.
``adaptive`` takes the method's path; its critique looks at several renders of the best prompt
so far and its write_variants renders the revision, or re-samples that prompt
(:mod:`repainter.graph.strategy`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import wraps

from langgraph.graph import END, START, StateGraph

import repainter.graph.nodes as nodes
from repainter.graph.context import RunContext
from repainter.graph.state import CaseInput, CaseState

NODES = (
    nodes.describe,
    nodes.compose_prompt,
    nodes.write_variants,
    nodes.generate,
    nodes.score,
    nodes.select,
    nodes.critique,
    nodes.revise,
    nodes.judge,
    nodes.decide,
    nodes.finalize,
)


class LazyContext:
    """A :class:`RunContext` built by ``factory`` on the first node call, not before.

    LangGraph servers (``langgraph dev``) call the graph factory inside their event loop, where
    creating a folder or loading a model is a blocking call they refuse; the first node runs in
    a worker thread, where it is fine.
    """

    def __init__(self, factory: Callable[[], RunContext]):
        self._factory = factory
        self._ctx: RunContext | None = None
        self._lock = threading.Lock()

    def get(self) -> RunContext:
        with self._lock:
            if self._ctx is None:
                self._ctx = self._factory()
            return self._ctx


def _timed(node, ctx: RunContext | LazyContext):
    """Bind ``ctx`` and add the node's own wall time to the state's ``timings``."""

    @wraps(node)
    def run(state: CaseState) -> dict:
        started = time.perf_counter()
        update = node(state, ctx.get() if isinstance(ctx, LazyContext) else ctx)
        return {**update, "timings": {node.__name__: time.perf_counter() - started}}

    return run


def build_graph(ctx: RunContext | LazyContext, checkpointer=None):
    """Compile the loop for one run; ``checkpointer`` persists each case's state after every node.

    The graph's input is a :class:`CaseInput` (``case_id``, ``model``); compiling does no I/O.
    """
    graph = StateGraph(CaseState, input_schema=CaseInput)
    for node in NODES:
        graph.add_node(node.__name__, _timed(node, ctx))
    graph.add_edge(START, "describe")
    graph.add_edge("describe", "compose_prompt")
    graph.add_edge("compose_prompt", "write_variants")
    graph.add_edge("write_variants", "generate")
    graph.add_edge("generate", "score")
    graph.add_edge("score", "select")
    graph.add_conditional_edges("select", lambda state: nodes.after_select(state, ctx),
                                ["critique", "judge", "write_variants"])
    graph.add_edge("critique", "revise")
    graph.add_edge("revise", "write_variants")
    graph.add_edge("judge", "decide")
    graph.add_edge("decide", "finalize")
    graph.add_edge("finalize", END)
    return graph.compile(checkpointer=checkpointer, name="repainter")
