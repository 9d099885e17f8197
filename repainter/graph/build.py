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
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from functools import wraps
from typing import Any

from langgraph.errors import GraphRecursionError, InvalidUpdateError
from langgraph.graph import END, START, StateGraph

import repainter.graph.nodes as nodes
from repainter.graph.context import RunContext
from repainter.graph.state import CaseInput, CaseState, add_timings

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


#: Called after each node of the case the current thread runs with (node name, the case's state
#: after it): the worker saves it, so an interrupted case resumes at the next node without
#: LangGraph checkpointing every step (:class:`repainter.executors.checkpoints.CaseProgress`).
NODE_DONE: ContextVar[Callable[[str, dict[str, Any]], None] | None] = ContextVar(
    "repainter_node_done", default=None)


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
        update = {**update, "timings": {node.__name__: time.perf_counter() - started}}
        done = NODE_DONE.get()
        if done is not None:  # the state after the node, as the graph's reducers make it
            done(node.__name__, {**state, **update,
                                 "timings": add_timings(state.get("timings"), update["timings"])})
        return update

    return run


#: The loop's fixed edges (node -> next node); ``select`` routes by :func:`nodes.after_select`.
EDGES = {
    START: "describe", "describe": "compose_prompt", "compose_prompt": "write_variants",
    "write_variants": "generate", "generate": "score", "score": "select",
    "critique": "revise", "revise": "write_variants",
    "judge": "decide", "decide": "finalize", "finalize": END,
}
SELECT_ROUTES = ["critique", "judge", "write_variants"]


def build_graph(ctx: RunContext | LazyContext, checkpointer=None):
    """Compile the loop for one run; ``checkpointer`` persists each case's state after every node.

    The graph's input is a :class:`CaseInput` (``case_id``, ``model``); compiling does no I/O.
    """
    graph = StateGraph(CaseState, input_schema=CaseInput)
    for node in NODES:
        graph.add_node(node.__name__, _timed(node, ctx))
    for source, target in EDGES.items():
        graph.add_edge(source, target)
    graph.add_conditional_edges("select", lambda state: nodes.after_select(state, ctx),
                                SELECT_ROUTES)
    return graph.compile(checkpointer=checkpointer, name="repainter")


class SequentialGraph:
    """The same nodes, edges and reducers as :func:`build_graph`'s graph, run one node after
    another in the calling thread, without LangGraph's step machinery (task, channel and
    callback bookkeeping: about half a millisecond per node, the larger part of the
    framework's cost on fast backends, issue 28).

    For a case that starts fresh and whose progress the worker saves node by node
    (:data:`NODE_DONE`); a resumed case goes through the compiled graph and its checkpointer.
    ``stream`` is called as the compiled graph's, and yields what its ``stream_mode="updates"``
    yields.
    """

    KEYS = frozenset(CaseState.__optional_keys__) | frozenset(CaseState.__required_keys__)

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.nodes = {node.__name__: _timed(node, ctx) for node in NODES}

    def stream(self, payload: CaseInput, config: dict[str, Any],
               stream_mode: str = "updates") -> Iterator[dict[str, dict]]:
        """As the compiled graph's ``stream(payload, config, stream_mode="updates")`` (the only
        mode it has); ``config["recursion_limit"]`` bounds the steps."""
        if stream_mode != "updates":
            raise ValueError(f"SequentialGraph streams updates only, not {stream_mode!r}")
        recursion_limit = config["recursion_limit"]
        state: dict[str, Any] = dict(payload)
        current, steps = EDGES[START], 0
        while current != END:
            steps += 1
            if steps > recursion_limit:
                raise GraphRecursionError(f"recursion limit of {recursion_limit} reached "
                                          "without hitting a stop condition")
            update = self.nodes[current](state)
            unknown = set(update) - self.KEYS
            if unknown:
                raise InvalidUpdateError(f"node {current!r} returned unknown keys {sorted(unknown)}")
            state = {**state, **update,
                     "timings": add_timings(state.get("timings"), update.get("timings"))}
            yield {current: update}
            current = (nodes.after_select(state, self.ctx) if current == "select"
                       else EDGES[current])
