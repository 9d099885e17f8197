"""repainter.weights and repainter.prefetch: requirements of a spec, presence checks offline,
doctor / prefetch rows, fail-fast loading, and the registry names of the model-backed backends."""

from __future__ import annotations

import pytest

from repainter.prefetch import check_present, doctor_rows, prefetch, prefetch_spec
from repainter.spec import build_spec
from repainter.weights import (
    WeightRequirement,
    WeightsNotFoundError,
    hub_load,
    is_offline,
    looks_like_path,
    requirements_for,
)

from .tiny_models import fails_fast


def test_is_offline_reads_the_environment_now(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "REPAINTER_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    assert not is_offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert is_offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("REPAINTER_OFFLINE", "true")
    assert is_offline()


def test_looks_like_path(tmp_path):
    assert looks_like_path(str(tmp_path)) and looks_like_path("./models/sd")
    assert looks_like_path("~/weights") and not looks_like_path("facebook/dinov2-base")
    assert not looks_like_path("ViT-B-32")


def test_requirements_of_the_presets():
    reqs = {c: requirements_for(c, p) for c, p in [
        ("clip_i", {"model": "ViT-L-14", "pretrained": "openai", "resize": 256}),
        ("dinov2", {"pooling": "mean"}),
        ("lpips", {"net": "alex", "resize": 256}),
        ("diffusers", {"model": "stabilityai/sdxl-turbo", "revision": "abc", "variant": "fp16"}),
        ("openai", {"model": "gpt-4o"}),
        ("ssim", {}),
        ("psnr", {}),
    ]}
    assert reqs["clip_i"] == [WeightRequirement("clip_i", "open_clip", "ViT-L-14", extra="openai")]
    assert reqs["dinov2"][0].model == "facebook/dinov2-base"
    assert reqs["lpips"] == [WeightRequirement("lpips", "lpips", "torchvision:alex", extra="alex")]
    assert reqs["diffusers"][0].revision == "abc" and reqs["diffusers"][0].variant == "fp16"
    assert reqs["openai"] == [WeightRequirement("openai", "api_key", "OPENAI_API_KEY")]
    assert reqs["ssim"] == [] and reqs["psnr"] == []
    assert requirements_for("lpips", {"random_backbone_for_tests": True}) == []
    assert requirements_for("openai", {"model": "m", "base_url": "http://localhost:8000/v1"}) == []
    assert requirements_for("clip_i", {"checkpoint": "/x.pt"})[0].extra == "/x.pt"


def test_doctor_rows_offline_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    spec = build_spec({"preset": "paper",
                       "t2i": [{"name": "diffusers", "params": {"model": "nobody/sd"}}],
                       "mllm": {"name": "openai", "params": {"model": "gpt-4o"}}})
    with fails_fast():
        rows = doctor_rows(spec)
    by_component = {r["component"]: r for r in rows}
    assert set(by_component) == {"diffusers", "openai", "clip_i", "dinov2", "lpips", "ssim"}
    for name in ("diffusers", "openai", "clip_i", "dinov2", "lpips"):
        assert by_component[name]["present"] is False and by_component[name]["how_to_fix"]
    assert by_component["ssim"]["present"] is True and by_component["ssim"]["kind"] == "none"
    assert "hf download nobody/sd" in by_component["diffusers"]["how_to_fix"]
    assert "export OPENAI_API_KEY" in by_component["openai"]["how_to_fix"]
    # prefetch offline: every missing requirement fails quickly with the explanation
    with fails_fast():
        fetched = prefetch_spec(spec)
    assert {r["status"] for r in fetched} == {"failed"}
    assert all("How to fix" in r["error"] for r in fetched)


def test_check_present_on_local_folders(tmp_path):
    sd = tmp_path / "sd"
    (sd / "unet").mkdir(parents=True)
    (sd / "model_index.json").write_text('{"_class_name": "X", "unet": ["diffusers", "U"], '
                                         '"safety_checker": [null, null]}')
    req = WeightRequirement("diffusers", "diffusers", str(sd))
    assert not check_present(req)  # unet folder empty
    (sd / "unet" / "config.json").write_text("{}")
    assert check_present(req)
    tf = tmp_path / "tf"
    tf.mkdir()
    (tf / "config.json").write_text("{}")
    req = WeightRequirement("dinov2", "transformers", str(tf))
    assert not check_present(req)
    (tf / "model.safetensors").write_bytes(b"x")
    assert check_present(req)
    ckpt = tmp_path / "c.pt"
    assert not check_present(WeightRequirement("clip_i", "open_clip", "ViT-B-32", extra=str(ckpt)))
    ckpt.write_bytes(b"x")
    assert check_present(WeightRequirement("clip_i", "open_clip", "ViT-B-32", extra=str(ckpt)))
    pth = tmp_path / "alex.pth"
    pth.write_bytes(b"x")
    assert check_present(WeightRequirement("lpips", "lpips", str(pth), extra="alex"))
    assert prefetch(WeightRequirement("diffusers", "diffusers", str(sd))) == str(sd)


def test_hub_load_fails_fast_and_falls_back_to_cache(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def loader(model, **kwargs):
        calls.append(kwargs.get("local_files_only", False))
        if not kwargs.get("local_files_only"):
            raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")
        return "from-cache"

    assert hub_load(loader, "org/model", "transformers") == "from-cache"
    assert calls == [False, True]

    def never(model, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    with pytest.raises(WeightsNotFoundError, match="no network .* and not cached"):
        hub_load(never, "org/model", "transformers")

    def not_found(model, **kwargs):
        raise OSError("org/model is not a local folder and is not a valid model identifier")

    with pytest.raises(WeightsNotFoundError, match="org/model"):
        hub_load(not_found, "org/model", "diffusers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    seen = {}

    def record(model, **kwargs):
        seen.update(kwargs)
        return "ok"

    hub_load(record, "org/model", "diffusers")
    assert seen["local_files_only"] is True


def test_error_message_and_pickling():
    import pickle

    err = WeightsNotFoundError("org/m", "diffusers", "do this", "because")
    assert str(err) == ("diffusers weights for 'org/m' are not available (because). "
                        "How to fix: do this")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.model == "org/m"


def _lazy_target(registry, name):
    """Import a lazily registered component without caching it in the global registry."""
    import importlib

    registry.names()  # loads the built-in registrations
    module, _, attr = registry._lazy[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def test_registry_names_resolve_lazily():
    from repainter.registry import METRICS, MLLM, T2I

    assert _lazy_target(METRICS, "psnr").__name__ == "PSNR"
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    expected = {(METRICS, "clip_i"): "ClipImageSimilarity", (METRICS, "dinov2"): "DinoV2Similarity",
                (METRICS, "lpips"): "LPIPSDistance", (MLLM, "openai"): "OpenAIMLLM",
                (T2I, "diffusers"): "DiffusersT2I"}
    for (registry, name), cls in expected.items():
        assert _lazy_target(registry, name).__name__ == cls
    assert _lazy_target(METRICS, "lpips").higher_is_better is False
    assert _lazy_target(METRICS, "lpips").name == "lpips"


class _PluginProbe:
    """Stands for a third-party metric registered through an entry point: it declares an API
    key and a transformers checkpoint, and is never built by doctor."""

    name = "plugin_probe"

    def __init__(self, key_env: str = "PLUGIN_PROBE_KEY", model: str = "someone/probe-model"):
        raise AssertionError("doctor must not build the component")

    @classmethod
    def requirements(cls, params):
        return [WeightRequirement("anything", "api_key", params.get("key_env", "PLUGIN_PROBE_KEY")),
                WeightRequirement("anything", "transformers",
                                  params.get("model", "someone/probe-model"))]


def test_a_plugin_component_declares_its_requirements_to_doctor(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from repainter.cli import app
    from repainter.registry import METRICS

    monkeypatch.setitem(METRICS._factories, "plugin_probe", _PluginProbe)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("PLUGIN_PROBE_KEY", raising=False)
    monkeypatch.setenv("PROBE_TOKEN", "set")
    spec = tmp_path / "spec.yaml"
    spec.write_text("metrics: [ssim, {name: plugin_probe, params: {key_env: PROBE_TOKEN}}]\n"
                    "selection: {ssim: 1.0}\n")
    assert requirements_for("plugin_probe", {}, "metrics") == [
        WeightRequirement("plugin_probe", "api_key", "PLUGIN_PROBE_KEY"),
        WeightRequirement("plugin_probe", "transformers", "someone/probe-model")]

    result = CliRunner().invoke(app, ["doctor", "--spec", str(spec), "--json"])
    rows = [r for r in json.loads(result.stdout) if r["component"] == "plugin_probe"]
    assert [(r["kind"], r["model"], r["present"]) for r in rows] == [
        ("api_key", "PROBE_TOKEN", True), ("transformers", "someone/probe-model", False)]
    assert "hf download someone/probe-model" in rows[1]["how_to_fix"]
    assert result.exit_code != 0  # something the spec needs is missing


def test_a_component_that_cannot_be_imported_needs_its_package(monkeypatch):
    from repainter.registry import T2I

    monkeypatch.setitem(T2I._lazy, "needs_absent_pkg", "repainter_absent_pkg_xyz.module:Model")
    (need,) = requirements_for("needs_absent_pkg", {}, "t2i")
    assert (need.kind, need.model) == ("package", "repainter_absent_pkg_xyz")
    assert not check_present(need)
    with pytest.raises(WeightsNotFoundError, match="pip install"):
        prefetch(need)
