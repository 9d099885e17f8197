"""The examples in the bench's docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", [
    "repainter.bench.sim.phrasing", "repainter.bench.sim.lexicon", "repainter.bench.sim.t2i", "repainter.bench.sim.truth",
    "repainter.bench.sim.zoo", "repainter.bench.metrics.lab_layout",
    "repainter.bench.metrics.texture_energy", "repainter.bench.metrics.region_match"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
