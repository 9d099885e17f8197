"""Lazily built T2I models: nothing is built before a render, release frees the model and
reports its peak device memory where torch can tell."""

from __future__ import annotations

import sys
import types

from repainter.bench.world.procedural import ProceduralT2I
from repainter.components import LazyT2I, build_components
from repainter.spec import build_spec


def test_components_build_no_t2i_model_until_it_renders():
    built = []
    spec = build_spec({"t2i": ["procedural", {"name": "procedural", "label": "other"}]})
    components = build_components(spec)
    for lazy in components.lazy.values():
        factory = lazy._factory
        lazy._factory = lambda factory=factory: built.append(1) or factory()
    assert built == [] and not any(lazy.loaded for lazy in components.lazy.values())
    components.t2i["other"].generate(["a red circle"], [1])
    assert built == [1] and components.lazy["other"].loaded
    assert components.release("other")["released"] and not components.lazy["other"].loaded
    assert components.release("procedural") == {"released": False, "peak_device_bytes": None}


class _FakeCuda:
    def __init__(self):
        self.peak, self.emptied, self.resets = 0, 0, 0

    def is_available(self):
        return True

    def reset_peak_memory_stats(self):
        self.resets += 1

    def max_memory_allocated(self):
        return self.peak

    def empty_cache(self):
        self.emptied += 1


def test_release_records_peak_device_memory_and_empties_the_device_cache(monkeypatch):
    cuda = _FakeCuda()
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    lazy = LazyT2I(ProceduralT2I)
    lazy.generate(["a red circle"], [1])
    cuda.peak = 7 * 2**30  # what the model used while it was loaded
    assert lazy.release() == {"released": True, "peak_device_bytes": 7 * 2**30}
    assert cuda.resets == 1 and cuda.emptied == 1
