"""Any diffusers text-to-image pipeline (Stable Diffusion 1.x/2.x/XL, SD3, Flux, PixArt ...).

The pipeline is loaded with ``AutoPipelineForText2Image.from_pretrained`` from a hub id or a local
folder (through :mod:`repainter.weights`, so missing weights fail fast with a clear error), or
with ``<pipeline>.from_single_file`` from a ``.safetensors`` / ``.ckpt`` checkpoint. LoRA
adapters (``lora``), a replacement ``vae`` and ``safety_checker: null`` evaluate fine-tunes of a
base model. All prompts of one ``generate`` call are rendered as one batch (chunked by
``batch_size``) with one CPU ``torch.Generator`` per candidate (diffusers' own advice: the same
noise on every device and offload setting). A candidate's image depends on its prompt and seed
and, slightly, on the batch it was rendered in: batched arithmetic differs in the last bits
(measured up to 1 grey level on CPU).

Labels that share load settings share one pipeline object (the per-process model cache); a
diffusers pipeline is not thread-safe (its scheduler keeps per-call state), so calls on one
pipeline object are serialised by a lock kept per pipeline.

What ran is recorded: steps, guidance and size the pipeline used when they were left unset (its
``__call__`` defaults; the size of the image it returned), the device type, offload mode, LoRA
adapters and the diffusers / torch versions (all part of :meth:`identity`, the render-cache key).
The identity's ``weights`` hold what the loaded files contain (:mod:`repainter.file_identity`):
the SHA-256 of every local file and folder (model, single file, LoRA, VAE, config) and the
cached commit of every hub id, so a file replaced at the same path is a new model.
An ``extra`` key the pipeline does not take, or a setting the pipeline would ignore (a negative
prompt without classifier-free guidance), is an error. ``variant`` and ``use_safetensors`` do not
apply to a single checkpoint file (``from_single_file`` would drop them): they are left out with
a warning, and the identity records what was passed.

Images are flagged so that they are never scored as real renders: ``safety_checker_blanked``
where the pipeline reported ``nsfw_content_detected``, ``nan_decode`` where the decoded image
holds NaN (an fp16 VAE overflow: use an fp16-fixed VAE or float32), ``all_black`` for any other
image with no signal. A prompt longer than the text encoder reads is recorded with the number of
tokens the pipeline dropped (``prompt_tokens_dropped``).
"""

from __future__ import annotations

import difflib
import inspect
import threading
import warnings
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from repainter.backends._torch import (
    cached_model,
    dtype_name,
    release_model,
    select_device,
    select_dtype,
)
from repainter.backends.base import GeneratedImage, PromptBudget, T2IBackend
from repainter.file_identity import weights_identity
from repainter.weights import SINGLE_FILE, WeightRequirement, hub_load, is_single_file

BLANKED = "safety_checker_blanked"
NAN_DECODE = "nan_decode"
ALL_BLACK = "all_black"
OFFLOAD_MODES = ("none", "model", "sequential", "group")

# One lock per pipeline object: labels sharing a cached pipeline take turns on it.
_PIPELINE_LOCKS: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def pipeline_lock(pipe: Any) -> threading.Lock:
    """The lock every backend holds while it calls ``pipe`` (one per pipeline object)."""
    with _LOCKS_GUARD:
        lock = _PIPELINE_LOCKS.get(pipe)
        if lock is None:
            lock = _PIPELINE_LOCKS[pipe] = threading.Lock()
        return lock


def is_blank(image: Image.Image) -> bool:
    """True for an image whose pixels are all zero (what safety checkers return)."""
    arr = np.asarray(image)
    return arr.size > 0 and int(arr.max()) == 0


def render_flag(nsfw: bool, pixels: np.ndarray) -> str | None:
    """Why a decoded image (floats in [0, 1], HWC) must not be scored, or None."""
    if nsfw:
        return BLANKED
    if np.isnan(pixels).any():
        return NAN_DECODE
    if pixels.size and float(np.nanmax(pixels)) <= 0.0:
        return ALL_BLACK
    return None


def _to_pil(pixels: np.ndarray) -> Image.Image:
    """diffusers' own float -> uint8 conversion (``numpy_to_pil``), NaN as 0."""
    arr = np.nan_to_num(pixels, nan=0.0)
    return Image.fromarray((arr * 255).round().clip(0, 255).astype("uint8")).convert("RGB")


def _lora_entries(lora: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """``lora`` as a list of ``{path, weight_name, scale, adapter_name}`` (names unique)."""
    entries = []
    for i, item in enumerate(lora or []):
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict) or not item.get("path"):
            raise ValueError(f"diffusers: lora[{i}] needs a `path` (a folder, file or hub id)")
        unknown = set(item) - {"path", "weight_name", "scale", "adapter_name"}
        if unknown:
            raise ValueError(f"diffusers: lora[{i}] has unknown keys {sorted(unknown)}")
        entries.append({"path": str(item["path"]), "weight_name": item.get("weight_name"),
                        "scale": float(item.get("scale", 1.0)),
                        "adapter_name": str(item.get("adapter_name") or f"lora{i}")})
    names = [e["adapter_name"] for e in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"diffusers: lora adapter names must differ, got {names}")
    return entries


def _versions() -> dict[str, str]:
    import diffusers

    return {"diffusers": diffusers.__version__, "torch": torch.__version__.split("+")[0]}


def _single_file_ignores(model: str, variant: str | None,
                         use_safetensors: bool | None) -> tuple[None, None]:
    """Warn about the loading options a single checkpoint file cannot honour (``from_single_file``
    silently drops them); they are neither passed nor recorded."""
    ignored = [f"{name}={value!r}" for name, value in (("variant", variant),
                                                      ("use_safetensors", use_safetensors))
               if value is not None]
    if ignored:
        warnings.warn(f"diffusers: {', '.join(ignored)} does not apply to the single checkpoint "
                      f"file {model}; ignored (not recorded in the identity)", stacklevel=3)
    return None, None


class DiffusersT2I(T2IBackend):
    """A diffusers text-to-image pipeline, from a hub id, a local folder or a single file.

    Params: ``model`` (hub id, folder, or a ``.safetensors`` / ``.ckpt`` file), ``revision``,
    ``variant`` (e.g. "fp16"), ``dtype`` (auto/float16/bfloat16/float32), ``device``
    (auto/cuda/cuda:1/cpu/...), ``offload`` (none / model / sequential / group; ``cpu_offload:
    true`` is ``model``), ``vae_slicing`` / ``vae_tiling``, ``steps``, ``guidance_scale``,
    ``width``, ``height``, ``negative_prompt``, ``scheduler`` (a diffusers scheduler class name,
    built from the pipeline's scheduler config), ``batch_size`` (default: the whole call in one
    batch), ``extra`` (more keyword arguments of the pipeline's ``__call__``; unknown names are an
    error), ``lora`` (list of ``{path, weight_name, scale, adapter_name}``), ``vae`` (an
    ``AutoencoderKL`` folder or hub id, e.g. madebyollin/sdxl-vae-fp16-fix), ``safety_checker``
    (null / false: no checker), ``use_safetensors``, and for single files ``pipeline`` (class
    name, default StableDiffusionPipeline) and ``config`` (a local pipeline folder or hub id
    whose configs describe the checkpoint). ``None`` means "the pipeline's default"; what the
    pipeline then used is recorded under ``effective``.
    """

    kind = "diffusers"

    @classmethod
    def requirements(cls, params: dict[str, Any]) -> list[WeightRequirement]:
        """The pipeline (folder, hub id at a revision / variant), or a single checkpoint file
        and the folder of its configs; nothing when no ``model`` is given."""
        model = params.get("model")
        if not model:
            return []
        if is_single_file(str(model)):  # the checkpoint file, and the folder of its configs
            needs = [WeightRequirement("diffusers", "diffusers", str(model), extra=SINGLE_FILE)]
            if params.get("config"):
                needs.append(WeightRequirement("diffusers", "diffusers", str(params["config"])))
            return needs
        return [WeightRequirement("diffusers", "diffusers", str(model), params.get("revision"),
                                  params.get("variant"))]

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        dtype: str = "auto",
        device: str = "auto",
        cpu_offload: bool = False,
        steps: int | None = None,
        guidance_scale: float | None = None,
        width: int | None = None,
        height: int | None = None,
        negative_prompt: str | None = None,
        scheduler: str | None = None,
        batch_size: int | None = None,
        variant: str | None = None,
        extra: dict[str, Any] | None = None,
        offload: str | None = None,
        vae_slicing: bool = False,
        vae_tiling: bool = False,
        lora: Sequence[dict[str, Any]] | None = None,
        vae: str | None = None,
        safety_checker: bool | None = True,
        use_safetensors: bool | None = None,
        pipeline: str | None = None,
        config: str | None = None,
    ):
        if not model:
            raise ValueError("diffusers: `model` (hub id or local path) is required")
        if batch_size is not None and batch_size < 1:
            raise ValueError("diffusers: batch_size must be >= 1")
        self._place_on(device, dtype, offload or ("model" if cpu_offload else "none"))
        self.model = str(model)
        self.single_file = is_single_file(self.model)
        if self.single_file:
            variant, use_safetensors = _single_file_ignores(self.model, variant, use_safetensors)
        self.revision, self.variant, self.use_safetensors = revision, variant, use_safetensors
        self.steps, self.guidance_scale = steps, guidance_scale
        self.width, self.height = width, height
        self.negative_prompt = negative_prompt
        self.scheduler_name = scheduler
        self.batch_size = batch_size
        self.extra = dict(extra or {})
        self.vae_slicing, self.vae_tiling = bool(vae_slicing), bool(vae_tiling)
        self.lora = _lora_entries(lora)
        self.vae = vae
        self.safety_checker = bool(safety_checker)
        self.pipeline_class = pipeline or ("StableDiffusionPipeline" if self.single_file else None)
        self.config = config
        self._load_params = self._load_settings()
        self.pipe = cached_model("diffusers", self._load_params, self._load)
        self.weights = {**self._load_params["weights"],
                        **weights_identity(self._sources(), hub=True)}
        self._signature = inspect.signature(self.pipe.__call__).parameters
        self._check_settings()

    def _place_on(self, device: str, dtype: str, offload: str) -> None:
        """The device, dtype and offload mode; an offload needs an accelerator."""
        if offload not in OFFLOAD_MODES:
            raise ValueError(f"diffusers: offload must be one of {OFFLOAD_MODES}, not {offload!r}")
        self.offload = offload
        self.cpu_offload = offload != "none"
        self.device = select_device(device)
        if self.cpu_offload and self.device.type == "cpu":
            raise ValueError(f"diffusers: offload={offload!r} moves weights to an accelerator; "
                             "the device is the CPU")
        self.dtype = select_dtype(dtype, self.device)

    def _load_settings(self) -> dict[str, Any]:
        """Everything the loaded pipeline depends on: the key of the per-process model cache
        (labels with the same settings share one pipeline)."""
        return {
            "model": self.model, "revision": self.revision, "variant": self.variant,
            "dtype": dtype_name(self.dtype), "device": str(self.device), "offload": self.offload,
            "scheduler": self.scheduler_name, "lora": self.lora, "vae": self.vae,
            "safety_checker": self.safety_checker, "use_safetensors": self.use_safetensors,
            "pipeline": self.pipeline_class, "config": self.config,
            "vae_slicing": self.vae_slicing, "vae_tiling": self.vae_tiling,
            # content of the local files: a replaced file loads (and keys renders) anew
            "weights": weights_identity(self._sources(), hub=False),
        }

    def _sources(self) -> list[tuple[str, str | None, str | None]]:
        """(path or hub id, revision, weight_name) of everything the pipeline is loaded from."""
        sources = [(self.model, self.revision, None)]
        sources += [(e["path"], None, e["weight_name"]) for e in self.lora]
        sources += [(name, None, None) for name in (self.vae, self.config) if name]
        return sources

    def close(self) -> None:
        """Drop the pipeline (model-at-a-time scheduling releases one model before the next)."""
        release_model("diffusers", self._load_params)
        self.pipe = None

    # -- loading --------------------------------------------------------------------------------

    def _load_kwargs(self) -> dict[str, Any]:
        from diffusers.pipelines import pipeline_utils

        # diffusers renamed torch_dtype to dtype (torch_dtype is deprecated where dtype exists)
        dtype_kw = "dtype" if hasattr(pipeline_utils, "_resolve_dtype") else "torch_dtype"
        kwargs: dict[str, Any] = {dtype_kw: self.dtype}
        for key in ("revision", "variant", "use_safetensors"):
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        if not self.safety_checker:
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        if self.vae:
            from diffusers import AutoencoderKL

            kwargs["vae"] = hub_load(AutoencoderKL.from_pretrained, self.vae, "diffusers",
                                     **{dtype_kw: self.dtype})
        return kwargs

    def _load(self):
        import diffusers
        from diffusers import AutoPipelineForText2Image

        kwargs = self._load_kwargs()
        if self.single_file:
            pipe = self._load_single_file(kwargs)
        else:
            pipe = hub_load(AutoPipelineForText2Image.from_pretrained, self.model, "diffusers",
                            **kwargs)
        self._load_lora(pipe)
        if self.scheduler_name:
            cls = getattr(diffusers, self.scheduler_name, None)
            if cls is None or not hasattr(cls, "from_config"):
                raise ValueError(
                    f"diffusers has no scheduler class {self.scheduler_name!r} "
                    "(e.g. EulerDiscreteScheduler, DPMSolverMultistepScheduler)"
                )
            pipe.scheduler = cls.from_config(pipe.scheduler.config)
        self._place(pipe)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def _load_single_file(self, kwargs: dict[str, Any]):
        import diffusers

        from repainter.weights import WeightsNotFoundError

        path = Path(self.model).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                str(path), "diffusers", "give the path of a .safetensors / .ckpt file, or a "
                "pipeline folder or hub id", f"no such checkpoint file {str(path)!r}")
        cls = getattr(diffusers, self.pipeline_class or "", None)
        if cls is None or not hasattr(cls, "from_single_file"):
            raise ValueError(f"diffusers: {self.pipeline_class!r} is no pipeline class that "
                             "loads single files (e.g. StableDiffusionXLPipeline)")
        if self.config:  # component configs from a local folder (or hub id): no hub lookup
            kwargs["config"] = self.config
            kwargs["local_files_only"] = Path(self.config).expanduser().exists()
        return cls.from_single_file(str(path), **kwargs)

    def _load_lora(self, pipe) -> None:
        if not self.lora:
            return
        if not hasattr(pipe, "load_lora_weights"):
            raise ValueError(f"diffusers: {type(pipe).__name__} cannot load LoRA weights")
        for entry in self.lora:
            options = {"adapter_name": entry["adapter_name"]}
            if entry["weight_name"]:
                options["weight_name"] = entry["weight_name"]
            pipe.load_lora_weights(entry["path"], **options)
        pipe.set_adapters([e["adapter_name"] for e in self.lora],
                          adapter_weights=[e["scale"] for e in self.lora])

    def _place(self, pipe) -> None:
        """Move to the device, or offload (to the device's own index, e.g. cuda:1)."""
        index = self.device.index
        if self.offload == "model":
            pipe.enable_model_cpu_offload(gpu_id=index, device=self.device.type)
        elif self.offload == "sequential":
            pipe.enable_sequential_cpu_offload(gpu_id=index, device=self.device.type)
        elif self.offload == "group":
            pipe.enable_group_offload(onload_device=self.device, offload_type="leaf_level")
        else:
            pipe.to(self.device)
        if self.vae_slicing:
            pipe.vae.enable_slicing()
        if self.vae_tiling:
            pipe.vae.enable_tiling()

    # -- settings ---------------------------------------------------------------------------------

    def _default(self, name: str) -> Any:
        param = self._signature.get(name)
        return None if param is None or param.default is inspect.Parameter.empty else param.default

    def _check_settings(self) -> None:
        """Refuse ``extra`` names the pipeline does not take and settings it would ignore."""
        named = {n for n, p in self._signature.items() if p.kind not in (p.VAR_KEYWORD,
                                                                         p.VAR_POSITIONAL)}
        reserved = {"prompt", "generator", "output_type", "num_images_per_prompt"}
        for key in self.extra:
            if key in reserved:
                raise ValueError(f"diffusers: extra.{key} is set by repainter itself")
            if key not in named:
                near = difflib.get_close_matches(key, sorted(named), n=3)
                raise ValueError(
                    f"diffusers: {type(self.pipe).__name__} takes no argument {key!r}"
                    + (f" (did you mean {', '.join(near)}?)" if near else ""))
        for name, value in (("negative_prompt", self.negative_prompt),
                            ("guidance_scale", self.guidance_scale),
                            ("width", self.width), ("height", self.height),
                            ("steps", self.steps)):
            arg = "num_inference_steps" if name == "steps" else name
            if value is not None and arg not in named:
                raise ValueError(f"diffusers: {type(self.pipe).__name__} takes no {arg}")
        if self.negative_prompt is not None:
            self._check_negative_prompt_has_effect()
        guidance_embeds = getattr(getattr(getattr(self.pipe, "transformer", None), "config", None),
                                  "guidance_embeds", None)
        if self.guidance_scale is not None and guidance_embeds is False:
            warnings.warn(f"diffusers: {self.model} has no guidance embedding (e.g. FLUX.1-schnell):"
                          f" guidance_scale={self.guidance_scale} has no effect", stacklevel=3)

    def _check_negative_prompt_has_effect(self) -> None:
        if "true_cfg_scale" in self._signature:  # FLUX: a negative prompt needs true CFG > 1
            scale = self.extra.get("true_cfg_scale", self._default("true_cfg_scale"))
            if scale is None or float(scale) <= 1:
                raise ValueError(
                    f"diffusers: {type(self.pipe).__name__} ignores negative_prompt unless "
                    f"extra.true_cfg_scale > 1 (it is {scale})")
            return
        guidance = self.effective_guidance()
        if guidance is not None and float(guidance) <= 1:
            raise ValueError(f"diffusers: negative_prompt has no effect at guidance_scale "
                             f"{guidance} (classifier-free guidance needs > 1)")

    def effective_guidance(self) -> float | None:
        return self.guidance_scale if self.guidance_scale is not None else self._default(
            "guidance_scale")

    def _call_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.steps is not None:
            params["num_inference_steps"] = int(self.steps)
        if self.guidance_scale is not None:
            params["guidance_scale"] = float(self.guidance_scale)
        if self.width is not None:
            params["width"] = int(self.width)
        if self.height is not None:
            params["height"] = int(self.height)
        params.update(self.extra)
        return params

    # -- prompt budget ----------------------------------------------------------------------------

    def _budget_tokenizer(self) -> tuple[Any, int] | tuple[None, None]:
        """The tokenizer that carries the prompt's content and how many ids it reads (with its
        special tokens): the long-text tokenizer (T5, Gemma ...) with ``max_sequence_length``
        where the pipeline has one (SD3, FLUX, PixArt, Sana), else the CLIP tokenizer's
        ``model_max_length`` (SD 1.x / 2.x / XL)."""
        max_sequence = self._default("max_sequence_length")
        if max_sequence:
            for name in ("tokenizer_3", "tokenizer_2", "tokenizer"):
                tok = getattr(self.pipe, name, None)
                if tok is not None and "CLIP" not in type(tok).__name__:
                    return tok, int(self.extra.get("max_sequence_length", max_sequence))
        tok = getattr(self.pipe, "tokenizer", None)
        length = getattr(tok, "model_max_length", None)
        if tok is None or not length or length > 100_000:
            return None, None
        return tok, int(length)

    def prompt_budget(self) -> PromptBudget:
        tok, length = self._budget_tokenizer()
        if tok is None:
            return PromptBudget()
        specials = len(tok("").input_ids)
        return PromptBudget(max_tokens=length - specials, tokenizer=type(tok).__name__)

    def count_tokens(self, prompt: str) -> tuple[int | None, int]:
        """(tokens of ``prompt`` with special tokens, tokens the pipeline drops past its budget)."""
        tok, length = self._budget_tokenizer()
        if tok is None:
            return None, 0
        ids = tok(prompt, truncation=False).input_ids
        return len(ids), max(0, len(ids) - length)

    # -- generation -----------------------------------------------------------------------------

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[GeneratedImage]:
        prompts, seeds = list(prompts), [int(s) for s in seeds]
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        if not prompts:
            return []
        size = self.batch_size or len(prompts)
        results: list[GeneratedImage] = []
        for start in range(0, len(prompts), size):
            results += self._render_chunk(prompts[start:start + size], seeds[start:start + size])
        return results

    def _render_chunk(self, prompts: list[str], seeds: list[int]) -> list[GeneratedImage]:
        kwargs = self._call_params()
        kwargs["prompt"] = prompts
        # CPU generators: the same noise whatever the device or offload (diffusers' advice)
        kwargs["generator"] = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        kwargs["output_type"] = "np"  # floats: a NaN decode stays visible (PIL would make it 0)
        if self.negative_prompt is not None:
            kwargs["negative_prompt"] = [self.negative_prompt] * len(prompts)
        with pipeline_lock(self.pipe), torch.inference_mode():
            out = self.pipe(**kwargs)
        arrays = [np.asarray(a, dtype=np.float32) for a in out.images]
        if len(arrays) != len(prompts):
            raise RuntimeError(f"{self.model} returned {len(arrays)} images for {len(prompts)} prompts")
        nsfw = getattr(out, "nsfw_content_detected", None)
        identity = self.identity()
        results = []
        for i, (pixels, prompt, seed) in enumerate(zip(arrays, prompts, seeds)):
            flagged_by_checker = bool(nsfw[i]) if isinstance(nsfw, (list, tuple)) else False
            image = _to_pil(pixels)
            tokens, dropped = self.count_tokens(prompt)
            # the size the pipeline really rendered (FLUX rounds to multiples of 16)
            effective = {**identity["effective"], "width": image.width, "height": image.height}
            results.append(GeneratedImage(
                image=image, prompt=prompt, seed=seed,
                flagged=render_flag(flagged_by_checker, pixels),
                metadata={**identity, "effective": effective, "seed": seed, "batch_index": i, "batch_size": len(prompts),
                          "generator_device": "cpu",
                          "nsfw_content_detected": flagged_by_checker,
                          "prompt_tokens": tokens, "prompt_tokens_dropped": dropped}))
        return results

    def effective_settings(self) -> dict[str, Any]:
        """Steps, guidance and size the pipeline runs with (its ``__call__`` defaults where unset;
        a default size is the pipeline's sample size times its VAE scale, as its ``__call__``
        computes it; the size of the returned image is recorded with each render)."""
        def pick(value, name):
            return value if value is not None else self._default(name)

        width, height = self.width, self.height
        default_side = self._default_side()
        return {"steps": pick(self.steps, "num_inference_steps"),
                "guidance_scale": self.effective_guidance(),
                "width": width if width is not None else default_side,
                "height": height if height is not None else default_side,
                **({"true_cfg_scale": pick(self.extra.get("true_cfg_scale"), "true_cfg_scale")}
                   if "true_cfg_scale" in self._signature else {})}

    def _default_side(self) -> int | None:
        scale = getattr(self.pipe, "vae_scale_factor", None)
        sample = getattr(self.pipe, "default_sample_size", None)
        if sample is None:
            denoiser = getattr(self.pipe, "unet", None) or getattr(self.pipe, "transformer", None)
            sample = getattr(getattr(denoiser, "config", None), "sample_size", None)
        if isinstance(sample, (list, tuple)):
            sample = sample[0]
        return int(sample * scale) if sample and scale else None

    def identity(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "dtype": dtype_name(self.dtype),
            "scheduler": type(self.pipe.scheduler).__name__,
            "steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "width": self.width,
            "height": self.height,
            "negative_prompt": self.negative_prompt,
            "variant": self.variant,
            "device_type": self.device.type,
            "offload": self.offload,
            "generator_device": "cpu",
            "safety_checker": self.safety_checker,
        }
        if self.extra:
            params["extra"] = dict(self.extra)
        for key in ("lora", "vae", "use_safetensors", "pipeline_class", "config"):
            if getattr(self, key):
                params[key] = getattr(self, key)
        if self.vae_slicing or self.vae_tiling:
            params["vae_slicing"], params["vae_tiling"] = self.vae_slicing, self.vae_tiling
        return {
            "backend": self.kind,
            "model": self.model,
            "revision": self.revision,
            "pipeline": type(self.pipe).__name__,
            "params": params,
            "weights": self.weights,
            "effective": self.effective_settings(),
            "prompt_budget": self.prompt_budget().as_dict(),
            "versions": _versions(),
        }
