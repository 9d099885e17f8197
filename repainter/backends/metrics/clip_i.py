"""CLIP-I: cosine similarity of open_clip image embeddings of each candidate and the reference.

Preprocessing: images converted with :func:`repainter.images.to_rgb`; if ``resize`` is set both
images are first resized to ``resize`` x ``resize`` (bicubic, aspect ratio not kept; no published
protocol does this, it is off by default); then CLIP's own evaluation transform, chosen by
``preprocess``:

* ``open_clip`` (default): the model's open_clip transform (resize shortest side + centre crop to
  the model's input size, CLIP mean / std normalisation);
* ``gill``: the Hugging Face ``CLIPProcessor`` image steps that GILL's evaluation script
  ``evals/compute_clip_similarity_vist.py`` of https://github.com/kohjingyu/gill runs
  (``CLIPProcessor.from_pretrained("openai/clip-vit-large-patch14")``, the transformers 4.x
  PIL / numpy path): shortest side to the input size with PIL bicubic, centre crop with floor
  offsets, ``x * (1/255)``, then ``(x - mean) / std`` in float32 (:func:`gill_clip_preprocess`).
  GILL's script applies no other resize. Inputs first pass the project's image-mode policy; for
  RGB images (GILL's data) that is the identity, while the processor's ``convert("RGB")`` would
  drop an alpha channel rather than composite it on white.

Embeddings are L2-normalised; the score is their cosine (1.0 = same embedding), computed in
float64.

Weights: ``model`` is an open_clip architecture name (``ViT-B-32``, ``ViT-L-14`` ...) with
``pretrained`` a tag (``openai``, ``laion2b_s34b_b79k`` ...) resolved to its Hugging Face Hub file
through :mod:`repainter.weights`, or ``checkpoint`` a local weights file of that architecture, or
``model`` itself ``hf-hub:org/repo`` / ``local-dir:/folder``. ``model_config`` (a dict or a path to
a JSON file with ``embed_dim`` / ``vision_cfg`` / ``text_cfg``) registers an architecture that
open_clip does not ship. Tags trained with QuickGELU (the OpenAI ones) get QuickGELU automatically.
The identity's ``weights`` say what was loaded (:mod:`repainter.file_identity`): the SHA-256 of a
local checkpoint, ``local-dir:`` folder or ``model_config`` file, the hub commit of an ``hf-hub:``
model or of the snapshot a tag resolved to (a tag's URL download: its SHA-256), so a replaced file
never returns cached scores.

Example (weights required, so not run as a doctest)::

    >>> metric = ClipImageSimilarity(model="ViT-B-32", pretrained="openai")  # doctest: +SKIP
    >>> metric(ref, [ref.image])  # doctest: +SKIP
    [1.0]
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from repainter.backends._torch import EmbeddingCosine, cached_model, select_device
from repainter.file_identity import (
    hub_snapshot,
    is_local,
    path_fingerprint,
    weights_identity,
)
from repainter.images import to_rgb
from repainter.weights import (
    DEFAULT_CLIP_MODEL,
    DEFAULT_CLIP_PRETRAINED,
    WeightRequirement,
    WeightsNotFoundError,
    how_to_fix,
    is_offline,
    resolve_open_clip_checkpoint,
)

PREPROCESSING = ("open_clip", "gill")


def pre_resize(image: Image.Image, resize: int | None) -> Image.Image:
    """RGB copy of ``image``, resized to ``resize`` x ``resize`` (bicubic) when ``resize`` is set."""
    image = to_rgb(image)
    if resize and image.size != (resize, resize):
        image = image.resize((resize, resize), Image.Resampling.BICUBIC)
    return image


def gill_clip_preprocess(image: Image.Image, size: int, mean: Sequence[float],
                         std: Sequence[float]) -> torch.Tensor:
    """(3, size, size) float32 tensor: the image steps of transformers 4.x ``CLIPImageProcessor``
    as GILL's ``evals/compute_clip_similarity_vist.py`` (kohjingyu/gill) runs them.

    ``get_resize_output_image_size(default_to_square=False)``: the short side becomes ``size``,
    the long side ``int(size * long / short)``; PIL bicubic resize; ``center_crop`` with
    ``(h - size) // 2`` offsets; ``rescale`` (uint8 * (1/255) cast to float32); ``normalize``.

    >>> gill_clip_preprocess(Image.new("RGB", (40, 30)), 16, [0.5] * 3, [0.5] * 3).shape
    torch.Size([3, 16, 16])
    """
    image = to_rgb(image)
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    new_h, new_w = (new_long, new_short) if width <= height else (new_short, new_long)
    image = image.resize((new_w, new_h), resample=Image.Resampling.BICUBIC, reducing_gap=None)
    arr = np.asarray(image)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    arr = arr[top:top + size, left:left + size]
    arr = (arr * (1 / 255)).astype(np.float32)
    arr = (arr - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _normalisation(preprocess: Any) -> tuple[list[float], list[float]]:
    """Mean and std of an open_clip transform's Normalize step (the weights' own values)."""
    for step in getattr(preprocess, "transforms", []):
        if hasattr(step, "mean") and hasattr(step, "std"):
            return list(map(float, step.mean)), list(map(float, step.std))
    raise ValueError("clip_i: the model's transform has no normalisation step")


def _register_config(model: str, model_config: dict[str, Any] | str) -> None:
    import open_clip

    if isinstance(model_config, dict):
        folder = Path(tempfile.mkdtemp(prefix="repainter-open-clip-cfg-"))
        path = folder / f"{model}.json"
        path.write_text(json.dumps(model_config))
    else:
        path = Path(os.path.expanduser(model_config))
        if not path.is_file():
            raise FileNotFoundError(f"clip_i: model_config file {str(path)!r} not found")
        if path.stem != model:
            # open_clip names configs by file stem; copy under the requested model name
            folder = Path(tempfile.mkdtemp(prefix="repainter-open-clip-cfg-"))
            target = folder / f"{model}.json"
            target.write_text(path.read_text())
            path = target
    open_clip.add_model_config(path)


class ClipImageSimilarity(EmbeddingCosine):
    """CLIP image-image cosine (open_clip), reference embedded once per case."""

    name = "clip_i"
    higher_is_better = True

    @classmethod
    def requirements(cls, params: dict[str, Any]) -> list[WeightRequirement]:
        """The open_clip checkpoint: a file, a hub / local-dir model, or architecture@tag."""
        model = str(params.get("model", DEFAULT_CLIP_MODEL))
        if params.get("checkpoint"):
            return [WeightRequirement("clip_i", "open_clip", model, extra=str(params["checkpoint"]))]
        if model.startswith(("hf-hub:", "local-dir:")):
            return [WeightRequirement("clip_i", "open_clip", model)]
        pretrained = params.get("pretrained", DEFAULT_CLIP_PRETRAINED)
        if not pretrained:
            return []
        return [WeightRequirement("clip_i", "open_clip", model, extra=str(pretrained))]

    def __init__(
        self,
        model: str = DEFAULT_CLIP_MODEL,
        pretrained: str | None = DEFAULT_CLIP_PRETRAINED,
        checkpoint: str | None = None,
        resize: int | None = None,
        device: str = "auto",
        batch_size: int = 32,
        model_config: dict[str, Any] | str | None = None,
        quick_gelu: bool | None = None,
        preprocess: str = "open_clip",
    ):
        if resize is not None and int(resize) < 1:
            raise ValueError("clip_i: resize must be a positive size or null")
        if preprocess not in PREPROCESSING:
            raise ValueError(f"clip_i: preprocess must be one of {PREPROCESSING}, not {preprocess!r}")
        self.preprocess = preprocess
        self.model_name = str(model)
        self.pretrained = pretrained
        self.checkpoint = checkpoint
        self.resize = int(resize) if resize else None
        self.device = select_device(device)
        self.batch_size = max(1, int(batch_size))
        self.model_config = model_config
        self.quick_gelu = quick_gelu
        local = weights_identity(self._sources(), hub=False)
        params = {
            "model": self.model_name, "pretrained": pretrained, "checkpoint": checkpoint,
            "device": str(self.device), "model_config": model_config, "quick_gelu": quick_gelu,
            "weights": local,  # a replaced local file loads (and keys scores) anew
        }
        self._model, self._preprocess, self._weights = cached_model("open_clip", params, self._load)
        self.weights = {**local, **self._resolved_weights()}
        # what the loaded model runs, whatever set it (the argument, the tag, the config)
        self.quick_gelu_used = uses_quick_gelu(self._model)

    def _sources(self) -> list[tuple[str, str | None, str | None]]:
        """The local files / folders the model is read from (hub ids are resolved on load)."""
        names = [self.checkpoint, self.model_config if isinstance(self.model_config, str) else None]
        if self.model_name.startswith("local-dir:"):
            names.append(self.model_name[len("local-dir:"):])
        if self._pretrained_is_path():
            names.append(str(self.pretrained))
        return [(str(name), None, None) for name in names if name]

    def _resolved_weights(self) -> dict[str, dict[str, Any]]:
        """The hub snapshot (or downloaded file) a tag or ``hf-hub:`` model resolved to."""
        if self.model_name.startswith("hf-hub:"):
            return weights_identity([(self.model_name[len("hf-hub:"):], None, None)], hub=True)
        path = self._weights
        if self.checkpoint or not self.pretrained or self._pretrained_is_path() \
                or not isinstance(path, str) or not os.path.isfile(path):
            return {}  # no tag, or local files (identified above)
        return {self.pretrained: hub_snapshot(path) or path_fingerprint(path)}

    def _pretrained_is_path(self) -> bool:
        return not self.checkpoint and bool(self.pretrained) and is_local(str(self.pretrained))

    def _load(self):
        import open_clip

        if self.model_config is not None:
            _register_config(self.model_name, self.model_config)
        schema = self.model_name.split(":", 1)[0] if ":" in self.model_name else None
        kwargs: dict[str, Any] = {"device": self.device}
        label = self.model_name
        if schema == "hf-hub":
            from repainter.weights import hub_load

            def load_hub(model_id: str, local_files_only: bool = False, **_: Any) -> str:
                from huggingface_hub import snapshot_download

                return snapshot_download(model_id, local_files_only=local_files_only,
                                         cache_dir=_.get("cache_dir"))

            folder = hub_load(load_hub, self.model_name[len("hf-hub:"):], "open_clip")
            model_arg, weights = f"local-dir:{folder}", self.model_name
        elif schema == "local-dir":
            folder = Path(self.model_name[len("local-dir:"):])
            if not (folder / "open_clip_config.json").is_file():
                raise WeightsNotFoundError(
                    label, "open_clip", how_to_fix("open_clip", label),
                    f"no open_clip_config.json in {str(folder)!r}",
                )
            model_arg, weights = self.model_name, self.model_name
        else:
            weights = self._architecture_weights(kwargs)
            model_arg, kwargs["pretrained"] = self.model_name, weights
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(model_arg, **kwargs)
        except (RuntimeError, FileNotFoundError, OSError) as exc:
            if is_offline() or "download" in str(exc).lower():
                raise WeightsNotFoundError(
                    label, "open_clip", how_to_fix("open_clip", label, self.pretrained), str(exc)
                ) from exc
            raise
        model.eval()
        return model, preprocess, weights

    def _architecture_weights(self, kwargs: dict[str, Any]) -> str:
        """The checkpoint of a named architecture (a tag's download or a local file); the tag's
        QuickGELU and normalisation settings go to ``kwargs``. Random weights are refused."""
        import open_clip

        label = self.model_name
        if open_clip.get_model_config(self.model_name.replace("/", "-")) is None:
            raise ValueError(
                f"clip_i: open_clip has no architecture {self.model_name!r}; pass "
                "model_config (dict or JSON path) for a custom one"
            )
        path = resolve_open_clip_checkpoint(self.model_name, self.pretrained, self.checkpoint)
        # A checkpoint given with a known tag is taken as a local copy of that tag's weights:
        # the tag's QuickGELU / normalisation settings apply.
        cfg = open_clip.get_pretrained_cfg(
            self.model_name.replace("/", "-"), self.pretrained or ""
        ) if self.pretrained and not os.path.exists(str(self.pretrained)) else {}
        quick = self.quick_gelu if self.quick_gelu is not None else cfg.get("quick_gelu")
        if quick:
            kwargs["force_quick_gelu"] = True
        for key, arg in (("mean", "image_mean"), ("std", "image_std"),
                         ("interpolation", "image_interpolation"),
                         ("resize_mode", "image_resize_mode")):
            if cfg.get(key) is not None:
                kwargs[arg] = cfg[key]
        if path is None:
            raise WeightsNotFoundError(
                label, "open_clip", how_to_fix("open_clip", label),
                "no pretrained tag or checkpoint given: refusing random weights",
            )
        return path

    # -- features ------------------------------------------------------------------------------

    def _transform(self, image: Image.Image) -> torch.Tensor:
        if self.preprocess == "gill":
            size = self._model.visual.image_size
            size = size[0] if isinstance(size, tuple | list) else int(size)
            mean, std = _normalisation(self._preprocess)
            return gill_clip_preprocess(image, size, mean, std)
        return self._preprocess(image)

    def _embed(self, images: Sequence[Image.Image]) -> torch.Tensor:
        feats = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            batch = torch.stack([self._transform(pre_resize(im, self.resize)) for im in chunk])
            with torch.inference_mode():
                out = self._model.encode_image(batch.to(self.device))
            feats.append(out.float().cpu())
        feats_t = torch.cat(feats)
        return feats_t / feats_t.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def identity(self) -> dict[str, Any]:
        return {
            "metric": self.name,
            "model": self.model_name,
            "pretrained": self.pretrained,
            "checkpoint": self.checkpoint,
            "resize": self.resize,
            "preprocess": self.preprocess,
            # the activation the loaded model uses (a tag such as openai turns QuickGELU on by
            # itself); the argument as given is quick_gelu_requested (null: the tag decides)
            "quick_gelu": self.quick_gelu_used,
            "quick_gelu_requested": self.quick_gelu,
            "weights": self.weights,
        }


def uses_quick_gelu(model: Any) -> bool:
    """Whether an open_clip model's layers use QuickGELU (the activation OpenAI's CLIP weights
    were trained with), read from the loaded modules rather than from the arguments."""
    return any(type(module).__name__ == "QuickGELU" for module in model.modules())


class ClipTextEncoder:
    """The text tower of a :class:`ClipImageSimilarity`'s model (same weights, same space).

    Used where text meets the image embeddings: the ``retrieval`` T2I backend and the ``clip``
    text scorer of diffusion-augmented retrieval. ``tokenizer`` (a Hugging Face tokenizer id or
    folder) overrides the model's own open_clip tokenizer.
    """

    def __init__(self, clip: ClipImageSimilarity, tokenizer: str | None = None):
        self.clip = clip
        self.tokenizer_name = tokenizer
        self._tokenizer = None
        self._tokenizer_files = weights_identity([(tokenizer, None, None)], hub=False) \
            if tokenizer else {}

    def _tokenize(self, prompts: list[str]) -> torch.Tensor:
        if self._tokenizer is None:
            import open_clip

            context = getattr(self.clip._model, "context_length", None) or 77
            if self.tokenizer_name:
                from open_clip.tokenizer import HFTokenizer

                self._tokenizer = HFTokenizer(self.tokenizer_name, context_length=context)
            else:
                self._tokenizer = open_clip.get_tokenizer(self.clip.model_name,
                                                          context_length=context)
        return self._tokenizer(prompts)

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings, float64 (N, D)."""
        feats = []
        for start in range(0, len(prompts), self.clip.batch_size):
            tokens = self._tokenize(list(prompts[start:start + self.clip.batch_size]))
            with torch.inference_mode():
                feats.append(self.clip._model.encode_text(tokens.to(self.clip.device)).float().cpu())
        out = torch.cat(feats).double().numpy() if feats else np.zeros((0, 0))
        return out / np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)

    def identity(self) -> dict[str, Any]:
        ident = self.clip.identity()
        return {"model": ident["model"], "pretrained": ident["pretrained"],
                "checkpoint": ident["checkpoint"], "quick_gelu": ident["quick_gelu"],
                "tokenizer": self.tokenizer_name,
                "weights": {**ident["weights"], **self._tokenizer_files}}
