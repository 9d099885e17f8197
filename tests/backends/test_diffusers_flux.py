"""DiffusersT2I on a tiny FluxPipeline (FLUX.1-schnell's layout) loaded from disk (issue 16 item
10, issue 12 item 5): the pipeline's own defaults, its size rounding, its T5 prompt budget, and
the settings FLUX ignores (``negative_prompt`` without ``true_cfg_scale`` > 1, ``guidance_scale``
without a guidance embedding)."""

from __future__ import annotations

import inspect

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from repainter.backends.t2i.diffusers import DiffusersT2I  # noqa: E402


@pytest.fixture(scope="module")
def flux(tiny_flux_path):
    return DiffusersT2I(model=str(tiny_flux_path), device="cpu", steps=2,
                        extra={"max_sequence_length": 16})


def test_flux_defaults_and_rounded_size_are_recorded(tiny_flux_path, flux):
    assert type(flux.pipe).__name__ == "FluxPipeline"
    signature = inspect.signature(flux.pipe.__call__).parameters
    effective = flux.identity()["effective"]
    assert effective["steps"] == 2 and effective["guidance_scale"] == signature[
        "guidance_scale"].default
    assert effective["width"] == flux.pipe.default_sample_size * flux.pipe.vae_scale_factor
    assert effective["true_cfg_scale"] == signature["true_cfg_scale"].default
    odd = DiffusersT2I(model=str(tiny_flux_path), device="cpu", steps=2, width=42, height=36,
                       extra={"max_sequence_length": 16})
    (out,) = odd.generate(["a red cat"], [0])
    multiple = flux.pipe.vae_scale_factor * 2
    assert out.image.size == (42 // multiple * multiple, 36 // multiple * multiple) == (40, 36)
    assert (out.metadata["effective"]["width"], out.metadata["effective"]["height"]) == (40, 36)
    assert out.metadata["params"]["width"] == 42  # what was asked stays visible


def test_flux_prompt_budget_is_t5s_max_sequence_length(flux):
    budget = flux.prompt_budget()
    assert budget.tokenizer.startswith("T5") and budget.max_tokens == 16 - 1  # </s> takes one
    long = " ".join(["abc"] * 10)
    ids = flux.pipe.tokenizer_2(long).input_ids
    (out,) = flux.generate([long], [0])
    assert out.metadata["prompt_tokens_dropped"] == len(ids) - 16 > 0


def test_flux_ignored_settings_are_refused_or_warned(tiny_flux_path):
    with pytest.raises(ValueError, match="true_cfg_scale > 1"):
        DiffusersT2I(model=str(tiny_flux_path), device="cpu", negative_prompt="blurry")
    with_cfg = DiffusersT2I(model=str(tiny_flux_path), device="cpu", negative_prompt="blurry",
                            extra={"true_cfg_scale": 2.0})
    assert with_cfg.identity()["effective"]["true_cfg_scale"] == 2.0
    with pytest.warns(UserWarning, match="no guidance embedding"):
        DiffusersT2I(model=str(tiny_flux_path), device="cpu", guidance_scale=3.5)
