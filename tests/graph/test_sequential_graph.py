"""A fresh case steps through the loop's nodes without LangGraph's runtime (issue 28): the same
nodes, edges, routes and reducers as the compiled graph, so the same updates in the same order."""

import pytest
from langgraph.errors import GraphRecursionError

from repainter.executors.prepare import prepare_context
from repainter.graph.build import NODE_DONE, SequentialGraph, build_graph
from repainter.spec import build_spec
from repainter.store import RunStore


def _context(tmp_path, strategy: str):
    spec = build_spec({"preset": "world", "output_dir": str(tmp_path / "run"),
                       "dataset": {"limit": 1}, "runtime": {"cache": False},
                       "loop": {"rounds": 2, "variants": 2, "strategy": strategy}})
    store = RunStore(spec.run_dir)
    store.init(spec)
    ctx, items, _ = prepare_context(spec, store)
    return ctx, {"case_id": items[0].id, "model": spec.t2i[0].display_name}


def _without_timings(updates):
    return [{node: {k: v for k, v in update.items() if k != "timings"}
             for node, update in step.items()} for step in updates]


@pytest.mark.parametrize("strategy", ["adaptive", "refine", "best_of_n"])
def test_the_sequential_graph_yields_what_the_compiled_graph_yields(tmp_path, strategy):
    ctx, payload = _context(tmp_path, strategy)
    compiled = list(build_graph(ctx).stream(payload, {"recursion_limit": 40},
                                            stream_mode="updates"))
    sequential = list(SequentialGraph(ctx).stream(payload, {"recursion_limit": 40}))
    assert [next(iter(s)) for s in sequential] == [next(iter(s)) for s in compiled]
    assert _without_timings(sequential) == _without_timings(compiled)
    assert "critique" in [next(iter(s)) for s in sequential] or strategy == "best_of_n"


def test_each_node_hands_the_state_after_it_to_the_progress_hook(tmp_path):
    ctx, payload = _context(tmp_path, "refine")
    saved = []
    token = NODE_DONE.set(lambda node, state: saved.append((node, state)))
    try:
        updates = list(SequentialGraph(ctx).stream(payload, {"recursion_limit": 40}))
    finally:
        NODE_DONE.reset(token)
    assert [node for node, _ in saved] == [next(iter(u)) for u in updates]
    node, last = saved[-1]
    assert node == "finalize" and last["status"] == "done" and len(last["rounds"]) == 2
    # timings add up node by node, as the compiled graph's reducer adds them
    assert set(last["timings"]) == {n for n, _ in saved}


def test_a_loop_past_the_recursion_limit_stops(tmp_path):
    ctx, payload = _context(tmp_path, "refine")
    with pytest.raises(GraphRecursionError):
        list(SequentialGraph(ctx).stream(payload, {"recursion_limit": 5}))
