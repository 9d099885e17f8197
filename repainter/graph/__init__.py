"""The regeneration loop as a LangGraph graph: typed state, small nodes, one builder."""

from repainter.graph.build import LazyContext, build_graph
from repainter.graph.context import RunContext
from repainter.graph.state import CaseInput, CaseState

__all__ = ["CaseInput", "CaseState", "LazyContext", "RunContext", "build_graph"]
