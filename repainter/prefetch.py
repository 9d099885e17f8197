"""Whether a spec's weights, keys and packages are here, and fetching them: ``repainter doctor``
lists :func:`doctor_rows`, ``repainter prefetch`` runs :func:`prefetch_spec`. Both only inspect
a spec (nothing is loaded into memory); what each component needs is
:func:`repainter.weights.requirements_for`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repainter.network import is_offline
from repainter.weights import (
    DEFAULT_LPIPS_NET,
    OPEN_CLIP_FILES,
    SINGLE_FILE,
    WeightRequirement,
    WeightsNotFoundError,
    hf_cache_dir,
    how_to_fix,
    looks_like_path,
    missing_weights,
    requirements_for,
    resolve_lpips_backbone,
    resolve_open_clip_checkpoint,
    short_error,
)

if TYPE_CHECKING:  # pragma: no cover
    from repainter.spec import RunSpec


def _snapshot_file(repo: str, filename: str, revision: str | None) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, revision=revision, cache_dir=hf_cache_dir())
    return found if isinstance(found, str) else None


def _diffusers_complete(folder: Path) -> bool:
    index = folder / "model_index.json"
    if not index.is_file():
        return False
    try:
        data = json.loads(index.read_text())
    except (OSError, ValueError):
        return False
    for key, value in data.items():
        if key.startswith("_") or not isinstance(value, list) or value[0] is None:
            continue
        sub = folder / key
        if not sub.is_dir() or not any(sub.iterdir()):
            return False
    return True


def _transformers_complete(folder: Path) -> bool:
    weights = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
               "pytorch_model.bin.index.json")
    return (folder / "config.json").is_file() and any((folder / w).is_file() for w in weights)


def check_present(req: WeightRequirement) -> bool:
    """Whether ``req`` can be satisfied without network (never downloads)."""
    try:
        if req.kind == "api_key":
            return bool(os.environ.get(req.model))
        if req.kind == "package":
            import importlib.util

            return importlib.util.find_spec(req.model) is not None
        if req.kind == "diffusers":
            if req.extra == SINGLE_FILE:
                return Path(os.path.expanduser(req.model)).is_file()
            if looks_like_path(req.model):
                return _diffusers_complete(Path(os.path.expanduser(req.model)))
            index = _snapshot_file(req.model, "model_index.json", req.revision)
            return bool(index) and _diffusers_complete(Path(index).parent)
        if req.kind == "transformers":
            if looks_like_path(req.model):
                return _transformers_complete(Path(os.path.expanduser(req.model)))
            config = _snapshot_file(req.model, "config.json", req.revision)
            return bool(config) and _transformers_complete(Path(config).parent)
        if req.kind == "open_clip":
            if req.model.startswith("local-dir:"):
                return (Path(req.model[len("local-dir:"):]) / "open_clip_config.json").is_file()
            if req.model.startswith("hf-hub:"):
                repo = req.model[len("hf-hub:"):]
                return bool(_snapshot_file(repo, "open_clip_config.json", None)) and any(
                    _snapshot_file(repo, name, None) for name in OPEN_CLIP_FILES
                )
            resolve_open_clip_checkpoint(req.model, req.extra, None, local_only=True)
            return True
        if req.kind == "lpips":
            net = req.extra or DEFAULT_LPIPS_NET
            weights = None if req.model.startswith("torchvision:") else req.model
            resolve_lpips_backbone(net, weights, local_only=True)
            return True
    except WeightsNotFoundError:
        return False
    return False


def prefetch(req: WeightRequirement) -> str:
    """Download what ``req`` needs (for users with network). Returns where it now lives."""
    if req.kind == "api_key":
        if not os.environ.get(req.model):
            raise missing_weights("api_key", req.model, "not set")
        return f"${req.model}"
    if req.kind == "package":
        raise missing_weights("package", req.model, "the component could not be imported")
    if is_offline():
        if check_present(req):
            return "already present"
        raise missing_weights(req.kind, req.model, "offline mode is on (HF_HUB_OFFLINE=1)", req.extra)
    if req.kind == "diffusers":
        if req.extra == SINGLE_FILE:
            if not check_present(req):
                raise missing_weights("diffusers", req.model, "no such checkpoint file")
            return req.model
        if looks_like_path(req.model):
            if not _diffusers_complete(Path(req.model)):
                raise missing_weights("diffusers", req.model, "no model_index.json in the folder")
            return req.model
        from diffusers import DiffusionPipeline

        try:
            return str(DiffusionPipeline.download(req.model, revision=req.revision,
                                                  variant=req.variant, cache_dir=hf_cache_dir()))
        except Exception as exc:  # noqa: BLE001
            raise missing_weights("diffusers", req.model, short_error(exc)) from exc
    if req.kind == "transformers":
        if looks_like_path(req.model):
            if not _transformers_complete(Path(req.model)):
                raise missing_weights("transformers", req.model, "config.json / weights missing")
            return req.model
        from huggingface_hub import snapshot_download

        try:
            return snapshot_download(
                req.model, revision=req.revision, cache_dir=hf_cache_dir(),
                allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"],
            )
        except Exception as exc:  # noqa: BLE001
            raise missing_weights("transformers", req.model, short_error(exc)) from exc
    if req.kind == "open_clip":
        if req.model.startswith("hf-hub:"):
            from huggingface_hub import snapshot_download

            try:
                return snapshot_download(req.model[len("hf-hub:"):], cache_dir=hf_cache_dir())
            except Exception as exc:  # noqa: BLE001
                raise missing_weights("open_clip", req.model, short_error(exc)) from exc
        if req.model.startswith("local-dir:"):
            return req.model
        return str(resolve_open_clip_checkpoint(req.model, req.extra, None, local_only=False))
    if req.kind == "lpips":
        weights = None if req.model.startswith("torchvision:") else req.model
        return resolve_lpips_backbone(req.extra or DEFAULT_LPIPS_NET, weights, local_only=False)
    raise ValueError(f"unknown requirement kind {req.kind!r}")


def _components(spec: RunSpec) -> list[tuple[str, Any]]:
    rows = [("t2i", c) for c in spec.t2i]
    rows.extend(("mllm", c) for c in spec.mllms)
    rows.extend(("metrics", c) for c in spec.metrics)
    return rows


def doctor_rows(spec: RunSpec) -> list[dict[str, Any]]:
    """One row per requirement of the spec (and one per component that needs nothing).

    Keys: role, component, label, kind, model, revision, present (bool), how_to_fix ('' when
    present). Never downloads, never loads a model.
    """
    rows: list[dict[str, Any]] = []
    for role, comp in _components(spec):
        reqs = requirements_for(comp.name, comp.params, role)
        if not reqs:
            rows.append({"role": role, "component": comp.name, "label": comp.display_name,
                         "kind": "none", "model": "", "revision": None, "present": True,
                         "how_to_fix": ""})
            continue
        for req in reqs:
            present = check_present(req)
            rows.append({
                "role": role, "component": comp.name, "label": comp.display_name,
                "kind": req.kind, "model": req.model if not req.extra else
                f"{req.model} ({req.extra})", "revision": req.revision, "present": present,
                "how_to_fix": "" if present else how_to_fix(req.kind, req.model, req.extra),
            })
    return rows


def prefetch_spec(spec: RunSpec) -> list[dict[str, Any]]:
    """Download every weight the spec needs. One row per requirement.

    Keys: role, component, label, kind, model, status ('present' | 'downloaded' | 'failed'),
    location, error.
    """
    rows: list[dict[str, Any]] = []
    for role, comp in _components(spec):
        for req in requirements_for(comp.name, comp.params, role):
            row = {"role": role, "component": comp.name, "label": comp.display_name,
                   "kind": req.kind, "model": req.model, "status": "", "location": "",
                   "error": ""}
            if check_present(req) and req.kind != "api_key":
                row["status"] = "present"
            else:
                try:
                    row["location"] = prefetch(req)
                    row["status"] = "present" if req.kind == "api_key" else "downloaded"
                except WeightsNotFoundError as exc:
                    row["status"], row["error"] = "failed", str(exc)
            rows.append(row)
    return rows
