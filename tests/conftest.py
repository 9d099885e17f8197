"""Shared fixtures."""

from __future__ import annotations

import pytest

from repainter.spec import RunSpec, build_spec


@pytest.fixture
def small_spec(tmp_path) -> RunSpec:
    """The procedural world (preset ``world``), shrunk: 4 references x 2 rounds x 2 variants."""
    return build_spec(
        {"preset": "world", "output_dir": str(tmp_path / "run"), "dataset": {"limit": 4},
         "loop": {"rounds": 2, "variants": 2}}
    )
