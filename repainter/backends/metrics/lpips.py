"""LPIPS: learned perceptual distance of each candidate to the reference (0 = identical).

Preprocessing (:func:`to_lpips_tensor`): images converted with :func:`repainter.images.to_rgb`,
pixels scaled from [0, 255] to float [-1, 1] (``x / 127.5 - 1`` in float64, as ``lpips.im2tensor``
does), the input range LPIPS was trained on; any resize then happens on that float tensor with
torchvision's bilinear interpolation with antialiasing. Resize policy (recorded in
:meth:`LPIPSDistance.identity`): with ``resize=None`` (default) native resolution when the sizes
match, the candidate resized to the reference's size when they differ; with ``resize`` set
(the ``gill`` preset: 256) both are resized to ``resize`` x ``resize``.

The ``gill`` preset reproduces GILL's evaluation script ``evals/lpips_2dirs.py`` of
https://github.com/kohjingyu/gill: ``lpips.im2tensor(lpips.load_image(path))``, then
``torchvision.transforms.functional.resize(img, (256, 256), antialias=True)`` on both images, then
``lpips.LPIPS(net='alex', version='0.1').forward(img0, img1)``. Inputs first pass the project's
image-mode policy; for RGB images (GILL's data) that is the identity, while GILL's ``cv2.imread``
would drop an alpha channel rather than composite it on white.

Weights: the LPIPS linear layers (v0.1) ship inside the ``lpips`` package; the AlexNet / VGG16
backbone is torchvision's ImageNet checkpoint, resolved through :mod:`repainter.weights` (the
torch-hub cache, a download when online, or ``backbone_weights``: a local ``.pth`` file) so that
a missing backbone offline raises :class:`repainter.weights.WeightsNotFoundError` instead of a
hanging download. The backbone file is identified by its SHA-256 (``weights`` in the identity,
see :mod:`repainter.file_identity`): a replaced file never returns cached scores.
``random_backbone_for_tests=True`` keeps a randomly initialised backbone (for
tests only); it is recorded in :meth:`identity` so such scores can never pass for real ones.

``similarity()`` is ``1 - distance`` (distances are about [0, 1]; values above 1 are possible for
very different images, so selection clamps at 0).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from repainter.backends._torch import cached_model, select_device
from repainter.backends.base import Metric, Reference
from repainter.file_identity import path_fingerprint
from repainter.images import to_rgb
from repainter.weights import (
    DEFAULT_LPIPS_NET,
    LPIPS_BACKBONES,
    WeightRequirement,
    WeightsNotFoundError,
    how_to_fix,
    resolve_lpips_backbone,
)


def to_lpips_tensor(image: Image.Image, size: tuple[int, int] | None = None) -> torch.Tensor:
    """(1, 3, H, W) float32 tensor in [-1, 1] of ``image``, resized to ``size`` = (W, H) if given.

    The steps of GILL's ``evals/lpips_2dirs.py``: ``lpips.im2tensor`` (``x / (255 / 2) - 1``
    computed in float64, stored as float32), then torchvision bilinear resize with antialias on
    the float tensor.

    >>> to_lpips_tensor(Image.new("RGB", (8, 8), (0, 255, 0)), (16, 12)).shape
    torch.Size([1, 3, 12, 16])
    """
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import resize

    arr = np.asarray(to_rgb(image), dtype=np.uint8) / (255.0 / 2.0) - 1.0
    tensor = torch.Tensor(arr[:, :, :, np.newaxis].transpose((3, 2, 0, 1)))
    if size is not None and (tensor.shape[3], tensor.shape[2]) != tuple(size):
        tensor = resize(tensor, [size[1], size[0]], interpolation=InterpolationMode.BILINEAR,
                        antialias=True)
    return tensor.contiguous()


def load_backbone(lpips_model: Any, path: str, net: str) -> None:
    """Load torchvision ``features.N.*`` weights from ``path`` into LPIPS' sliced backbone."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    # LPIPS keeps torchvision's layer indices: features.<i>.<p> lives at slice<k>.<i>.<p>.
    where: dict[str, str] = {}
    for slice_name, module in lpips_model.net.named_children():
        for index, _ in module.named_children():
            where[index] = slice_name
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = re.match(r"^features\.(\d+)\.(.+)$", key)
        if m and m.group(1) in where:
            mapped[f"{where[m.group(1)]}.{m.group(1)}.{m.group(2)}"] = value
    expected = set(lpips_model.net.state_dict())
    missing = sorted(expected - set(mapped))
    if missing:
        raise WeightsNotFoundError(
            f"lpips-{net} backbone", "lpips", how_to_fix("lpips", path, net),
            f"{path} is not a torchvision {net} checkpoint (missing {missing[:3]})",
        )
    lpips_model.net.load_state_dict(mapped, strict=True)


class LPIPSDistance(Metric):
    """LPIPS distance (AlexNet or VGG backbone, v0.1 linear layers); lower is closer."""

    name = "lpips"
    higher_is_better = False

    @classmethod
    def requirements(cls, params: dict[str, Any]) -> list[WeightRequirement]:
        """The torchvision backbone of ``net`` (or ``backbone_weights``); none for the random
        test backbone."""
        if params.get("random_backbone_for_tests"):
            return []
        net = str(params.get("net", DEFAULT_LPIPS_NET))
        model = str(params.get("backbone_weights") or f"torchvision:{net}")
        return [WeightRequirement("lpips", "lpips", model, extra=net)]

    def __init__(
        self,
        net: str = DEFAULT_LPIPS_NET,
        version: str = "0.1",
        resize: int | None = None,
        device: str = "auto",
        batch_size: int = 16,
        backbone_weights: str | None = None,
        random_backbone_for_tests: bool = False,
    ):
        if net not in LPIPS_BACKBONES:
            raise ValueError(f"lpips: net must be one of {sorted(LPIPS_BACKBONES)}, not {net!r}")
        if resize is not None and int(resize) < 16:
            raise ValueError("lpips: resize must be at least 16 or null")
        self.net = net
        self.version = version
        self.resize = int(resize) if resize is not None else None
        self.device = select_device(device)
        self.batch_size = max(1, int(batch_size))
        self.backbone_weights = backbone_weights
        self.random_backbone_for_tests = bool(random_backbone_for_tests)
        # Resolved before loading (never let torchvision start a download that may hang
        # offline) and identified by content: a replaced file loads (and keys scores) anew.
        self._backbone_path = None if self.random_backbone_for_tests else \
            resolve_lpips_backbone(net, backbone_weights)
        self.weights = {"backbone": path_fingerprint(self._backbone_path)} \
            if self._backbone_path else {}
        params = {"net": net, "version": version, "device": str(self.device),
                  "backbone_weights": backbone_weights, "weights": self.weights,
                  "random_backbone_for_tests": self.random_backbone_for_tests}
        self._model = cached_model("lpips", params, self._load)

    def _load(self):
        import lpips

        path = self._backbone_path
        with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=`
            warnings.simplefilter("ignore", UserWarning)
            model = lpips.LPIPS(net=self.net, version=self.version, pnet_rand=True, verbose=False)
        if path is not None:
            load_backbone(model, path, self.net)
        return model.to(self.device).eval()

    def resize_policy(self) -> str:
        where = (f"both to {self.resize}x{self.resize}" if self.resize else
                 "native; candidate to the reference's size if they differ")
        return f"{where} (torchvision bilinear, antialias, on float [-1, 1] tensors)"

    def _size_for(self, reference: Image.Image) -> tuple[int, int]:
        return (self.resize, self.resize) if self.resize else reference.size

    def prepare(self, reference: Reference) -> torch.Tensor:
        size = self._size_for(reference.image)
        return to_lpips_tensor(reference.image, size)

    def score(self, prepared: torch.Tensor, candidates: Sequence[Image.Image]) -> list[float]:
        if not candidates:
            return []
        size = (prepared.shape[3], prepared.shape[2])
        out: list[float] = []
        for start in range(0, len(candidates), self.batch_size):
            chunk = candidates[start:start + self.batch_size]
            batch = torch.cat([to_lpips_tensor(c, size) for c in chunk]).to(self.device)
            ref = prepared.to(self.device).expand(batch.shape[0], -1, -1, -1)
            with torch.inference_mode():
                dist = self._model(ref, batch)  # inputs already in [-1, 1]: normalize=False
            out.extend(float(v) for v in dist.reshape(-1).cpu().tolist())
        return out

    def similarity(self, value: float) -> float:
        return max(0.0, 1.0 - value)

    def identity(self) -> dict[str, Any]:
        ident: dict[str, Any] = {"metric": self.name, "net": self.net, "version": self.version,
                                 "resize": self.resize, "resize_policy": self.resize_policy(),
                                 "backbone_weights": self.backbone_weights,
                                 "weights": self.weights}
        if self.random_backbone_for_tests:
            ident["random_backbone_for_tests"] = True
            ident["warning"] = "random backbone: scores are NOT LPIPS"
        return ident
