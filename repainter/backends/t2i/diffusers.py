"""Any diffusers text-to-image pipeline (Stable Diffusion 1.x/2.x/XL, SD3, Flux, PixArt ...).

The pipeline is loaded with ``AutoPipelineForText2Image.from_pretrained`` from a hub id or a local
folder (through :mod:`repainter.weights`, so missing weights fail fast with a clear error). All
prompts of one ``generate`` call are rendered as one batch (chunked by ``batch_size``) with one
``torch.Generator`` per candidate, so a candidate's image depends on its own seed only.

Images the pipeline's safety checker blanked are returned flagged ``safety_checker_blanked`` (the
pipeline reported ``nsfw_content_detected`` or the image is entirely black) so that they are never
scored as real renders.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
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
from repainter.backends.base import GeneratedImage, T2IBackend
from repainter.weights import hub_load

BLANKED = "safety_checker_blanked"


def is_blank(image: Image.Image) -> bool:
    """True for an image whose pixels are all zero (what safety checkers return)."""
    arr = np.asarray(image)
    return arr.size > 0 and int(arr.max()) == 0


class DiffusersT2I(T2IBackend):
    """A diffusers text-to-image pipeline, from a hub id or a local folder.

    Params: ``model`` (hub id or path), ``revision``, ``variant`` (e.g. "fp16"), ``dtype``
    (auto/float16/bfloat16/float32), ``device`` (auto/cuda/cpu/...), ``cpu_offload`` (model CPU
    offload via accelerate), ``steps``, ``guidance_scale``, ``width``, ``height``,
    ``negative_prompt``, ``scheduler`` (a diffusers scheduler class name, e.g.
    "EulerDiscreteScheduler", built from the pipeline's scheduler config), ``batch_size``
    (default: the whole call in one batch) and ``extra`` (more keyword arguments for the pipeline
    call). ``None`` means "the pipeline's default".
    """

    kind = "diffusers"

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
    ):
        if not model:
            raise ValueError("diffusers: `model` (hub id or local path) is required")
        if batch_size is not None and batch_size < 1:
            raise ValueError("diffusers: batch_size must be >= 1")
        self.model = str(model)
        self.revision = revision
        self.variant = variant
        self.cpu_offload = bool(cpu_offload)
        self.device = select_device(device)
        self.dtype = select_dtype(dtype, self.device)
        self.steps = steps
        self.guidance_scale = guidance_scale
        self.width = width
        self.height = height
        self.negative_prompt = negative_prompt
        self.scheduler_name = scheduler
        self.batch_size = batch_size
        self.extra = dict(extra or {})
        load_params = {
            "model": self.model, "revision": revision, "variant": variant,
            "dtype": dtype_name(self.dtype), "device": str(self.device),
            "cpu_offload": self.cpu_offload, "scheduler": scheduler,
        }
        self._load_params = load_params
        self.pipe = cached_model("diffusers", load_params, self._load)

    def close(self) -> None:
        """Drop the pipeline (model-at-a-time scheduling releases one model before the next)."""
        release_model("diffusers", self._load_params)
        self.pipe = None

    # -- loading --------------------------------------------------------------------------------

    def _load(self):
        import diffusers
        from diffusers import AutoPipelineForText2Image
        from diffusers.pipelines import pipeline_utils

        # diffusers renamed torch_dtype to dtype (torch_dtype is deprecated where dtype exists)
        dtype_kw = "dtype" if hasattr(pipeline_utils, "_resolve_dtype") else "torch_dtype"
        kwargs: dict[str, Any] = {dtype_kw: self.dtype}
        if self.revision:
            kwargs["revision"] = self.revision
        if self.variant:
            kwargs["variant"] = self.variant
        pipe = hub_load(AutoPipelineForText2Image.from_pretrained, self.model, "diffusers", **kwargs)
        if self.scheduler_name:
            cls = getattr(diffusers, self.scheduler_name, None)
            if cls is None or not hasattr(cls, "from_config"):
                raise ValueError(
                    f"diffusers has no scheduler class {self.scheduler_name!r} "
                    "(e.g. EulerDiscreteScheduler, DPMSolverMultistepScheduler)"
                )
            pipe.scheduler = cls.from_config(pipe.scheduler.config)
        if self.cpu_offload:
            pipe.enable_model_cpu_offload()
        else:
            pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    # -- generation -----------------------------------------------------------------------------

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

    def _generator_device(self) -> str:
        # Offloaded pipelines create latents on the CPU generator's device and move them.
        return "cpu" if self.cpu_offload or self.device.type in ("cpu", "mps") else str(self.device)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[GeneratedImage]:
        prompts, seeds = list(prompts), [int(s) for s in seeds]
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        if not prompts:
            return []
        size = self.batch_size or len(prompts)
        call_params = self._call_params()
        accepts = set(inspect.signature(self.pipe.__call__).parameters)
        gen_device = self._generator_device()
        results: list[GeneratedImage] = []
        for start in range(0, len(prompts), size):
            chunk_prompts = prompts[start:start + size]
            chunk_seeds = seeds[start:start + size]
            kwargs = dict(call_params)
            kwargs["prompt"] = chunk_prompts
            kwargs["generator"] = [torch.Generator(gen_device).manual_seed(s) for s in chunk_seeds]
            kwargs["output_type"] = "pil"
            if self.negative_prompt is not None:
                kwargs["negative_prompt"] = [self.negative_prompt] * len(chunk_prompts)
            kwargs = {k: v for k, v in kwargs.items() if k in accepts or "kwargs" in accepts}
            with torch.inference_mode():
                out = self.pipe(**kwargs)
            images = list(out.images)
            nsfw = getattr(out, "nsfw_content_detected", None)
            if len(images) != len(chunk_prompts):
                raise RuntimeError(
                    f"{self.model} returned {len(images)} images for {len(chunk_prompts)} prompts"
                )
            for i, (image, prompt, seed) in enumerate(zip(images, chunk_prompts, chunk_seeds)):
                flagged_by_checker = bool(nsfw[i]) if isinstance(nsfw, (list, tuple)) else False
                flagged = BLANKED if flagged_by_checker or is_blank(image) else None
                results.append(
                    GeneratedImage(
                        image=image.convert("RGB"),
                        prompt=prompt,
                        seed=seed,
                        flagged=flagged,
                        metadata={
                            **self.identity(),
                            "seed": seed,
                            "batch_index": i,
                            "batch_size": len(chunk_prompts),
                            "generator_device": gen_device,
                            "nsfw_content_detected": flagged_by_checker,
                        },
                    )
                )
        return results

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
        }
        if self.extra:
            params["extra"] = dict(self.extra)
        return {
            "backend": self.kind,
            "model": self.model,
            "revision": self.revision,
            "pipeline": type(self.pipe).__name__,
            "params": params,
        }
