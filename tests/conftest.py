"""Shared fixtures."""

from __future__ import annotations

import pytest

from repainter.spec import RunSpec, build_spec


@pytest.fixture
def small_spec(tmp_path) -> RunSpec:
    """The built-in world, shrunk: 4 references x 2 rounds x 2 variants, in a temp folder."""
    return build_spec(
        {"output_dir": str(tmp_path / "run"), "dataset": {"limit": 4},
         "loop": {"rounds": 2, "variants": 2}}
    )
