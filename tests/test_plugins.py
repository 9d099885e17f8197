"""Plugins (issue 25): the bench registers through the same entry points and registries a third
party would use, plugins load once and a broken one is named, and what a T2I backend marks as
worth recording reaches the candidate records and the metrics that read it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import types
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points

import pytest
from PIL import Image

import repainter.registry as registry_module
from repainter.backends.base import GeneratedImage, Metric, Reference, T2IBackend
from repainter.registry import METRICS, T2I, Registry, UnknownComponentError


def test_the_bench_is_declared_as_a_plugin_and_a_command():
    plugins = {ep.name: ep for ep in entry_points(group="repainter.plugins")}
    assert plugins["bench"].value == "repainter.bench:register"
    commands = {ep.name: ep for ep in entry_points(group="repainter.commands")}
    assert commands["meta-eval"].value == "repainter.bench.cli:meta_eval_command"
    assert callable(commands["meta-eval"].load())


def test_listing_and_reading_traits_imports_nothing_of_the_bench():
    # a fresh process: the plugin registered every bench component by name, importing none
    probe = (
        "import sys, json; from repainter.registry import DATASETS, METRICS, MLLM, T2I; "
        "[r.describe() for r in (METRICS, MLLM, T2I, DATASETS)]; "
        "print(json.dumps({'loaded': sorted(m for m in sys.modules if m.startswith('repainter.bench')),"
        " 'sim': sorted(T2I.traits('sim')), 'truth': sorted(METRICS.traits('scene_truth')),"
        " 'world': sorted(DATASETS.traits('world')), 'lab': sorted(METRICS.traits('lab_layout'))}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout)
    # packages only (describe() finds each module's source through them), no component
    assert set(found["loaded"]) <= {"repainter.bench", "repainter.bench.metrics",
                                    "repainter.bench.sim", "repainter.bench.world"}
    assert found["sim"] == ["bench", "draws_scene"]
    assert found["truth"] == ["bench", "needs_drawn_scene"]
    assert found["world"] == ["bench", "truth_scenes"]
    assert found["lab"] == ["bench"]


@pytest.fixture
def fake_plugins(monkeypatch):
    """Plugins of a fake package: ``good`` registers a component (and reads a registry while
    doing so), ``broken`` raises. Plugin state is reset for the test and restored after it."""
    T2I.names()  # the real plugins and built-ins first: the test's changes are undone after it
    calls = []

    def good():
        calls.append("good")
        Registry("plugin-probe").names()  # reading a registry from a plugin must not recurse
        T2I.register_lazy("plugin-made", "collections:OrderedDict")

    def broken():
        raise RuntimeError("cannot find its weights")

    package = types.ModuleType("fake_plugin_pkg")
    package.good, package.broken = good, broken
    monkeypatch.setitem(sys.modules, "fake_plugin_pkg", package)
    found = [EntryPoint(name=name, value=f"fake_plugin_pkg:{name}", group="repainter.plugins")
             for name in ("good", "broken")]
    monkeypatch.setattr(registry_module, "entry_points",
                        lambda group: found if group == "repainter.plugins" else [])
    monkeypatch.setattr(registry_module, "_plugins_state", "new")
    monkeypatch.setattr(registry_module, "PLUGIN_ERRORS", {})
    monkeypatch.setattr(T2I, "_lazy", dict(T2I._lazy))
    return calls


def test_plugins_load_once_and_a_broken_one_is_named(fake_plugins, caplog):
    with caplog.at_level(logging.WARNING, logger="repainter.registry"):
        assert Registry("things").names() == []
        Registry("more-things").names()
    assert fake_plugins == ["good"]  # once per process, whatever registry is read first
    assert "plugin-made" in T2I.names()
    assert "'broken'" in caplog.text and "cannot find its weights" in caplog.text
    with pytest.raises(UnknownComponentError,
                       match=r"plugins that failed to load: broken: fake_plugin_pkg:broken: "
                             r"RuntimeError: cannot find its weights"):
        Registry("things").get("nope")


# -- recorded metadata: a third party's T2I model and metric ------------------------------------


class NotingT2I(T2IBackend):
    """Renders grey squares and says which prompt word it used; records that word only."""

    kind = "noting"
    recorded_metadata = ("word",)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[GeneratedImage]:
        return [GeneratedImage(Image.new("RGB", (32, 32), (seed % 200,) * 3), prompt, seed,
                               metadata={"word": prompt.split()[0], "seconds": 0.5})
                for prompt, seed in zip(prompts, seeds)]


class WordLength(Metric):
    """Scores the recorded word of each candidate, not its pixels."""

    name = "word_length"
    reads_metadata = "word"

    def prepare(self, reference: Reference) -> None:
        return None

    def score(self, prepared, candidates):
        raise AssertionError("a metadata metric is never given pixels")

    def score_metadata(self, prepared, values: Sequence[str]) -> list[float]:
        return [float(len(v)) for v in values]


@pytest.mark.slow
def test_recorded_metadata_reaches_records_metrics_and_rescore(tmp_path):
    import repainter
    from repainter.rescore import rescore
    from repainter.spec import build_spec

    if "noting" not in T2I:
        T2I.register("noting")(NotingT2I)
        METRICS.register("word_length")(WordLength)
    spec = build_spec({"output_dir": str(tmp_path / "run"), "dataset": {"limit": 1},
                       "t2i": ["noting"], "metrics": ["ssim", "word_length"],
                       "selection": {"ssim": 1.0}, "loop": {"rounds": 1, "variants": 2},
                       "judge": False})
    (record,) = repainter.run(spec).records
    candidates = record.candidates()
    assert candidates and all(set(c.metadata) == {"word"} for c in candidates)  # not "seconds"
    assert all(c.scores["word_length"] == len(c.metadata["word"]) for c in candidates)
    stored = json.loads(next((tmp_path / "run" / "cases").rglob("*.json")).read_text())
    assert stored["schema_version"] == 2
    assert stored["rounds"][0]["candidates"][0]["metadata"] == {"word": candidates[0].metadata["word"]}
    again = rescore(tmp_path / "run", [{"name": "word_length", "label": "again"}], report=False)
    (rescored,) = again.records
    assert [c.scores["again"] for c in rescored.candidates()] == [
        c.scores["word_length"] for c in candidates]
