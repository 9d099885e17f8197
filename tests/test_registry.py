from importlib.metadata import EntryPoint

import pytest

import repainter.registry as registry_module
from repainter.registry import METRICS, MLLM, T2I, Registry, UnknownComponentError


def test_builtin_components_are_registered():
    assert "procedural" in T2I.names()
    assert "scene-analyst" in MLLM.names()
    assert {"ssim", "color_histogram", "object_f1"} <= set(METRICS.names())


def test_model_backed_components_are_listed_without_importing_them():
    import subprocess
    import sys

    assert {"clip_i", "dinov2", "lpips"} <= set(METRICS.names())
    assert "diffusers" in T2I.names() and "openai" in MLLM.names()
    # in a fresh process, listing every registry imports no heavy library
    probe = ("import sys; from repainter.registry import METRICS, MLLM, T2I, DATASETS; "
             "[r.describe() for r in (METRICS, MLLM, T2I, DATASETS)]; "
             "print(sorted(m for m in ('torch', 'diffusers', 'openai', 'open_clip') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_name_lists_what_is_registered():
    with pytest.raises(UnknownComponentError, match="unknown t2i 'nope'.*procedural"):
        T2I.get("nope")


def test_register_and_create_with_params():
    reg = Registry("things")

    @reg.register("pair")
    class Pair:
        """A pair of numbers."""

        def __init__(self, a=1, b=2):
            self.a, self.b = a, b

    made = reg.create("pair", b=5)
    assert (made.a, made.b) == (1, 5)
    assert reg.describe() == [("pair", "A pair of numbers.")]
    with pytest.raises(ValueError, match="already registered"):
        reg.register("pair")(type("Other", (), {}))


def test_lazy_target_is_imported_on_first_use():
    reg = Registry("things")
    reg.register_lazy("od", "collections:OrderedDict")
    assert reg.create("od", a=1) == {"a": 1}


def test_third_party_entry_points_are_found(monkeypatch):
    found = [EntryPoint(name="plugin-counter", value="collections:Counter", group="repainter.things")]
    monkeypatch.setattr(
        registry_module, "entry_points",
        lambda group: found if group == "repainter.things" else [],
    )
    reg = Registry("things")
    assert "plugin-counter" in reg.names()
    assert reg.create("plugin-counter", a=2)["a"] == 2
