"""Model weights: where they come from, whether they are here, and clear errors when they are not.

Every model-backed component loads its weights through this module so that a missing model always
ends the same way: a :class:`WeightsNotFoundError` naming the model and saying how to provide it,
raised quickly, never a hang and never a randomly initialised model passed off as real.

Four kinds of weights are known:

* ``diffusers`` - a diffusers pipeline folder (hub id or local path with ``model_index.json``);
* ``transformers`` - a transformers model folder (hub id or local path with ``config.json``);
* ``open_clip`` - an open_clip architecture name plus a pretrained tag (resolved to the tag's
  Hugging Face Hub file) or a local checkpoint file, or an ``hf-hub:`` / ``local-dir:`` model;
* ``lpips`` - the torchvision AlexNet / VGG16 backbone LPIPS builds on (the small LPIPS linear
  layers ship inside the ``lpips`` package) - a torch-hub checkpoint file.

Offline mode: ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1`` / ``REPAINTER_OFFLINE=1``) is read
at call time, so setting it after ``huggingface_hub`` was imported still works; loads then pass
``local_files_only=True`` and never touch the network. Online, a load that fails with a connection
error is retried once from the local cache before giving up.

What a component needs is its registered class's answer (:func:`requirements_for`); whether a
spec's needs are here, and fetching them (``repainter doctor`` / ``repainter prefetch``), is
:mod:`repainter.prefetch`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from repainter.network import is_offline

T = TypeVar("T")

# Defaults shared by the metric constructors and requirements_for (kept here so that inspecting
# a spec never imports torch).
DEFAULT_CLIP_MODEL = "ViT-B-32"
DEFAULT_CLIP_PRETRAINED = "openai"
DEFAULT_DINOV2_MODEL = "facebook/dinov2-base"
DEFAULT_LPIPS_NET = "alex"

# torchvision backbones of LPIPS: file name in the torch-hub cache and the URL it comes from.
LPIPS_BACKBONES: dict[str, tuple[str, str]] = {
    "alex": (
        "alexnet-owt-7be5be79.pth",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    ),
    "vgg": (
        "vgg16-397923af.pth",
        "https://download.pytorch.org/models/vgg16-397923af.pth",
    ),
}

KINDS = ("diffusers", "transformers", "open_clip", "lpips", "api_key", "package")



class WeightsNotFoundError(RuntimeError):
    """A model's weights are not available; the message names the model and how to provide it."""

    def __init__(self, model: str, kind: str, how_to_fix: str, cause: str | None = None):
        self.model = model
        self.kind = kind
        self.how_to_fix = how_to_fix
        self.cause = cause
        detail = f" ({cause})" if cause else ""
        super().__init__(
            f"{kind} weights for {model!r} are not available{detail}. How to fix: {how_to_fix}"
        )

    def __reduce__(self):  # picklable across processes
        return (type(self), (self.model, self.kind, self.how_to_fix, self.cause))


@dataclass(frozen=True)
class WeightRequirement:
    """What one component needs before it can run."""

    component: str
    kind: str  # one of KINDS
    model: str  # hub id, architecture@tag, local path, env var name ...
    revision: str | None = None
    variant: str | None = None
    #: open_clip: pretrained tag or checkpoint path; lpips: the net name.
    extra: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- offline detection, paths -----------------------------------------------------------------


def looks_like_path(name: str) -> bool:
    """A local path rather than a hub id: exists, or is written like a path."""
    if not name:
        return False
    if os.path.exists(os.path.expanduser(name)):
        return True
    return (
        name.startswith(("/", "./", "../", "~", "\\"))
        or (len(name) > 1 and name[1] == ":")  # C:\...
        or name.count("/") > 1
    )


def hf_cache_dir() -> str | None:
    """The hub cache folder the environment names *now* (huggingface_hub reads it at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    return None


def how_to_fix(kind: str, model: str, extra: str | None = None) -> str:
    """The advice printed with a missing-weights error."""
    local = "pass a local path instead of the hub id"
    cache = "or point HF_HOME / HF_HUB_CACHE at a cache that holds it"
    if kind == "diffusers":
        return (
            f"download it with `hf download {model}` on a machine with network "
            f"(or `repainter prefetch --spec SPEC`), {local} (a folder with model_index.json), "
            f"{cache}"
        )
    if kind == "transformers":
        return (
            f"download it with `hf download {model}` (or `repainter prefetch "
            f"--spec SPEC`), {local} (a folder with config.json and the weights), {cache}"
        )
    if kind == "open_clip":
        model = model.split("@", 1)[0]
        if extra and looks_like_path(extra):
            return f"the checkpoint file {extra!r} must exist; pass `checkpoint: /path/to/file`"
        repo = _open_clip_hub_repo(model, extra)
        hub = f"`hf download {repo}`" if repo else "`repainter prefetch --spec SPEC`"
        return (
            f"download the open_clip weights with {hub}, or pass `checkpoint: /path/to/"
            f"open_clip_model.safetensors` (a local file of the {model} architecture), {cache}"
        )
    if kind == "lpips":
        net = extra or DEFAULT_LPIPS_NET
        fname, url = LPIPS_BACKBONES.get(net, ("?", "?"))
        return (
            f"download the torchvision {net} backbone from {url} into "
            f"$TORCH_HOME/hub/checkpoints/{fname} (`repainter prefetch --spec SPEC` does this), "
            f"or pass `backbone_weights: /path/to/{fname}`"
        )
    if kind == "api_key":
        return f"export {model}=<your key> (or set base_url to a server that needs none)"
    if kind == "package":
        return (f"install the Python package that provides {model!r} (for the built-in model "
                "backends: pip install -e '.[models]')")
    return "provide the model locally"


def missing_weights(kind: str, model: str, cause: str | None = None,
                    extra: str | None = None) -> WeightsNotFoundError:
    """The error for ``model``'s missing weights, with the advice of :func:`how_to_fix`."""
    return WeightsNotFoundError(model, kind, how_to_fix(kind, model, extra), cause)


def short_error(exc: BaseException) -> str:
    """``Type: first line`` of ``exc`` (at most 300 characters), for a missing-weights cause."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300]


def _is_connection_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        name = type(exc).__name__
        if name in {
            "ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "ConnectError",
            "TimeoutException", "OfflineModeIsEnabled", "URLError", "gaierror", "TimeoutError",
            "LocalEntryNotFoundError",
        }:
            return True
        text = str(exc).lower()
        if "couldn't connect" in text or "connection" in text or "offline" in text:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


_MISSING_ERRORS = {"EntryNotFoundError", "RepositoryNotFoundError", "RevisionNotFoundError",
                   "LocalEntryNotFoundError", "GatedRepoError", "FileNotFoundError"}
_MISSING_WORDS = ("does not appear to have", "no such file", "no file named", "can't load",
                  "cannot find", "couldn't find", "is not a local folder", "local_files_only",
                  "offline", "not cached", "repository not found", "entry not found")


def _is_missing_files(exc: BaseException) -> bool:
    """Whether a loader's error means "the files are not there" (not a broken model or setting)."""
    if {c.__name__ for c in type(exc).__mro__} & _MISSING_ERRORS:
        return True
    text = str(exc).lower()
    return any(word in text for word in _MISSING_WORDS)


def hub_load(loader: Callable[..., T], model: str, kind: str, **kwargs: Any) -> T:
    """Call ``loader(model, **kwargs)`` (a ``from_pretrained``) with fail-fast offline handling.

    Local paths must exist. Offline, ``local_files_only=True`` is passed. Online, a connection
    failure is retried once with ``local_files_only=True`` (the cache may hold the model). Any
    failure to find the files becomes a :class:`WeightsNotFoundError`.
    """
    if looks_like_path(model):
        path = Path(os.path.expanduser(model))
        if not path.exists():
            raise missing_weights(kind, model, f"no such local path {str(path)!r}")
        model = str(path)
        kwargs["local_files_only"] = True
    else:
        if is_offline():
            kwargs["local_files_only"] = True
        if hf_cache_dir() and "cache_dir" not in kwargs:
            kwargs["cache_dir"] = hf_cache_dir()
    try:
        return loader(model, **kwargs)
    except WeightsNotFoundError:
        raise
    except (OSError, ValueError) as exc:  # hub errors are OSError subclasses
        if not _is_missing_files(exc) and not _is_connection_error(exc):
            raise  # a real error (a bad config, dtype, component): not "download it"
        if kwargs.get("local_files_only") or not _is_connection_error(exc):
            raise missing_weights(kind, model, short_error(exc)) from exc
        first = exc
    try:
        kwargs["local_files_only"] = True
        return loader(model, **kwargs)
    except (OSError, ValueError) as exc:
        raise missing_weights(kind, model, f"no network ({short_error(first)}) and not cached") from exc


# -- open_clip ----------------------------------------------------------------------------------

#: The weight files an open_clip hub model may hold.
OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _open_clip_tag_cfg(model: str, pretrained: str | None) -> dict[str, Any]:
    if not pretrained or looks_like_path(pretrained):
        return {}
    try:
        import open_clip
    except ImportError:  # pragma: no cover - inspecting a spec without the [models] extra
        return {}
    return dict(open_clip.get_pretrained_cfg(model.replace("/", "-"), pretrained) or {})


def _open_clip_hub_repo(model: str, pretrained: str | None) -> str | None:
    if model.startswith("hf-hub:"):
        return model[len("hf-hub:"):]
    hub = _open_clip_tag_cfg(model, pretrained).get("hf_hub", "")
    return os.path.split(hub)[0] if hub else None


def _open_clip_hub_file(model: str, pretrained: str | None) -> tuple[str, list[str]] | None:
    """(repo id, candidate file names) of a tag's weights on the hub, or None."""
    cfg = _open_clip_tag_cfg(model, pretrained)
    hub = cfg.get("hf_hub", "")
    if not hub:
        return None
    repo, filename = os.path.split(hub)
    if filename:
        stem, ext = os.path.splitext(filename)
        names = [f"{stem}.safetensors", filename] if ext != ".safetensors" else [filename]
    else:
        names = list(OPEN_CLIP_FILES)
    return repo, names


def resolve_open_clip_checkpoint(
    model: str, pretrained: str | None, checkpoint: str | None = None, local_only: bool | None = None
) -> str | None:
    """Local file holding the weights of ``model`` / ``pretrained`` (download if allowed).

    Returns None when no weights are asked for (``pretrained`` empty and no checkpoint). Raises
    :class:`WeightsNotFoundError` when they are asked for and cannot be found.
    """
    if checkpoint:
        path = Path(os.path.expanduser(checkpoint))
        if not path.is_file():
            raise missing_weights("open_clip", model, f"no such checkpoint file {str(path)!r}", checkpoint)
        return str(path)
    if not pretrained:
        return None
    if looks_like_path(pretrained):
        path = Path(os.path.expanduser(pretrained))
        if not path.is_file():
            raise missing_weights("open_clip", model, f"no such checkpoint file {str(path)!r}", pretrained)
        return str(path)
    local_only = is_offline() if local_only is None else local_only
    target = _open_clip_hub_file(model, pretrained)
    label = f"{model}@{pretrained}"
    if target is None:
        cfg = _open_clip_tag_cfg(model, pretrained)
        if not cfg:
            raise missing_weights(
                "open_clip", label, f"{pretrained!r} is not a known open_clip tag of {model!r}"
            )
        url = cfg.get("url", "")
        cached = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if url and cached.is_file():
            return str(cached)
        if local_only or not url:
            raise missing_weights("open_clip", label, "not in the local cache (offline)", pretrained)
        from open_clip.pretrained import download_pretrained_from_url

        try:
            return download_pretrained_from_url(url)
        except Exception as exc:  # noqa: BLE001 - urllib/network errors of all kinds
            raise missing_weights("open_clip", label, short_error(exc), pretrained) from exc
    repo, names = target
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    for name in names:
        found = try_to_load_from_cache(repo, name, cache_dir=hf_cache_dir())
        if isinstance(found, str):
            return found
    if local_only:
        raise missing_weights("open_clip", label, f"{repo} is not in the local cache (offline)", pretrained)
    last: BaseException | None = None
    for name in names:
        try:
            return hf_hub_download(repo, name, etag_timeout=10, cache_dir=hf_cache_dir())
        except Exception as exc:  # noqa: BLE001
            last = exc
    raise missing_weights("open_clip", label, short_error(last) if last else None, pretrained)


# -- lpips backbone -------------------------------------------------------------------------------


def lpips_backbone_path(net: str) -> Path:
    """Where torchvision keeps the LPIPS backbone checkpoint for ``net`` (may not exist)."""
    import torch

    fname = LPIPS_BACKBONES[net][0]
    return Path(torch.hub.get_dir()) / "checkpoints" / fname


def resolve_lpips_backbone(
    net: str, backbone_weights: str | None = None, local_only: bool | None = None
) -> str:
    """Local file with the torchvision backbone of LPIPS ``net``; downloads it when allowed."""
    if net not in LPIPS_BACKBONES:
        raise ValueError(f"lpips net must be one of {sorted(LPIPS_BACKBONES)}, not {net!r}")
    label = f"lpips-{net} backbone"
    if backbone_weights:
        path = Path(os.path.expanduser(backbone_weights))
        if not path.is_file():
            raise missing_weights("lpips", label, f"no such file {str(path)!r}", net)
        return str(path)
    path = lpips_backbone_path(net)
    if path.is_file():
        return str(path)
    local_only = is_offline() if local_only is None else local_only
    if local_only:
        raise missing_weights("lpips", label, f"{path} not found (offline)", net)
    import torch

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(LPIPS_BACKBONES[net][1], str(path), progress=False)
    except Exception as exc:  # noqa: BLE001 - urllib/network errors of all kinds
        raise missing_weights("lpips", label, short_error(exc), net) from exc
    return str(path)


# -- what a component needs ---------------------------------------------------------------------


#: ``extra`` of a diffusers requirement that is one checkpoint file (``from_single_file``).
SINGLE_FILE = "single_file"


def is_single_file(model: str) -> bool:
    """A ``.safetensors`` / ``.ckpt`` checkpoint rather than a pipeline folder or hub id."""
    return model.lower().endswith((".safetensors", ".ckpt"))


#: Registry kinds a spec's components come from, in the order a bare name is looked up.
ROLES = ("t2i", "mllm", "metrics")


def requirements_for(component: str, params: dict[str, Any] | None = None,
                     role: str | None = None) -> list[WeightRequirement]:
    """What the registered component ``component`` built with ``params`` needs to run.

    The registered class answers (:meth:`repainter.backends.base.DeclaresRequirements.requirements`),
    so a plugin's component declares its own; ``role`` (t2i / mllm / metrics) names the registry,
    else the first that knows the name. A component that cannot be imported (a missing extra)
    needs that package. Unknown names need nothing here (the preflight names them).

    >>> requirements_for("ssim")
    []
    >>> requirements_for("openai", {"model": "gpt-4o"})[0].model
    'OPENAI_API_KEY'
    """
    from repainter.registry import METRICS, MLLM, T2I

    registries = {"t2i": T2I, "mllm": MLLM, "metrics": METRICS}
    for kind in (role,) if role else ROLES:
        found = registries[kind]
        if component not in found:
            continue
        try:
            factory = found.get(component)
        except ImportError as exc:
            return [WeightRequirement(component, "package", exc.name or str(exc))]
        ask = getattr(factory, "requirements", None)
        needs = ask(dict(params or {})) if callable(ask) else []
        return [replace(need, component=component) for need in needs]
    return []

