"""The regeneration graph, assembled in one place.

    describe -> compose_prompt -> write_variants -> generate -> score -> select
                                      ^                                   |
                                      |-- revise <- critique <- (go on) --+
                                                                          |
                                               finalize <- judge <- (stop)+
"""

from __future__ import annotations

from functools import partial

from langgraph.graph import END, START, StateGraph

from repainter.graph import nodes
from repainter.graph.context import RunContext
from repainter.graph.state import CaseState

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
    nodes.finalize,
)


def build_graph(ctx: RunContext, checkpointer=None):
    """Compile the loop for one run; ``checkpointer`` persists each case's state after every node."""
    graph = StateGraph(CaseState)
    for node in NODES:
        graph.add_node(node.__name__, partial(node, ctx=ctx))
    graph.add_edge(START, "describe")
    graph.add_edge("describe", "compose_prompt")
    graph.add_edge("compose_prompt", "write_variants")
    graph.add_edge("write_variants", "generate")
    graph.add_edge("generate", "score")
    graph.add_edge("score", "select")
    graph.add_conditional_edges("select", nodes.after_select, ["critique", "judge"])
    graph.add_edge("critique", "revise")
    graph.add_edge("revise", "write_variants")
    graph.add_edge("judge", "finalize")
    graph.add_edge("finalize", END)
    return graph.compile(checkpointer=checkpointer, name="repainter")
