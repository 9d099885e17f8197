"""The regeneration loop as a LangGraph graph: typed state, small nodes, one builder."""

from repainter.graph.build import build_graph
from repainter.graph.context import RunContext
from repainter.graph.state import CaseState

__all__ = ["CaseState", "RunContext", "build_graph"]
