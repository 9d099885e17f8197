"""DiffusersT2I against what real diffusers pipelines do (issue 16 items 6-11, issue 12 item 5).

Every test loads the tiny StableDiffusionPipeline saved to disk through the user's code path and
reads the real pipeline's behaviour: its ``__call__`` signature defaults, its tokenizer, its
scheduler state, diffusers' ``load_lora_weights`` / ``set_adapters``.
"""

from __future__ import annotations

import inspect
import json
import shutil
import sys
import threading
import weakref

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from repainter.backends.t2i.diffusers import (  # noqa: E402
    NAN_DECODE,
    DiffusersT2I,
    pipeline_lock,
)
from repainter.graph.nodes import CaseFailure, flag_summary, render_batch  # noqa: E402
from repainter.prefetch import check_present  # noqa: E402
from repainter.weights import WeightsNotFoundError, requirements_for  # noqa: E402


def _arr(generated):
    return np.asarray(generated.image).astype(int)


# -- item 6: labels sharing one pipeline --------------------------------------------------------


def test_two_labels_rendering_at_once_equal_their_sequential_renders(tiny_sd_path):
    # same load settings -> one shared pipeline object; different step counts make the shared
    # scheduler's per-call state (timesteps) collide when both run at once
    a = DiffusersT2I(model=str(tiny_sd_path), device="cpu", steps=2, guidance_scale=3.0)
    b = DiffusersT2I(model=str(tiny_sd_path), device="cpu", steps=5, guidance_scale=3.0)
    assert a.pipe is b.pipe and pipeline_lock(a.pipe) is pipeline_lock(b.pipe)
    prompts, seeds = ["a red cat", "a blue dog"], [1, 2]
    sequential = {"a": a.generate(prompts, seeds), "b": b.generate(prompts, seeds)}
    concurrent: dict[str, list] = {}

    def render(name, backend):
        concurrent[name] = backend.generate(prompts, seeds)

    threads = [threading.Thread(target=render, args=item) for item in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in ("a", "b"):
        for seq, con in zip(sequential[name], concurrent[name]):
            assert np.array_equal(_arr(seq), _arr(con))


# -- item 7: reproducible noise, identity --------------------------------------------------------


def test_cpu_generators_and_identity_names_device_offload_versions(tiny_sd_path):
    import diffusers

    t2i = DiffusersT2I(model=str(tiny_sd_path), device="cpu", steps=2)
    (out,) = t2i.generate(["a cat"], [0])
    params = t2i.identity()["params"]
    assert params["device_type"] == "cpu" and params["offload"] == "none"
    assert params["generator_device"] == "cpu" and out.metadata["generator_device"] == "cpu"
    assert t2i.identity()["versions"]["diffusers"] == diffusers.__version__
    assert t2i.identity()["versions"]["torch"] == torch.__version__.split("+")[0]
    with pytest.raises(ValueError, match="offload"):
        DiffusersT2I(model=str(tiny_sd_path), device="cpu", offload="model")


# -- item 8: out-of-memory retry outside the handler ------------------------------------------


class _OOMOnBigBatches:
    """Runs out of memory on batches over 1, holding a tensor in the failing frame."""

    def __init__(self):
        self.held: list[weakref.ref] = []
        self.seen: list[tuple] = []

    def generate(self, prompts, seeds):
        from PIL import Image

        from repainter.backends.base import GeneratedImage

        self.seen.append((len(prompts), sys.exc_info()[0],
                          [ref() is None for ref in self.held]))
        if len(prompts) > 1:
            activations = torch.zeros(1000)
            self.held.append(weakref.ref(activations))
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [GeneratedImage(Image.new("RGB", (4, 4)), p, s) for p, s in zip(prompts, seeds)]


def test_oom_retry_runs_after_the_failed_call_is_released():
    backend = _OOMOnBigBatches()
    images = render_batch(backend, ["a", "b", "c", "d"], [1, 2, 3, 4])
    assert [g.prompt for g in images] == ["a", "b", "c", "d"]
    retries = [entry for entry in backend.seen if entry[0] == 1]
    # no half-batch runs inside an except block, and the failed calls' tensors are freed
    assert all(exc_type is None for _, exc_type, _ in retries)
    assert all(all(freed) for _, _, freed in retries)
    with pytest.raises(CaseFailure, match="batch of 1"):
        render_batch(type("Always", (), {"generate": lambda self, p, s: (_ for _ in ()).throw(
            torch.OutOfMemoryError("CUDA out of memory"))})(), ["a"], [1])


def test_offload_honours_the_device_index(tiny_sd_path, monkeypatch):
    t2i = DiffusersT2I(model=str(tiny_sd_path), device="cpu", steps=2)
    calls = []
    sig = inspect.signature(t2i.pipe.enable_model_cpu_offload)
    assert "gpu_id" in sig.parameters  # diffusers' own way to pick the accelerator index
    monkeypatch.setattr(t2i.pipe, "enable_model_cpu_offload",
                        lambda **kw: calls.append(("model", kw)))
    monkeypatch.setattr(t2i.pipe, "enable_sequential_cpu_offload",
                        lambda **kw: calls.append(("sequential", kw)))
    t2i.device = torch.device("cuda:1")
    for mode in ("model", "sequential"):
        t2i.offload = mode
        t2i._place(t2i.pipe)
    assert calls == [("model", {"gpu_id": 1, "device": "cuda"}),
                     ("sequential", {"gpu_id": 1, "device": "cuda"})]


def test_vae_slicing_and_tiling_are_applied_and_recorded(tiny_sd_path):
    t2i = DiffusersT2I(model=str(tiny_sd_path), device="cpu", steps=2, vae_slicing=True,
                       vae_tiling=True)
    assert t2i.pipe.vae.use_slicing and t2i.pipe.vae.use_tiling
    assert t2i.identity()["params"]["vae_slicing"] is True
    plain = DiffusersT2I(model=str(tiny_sd_path), device="cpu", steps=2)
    assert plain.pipe is not t2i.pipe  # a different load key: the shared pipeline is untouched


# -- item 9: LoRA, VAE and safety checker overrides, real errors ---------------------------------


def test_lora_changes_renders_and_is_in_the_identity(tiny_sd_path, tiny_sd_lora_path):
    base = DiffusersT2I(model=str(tiny_sd_path), device="cpu", steps=2, guidance_scale=3.0)
    lora = [{"path": str(tiny_sd_lora_path), "weight_name": "pytorch_lora_weights.safetensors",
             "scale": 1.0}]
    tuned = DiffusersT2I(model=str(tiny_sd_path), device="cpu", steps=2, guidance_scale=3.0,
                         lora=lora)
    off = DiffusersT2I(model=str(tiny_sd_path), device="cpu", steps=2, guidance_scale=3.0,
                       lora=[{**lora[0], "scale": 0.0}])
    assert tuned.pipe is not base.pipe and tuned.pipe is not off.pipe
    assert tuned.pipe.get_active_adapters() == ["lora0"]
    (b,), (t,), (o,) = (m.generate(["a red cat"], [3]) for m in (base, tuned, off))
    assert np.abs(_arr(t) - _arr(b)).mean() > 1.0  # the adapter is applied
    assert np.abs(_arr(o) - _arr(b)).max() <= 1  # scale 0 is the base model
    assert tuned.identity()["params"]["lora"][0]["scale"] == 1.0
    assert tuned.identity() != off.identity()
    with pytest.raises(ValueError, match="unknown keys"):
        DiffusersT2I(model=str(tiny_sd_path), device="cpu", lora=[{"path": "x", "scal": 1}])


def test_vae_override_and_no_safety_checker(tiny_sd_path):
    t2i = DiffusersT2I(model=str(tiny_sd_path), device="cpu", steps=2,
                       vae=str(tiny_sd_path / "vae"), safety_checker=None)
    assert t2i.pipe.safety_checker is None
    params = t2i.identity()["params"]
    assert params["vae"] == str(tiny_sd_path / "vae") and params["safety_checker"] is False


def test_a_broken_model_is_not_called_missing(tiny_sd_path, tmp_path):
    broken = tmp_path / "broken-sd"
    shutil.copytree(tiny_sd_path, broken)
    (broken / "unet" / "config.json").write_text("{not json")
    with pytest.raises(Exception) as info:
        DiffusersT2I(model=str(broken), device="cpu")
    assert not isinstance(info.value, WeightsNotFoundError)
    assert "download" not in str(info.value)


def test_single_file_checkpoint_loads_offline_with_a_local_config(tiny_sd_path,
                                                                   tiny_sd_single_file):
    # an original-layout .safetensors (what fine-tunes ship) through from_single_file, with the
    # component configs from a local folder: the same weights, so the same renders
    folder = DiffusersT2I(model=str(tiny_sd_path), device="cpu", steps=2, guidance_scale=3.0)
    single = DiffusersT2I(model=str(tiny_sd_single_file), config=str(tiny_sd_path),
                          device="cpu", steps=2, guidance_scale=3.0)
    assert type(single.pipe).__name__ == "StableDiffusionPipeline"
    assert single.identity()["params"]["pipeline_class"] == "StableDiffusionPipeline"
    (a,), (b,) = folder.generate(["a red cat"], [5]), single.generate(["a red cat"], [5])
    assert np.array_equal(_arr(a), _arr(b))
    needs = requirements_for("diffusers", {"model": str(tiny_sd_single_file),
                                           "config": str(tiny_sd_path)})
    assert [check_present(n) for n in needs] == [True, True]  # what `repainter doctor` checks
    with pytest.raises(ValueError, match="no pipeline class"):
        DiffusersT2I(model=str(tiny_sd_single_file), config=str(tiny_sd_path), device="cpu",
                     pipeline="NoSuchPipeline")


def test_single_file_needs_an_existing_file(tmp_path):
    (missing,) = requirements_for("diffusers", {"model": str(tmp_path / "missing.safetensors")})
    assert not check_present(missing)
    with pytest.raises(WeightsNotFoundError, match="no such checkpoint file"):
        DiffusersT2I(model=str(tmp_path / "missing.safetensors"), device="cpu")


# -- item 10: what actually ran; refuse what cannot run ------------------------------------------


def test_unset_settings_are_recorded_as_the_pipeline_defaults(tiny_sd_path):
    t2i = DiffusersT2I(model=str(tiny_sd_path), device="cpu")
    signature = inspect.signature(t2i.pipe.__call__).parameters
    side = t2i.pipe.unet.config.sample_size * t2i.pipe.vae_scale_factor
    effective = t2i.identity()["effective"]
    assert effective == {"steps": signature["num_inference_steps"].default,
                         "guidance_scale": signature["guidance_scale"].default,
                         "width": side, "height": side}
    assert t2i.identity()["params"]["steps"] is None  # what the user set stays visible


def test_misspelt_extra_keys_and_no_effect_settings_are_refused(tiny_sd_path):
    with pytest.raises(ValueError, match="num_inference_step.*did you mean num_inference_steps"):
        DiffusersT2I(model=str(tiny_sd_path), device="cpu", extra={"num_inference_step": 4})
    with pytest.raises(ValueError, match="set by repainter"):
        DiffusersT2I(model=str(tiny_sd_path), device="cpu", extra={"output_type": "pt"})
    with pytest.raises(ValueError, match="negative_prompt has no effect at guidance_scale 1"):
        DiffusersT2I(model=str(tiny_sd_path), device="cpu", guidance_scale=1.0,
                     negative_prompt="blurry")
    ok = DiffusersT2I(model=str(tiny_sd_path), device="cpu", steps=2, extra={"eta": 0.5})
    assert ok.identity()["params"]["extra"] == {"eta": 0.5}


# -- item 11: NaN decodes are not safety blanking; the flagged share --------------------------


def test_nan_decode_is_flagged_apart_from_safety_blanking(tiny_sd_path, monkeypatch):
    t2i = DiffusersT2I(model=str(tiny_sd_path), device="cpu", steps=2, dtype="float32",
                       scheduler="DDIMScheduler")
    decode = t2i.pipe.vae.decode

    def nan_decode(latents, *args, **kwargs):  # what an fp16 VAE overflow returns
        out = decode(latents, *args, **kwargs)
        sample = out[0] if isinstance(out, tuple) else out.sample
        sample[0] = float("nan")
        return out

    monkeypatch.setattr(t2i.pipe.vae, "decode", nan_decode)
    first, second = t2i.generate(["x", "y"], [0, 1])
    assert first.flagged == NAN_DECODE and second.flagged is None
    rounds = [{"candidates": [{"flagged": first.flagged}, {"flagged": None}]},
              {"candidates": [{"flagged": "safety_checker_blanked"}, {"flagged": None}]}]
    summary = flag_summary(rounds)
    assert summary == {"candidates": 4, "flagged": 2, "flagged_share": 0.5,
                       "by_flag": {NAN_DECODE: 1, "safety_checker_blanked": 1}}


# -- issue 12 item 5: prompt budget and truncation ----------------------------------------------


def test_prompt_budget_and_dropped_tokens_follow_the_tokenizer(tiny_sd_path):
    t2i = DiffusersT2I(model=str(tiny_sd_path), device="cpu", steps=2)
    tokenizer = t2i.pipe.tokenizer
    budget = t2i.prompt_budget()
    assert budget.max_tokens == tokenizer.model_max_length - 2  # BOS and EOS take two
    assert budget.tokenizer == type(tokenizer).__name__
    short, long = "abc", " ".join(["abc"] * 40)
    out = t2i.generate([short, long], [0, 0])
    n_long = len(tokenizer(long, truncation=False).input_ids)
    assert out[0].metadata["prompt_tokens_dropped"] == 0
    assert out[1].metadata["prompt_tokens_dropped"] == n_long - tokenizer.model_max_length > 0
    # the pipeline itself reads only model_max_length ids: the dropped tail changes nothing
    cut = tokenizer.decode(tokenizer(long, truncation=True,
                                     max_length=tokenizer.model_max_length).input_ids[1:-1])
    (same,) = t2i.generate([cut], [0])
    assert np.abs(_arr(same) - _arr(out[1])).max() <= 1
    assert json.dumps(t2i.identity()["prompt_budget"])


def test_single_file_loading_options_it_cannot_honour_warn_and_are_not_recorded(
        tiny_sd_path, tiny_sd_single_file):
    # from_single_file drops variant / use_safetensors without a word: the backend says so and
    # records what it passed, so the identity (the render-cache key) is the plain file's
    plain = DiffusersT2I(model=str(tiny_sd_single_file), config=str(tiny_sd_path), device="cpu",
                         steps=2)
    with pytest.warns(UserWarning, match=r"variant='fp16', use_safetensors=True does not apply"):
        asked = DiffusersT2I(model=str(tiny_sd_single_file), config=str(tiny_sd_path),
                             device="cpu", steps=2, variant="fp16", use_safetensors=True)
    params = asked.identity()["params"]
    assert params["variant"] is None and "use_safetensors" not in params
    assert asked.identity() == plain.identity()
    (a,), (b,) = plain.generate(["a red cat"], [3]), asked.generate(["a red cat"], [3])
    assert np.array_equal(_arr(a), _arr(b))
