"""``langgraph dev`` loads the graph: the factory does no blocking I/O and the input is small."""

from __future__ import annotations

import asyncio
import builtins
import importlib.util
import os
import pathlib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _factory_module():
    spec = importlib.util.spec_from_file_location("studio_graph", ROOT / "graphs" / "regeneration.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _forbidden(name):
    def refuse(*args, **kwargs):
        raise AssertionError(f"blocking call at factory time: {name}{args[:1]}")

    return refuse


def test_factory_creates_nothing_and_declares_a_small_input_schema(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REPAINTER_SPEC", str(tmp_path / "not-read-at-factory-time.yaml"))
    module = _factory_module()
    for target, name in ((os, "mkdir"), (os, "makedirs"), (builtins, "open"), (os, "open"),
                         (pathlib.Path, "mkdir"), (pathlib.Path, "write_bytes"),
                         (pathlib.Path, "read_text"), (os, "listdir"), (os, "scandir")):
        monkeypatch.setattr(target, name, _forbidden(name))
    graph = module.make_graph({})
    schema = graph.get_input_jsonschema()
    monkeypatch.undo()
    assert set(schema["properties"]) == {"case_id", "model"}
    assert set(schema.get("required", [])) == {"case_id", "model"}
    assert list(tmp_path.iterdir()) == []


def test_factory_passes_blockbuster_like_langgraph_dev():
    blockbuster = pytest.importorskip("blockbuster")
    module = _factory_module()

    async def build():
        with blockbuster.blockbuster_ctx():
            return module.make_graph({})

    graph = asyncio.run(build())
    assert set(graph.get_input_jsonschema()["properties"]) == {"case_id", "model"}


def test_the_lazy_graph_runs_a_case_from_the_spec_variable(tmp_path, monkeypatch):
    from langgraph.checkpoint.memory import InMemorySaver

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"preset": "world", "output_dir": str(tmp_path / "run"),
                                    "dataset": {"limit": 1},
                                    "loop": {"rounds": 1, "variants": 1}, "judge": False}))
    monkeypatch.setenv("REPAINTER_SPEC", str(spec))
    graph = _factory_module().make_graph({})
    graph.checkpointer = InMemorySaver()
    from repainter.datasets import load_dataset

    case_id = load_dataset("world").items()[0].id
    final = graph.invoke({"case_id": case_id, "model": "procedural"},
                         {"configurable": {"thread_id": "t"}})
    assert final["status"] == "done" and final["best"]["image"]
    assert (tmp_path / "run" / "spec.yaml").exists()
    # the served run leaves a run.json like `repainter run` does (issue 24 item 7)
    import json

    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "serving" and info["executor"] == {"name": "langgraph server"}
    assert info["spec"]["preset"] == "world" and info["settings"]["why"] == "named in the spec"
