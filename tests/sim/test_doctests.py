"""The examples in the bench's docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", [
    "repainter.sim.phrasing", "repainter.sim.lexicon", "repainter.sim.t2i", "repainter.sim.truth",
    "repainter.sim.zoo", "repainter.backends.metrics.lab_layout",
    "repainter.backends.metrics.texture_energy", "repainter.backends.metrics.region_match"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
