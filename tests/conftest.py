"""Shared fixtures."""

from __future__ import annotations

import pytest

from repainter.spec import RunSpec, build_spec

#: Fixtures that build tiny random-initialised real models (tests/backends/tiny_models.py).
MODEL_FIXTURES = {"tiny_sd_path", "tiny_open_clip_checkpoint", "tiny_dinov2_path", "tiny_tokenizer"}
#: Test files of model-backed components (torch, diffusers, transformers, open_clip, lpips).
MODEL_FILES = {"test_clip_i.py", "test_dinov2.py", "test_lpips.py", "test_diffusers_t2i.py"}


def pytest_collection_modifyitems(config, items):
    """Mark every test that needs the [models] extra ``models`` (run only them: -m models)."""
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())) or item.path.name in MODEL_FILES:
            item.add_marker(pytest.mark.models)


@pytest.fixture
def small_spec(tmp_path) -> RunSpec:
    """The procedural world (preset ``world``), shrunk: 4 references x 2 rounds x 2 variants."""
    return build_spec(
        {"preset": "world", "output_dir": str(tmp_path / "run"), "dataset": {"limit": 4},
         "loop": {"rounds": 2, "variants": 2}}
    )
