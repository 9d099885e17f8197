"""Controlled degradations of real references: does a metric rank known damage correctly?

Each degradation kind damages an image at graded strengths 1..S (0 = the untouched image); a
trustworthy similarity metric scores the image less similar to its reference as the strength
grows. Per metric and kind, Kendall's tau between the strength and the metric's similarity,
sign-flipped so +1 = ranked perfectly, is averaged over the images. It works for any dataset and
any registered metric: weight-free (ssim, psnr, color_histogram) or model-based (clip_i, dinov2,
lpips, a judge) with the user's own weights.

Kinds and what strength s in (0, 1] does (``STRENGTHS`` default to 0.2, 0.4, ..., 1.0):

- ``blur``: Gaussian blur, radius 6 s % of the image's short side;
- ``noise``: additive Gaussian noise, sigma 80 s (of 255);
- ``jpeg``: JPEG at quality 60 (1 - s) + 2;
- ``colour_shift``: hue rotated by 0.35 s of the colour circle, saturation scaled by 1 - 0.6 s;
- ``crop_shift``: crop a margin of 25 s % from the top-left corner, resized back (content shifts
  and zooms);
- ``patch_shuffle``: a grid of 4 x 4 patches, a fraction s of them permuted among themselves;
- ``object_removal``: the most salient region (a box around the centre of edge energy, 45 s % of
  each side) replaced by the image's blurred surroundings, as if the object were erased.

Example:
    >>> from PIL import Image
    >>> img = Image.new("RGB", (32, 32), (120, 60, 30))
    >>> degrade(img, "noise", 0.5, seed=0).size
    (32, 32)
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageFilter

from repainter.sanity.corruption import salient_centre  # one definition, core and bench

#: Graded strengths (0 = the reference itself is left out: its score is trivially the best).
STRENGTHS = (0.2, 0.4, 0.6, 0.8, 1.0)


def _blur(image: Image.Image, s: float, rng: np.random.Generator) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=max(0.5, 0.06 * s * min(image.size))))


def _noise(image: Image.Image, s: float, rng: np.random.Generator) -> Image.Image:
    arr = np.asarray(image, dtype=np.float64)
    return Image.fromarray(np.clip(arr + rng.normal(0, 80 * s, arr.shape), 0, 255).astype(np.uint8))


def _jpeg(image: Image.Image, s: float, rng: np.random.Generator) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(round(60 * (1 - s) + 2)))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _colour_shift(image: Image.Image, s: float, rng: np.random.Generator) -> Image.Image:
    hsv = np.asarray(image.convert("HSV"), dtype=np.float64)
    hsv[..., 0] = (hsv[..., 0] + 255 * 0.35 * s) % 256
    hsv[..., 1] = hsv[..., 1] * (1 - 0.6 * s)
    return Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")


def _crop_shift(image: Image.Image, s: float, rng: np.random.Generator) -> Image.Image:
    w, h = image.size
    dx, dy = int(round(0.25 * s * w)), int(round(0.25 * s * h))
    return image.crop((dx, dy, w, h)).resize((w, h), Image.Resampling.BICUBIC)


def _patch_shuffle(image: Image.Image, s: float, rng: np.random.Generator, grid: int = 4) -> Image.Image:
    arr = np.asarray(image).copy()
    h, w = arr.shape[0] // grid * grid, arr.shape[1] // grid * grid
    ph, pw = h // grid, w // grid
    patches = [arr[r * ph:(r + 1) * ph, c * pw:(c + 1) * pw].copy()
               for r in range(grid) for c in range(grid)]
    count = max(2, int(round(s * len(patches))))
    chosen = rng.choice(len(patches), size=count, replace=False)
    # a cyclic shift of the chosen patches: every chosen patch really moves
    moved = {int(a): patches[int(b)] for a, b in zip(chosen, np.roll(chosen, 1), strict=True)}
    for index, patch in moved.items():
        r, c = divmod(index, grid)
        arr[r * ph:(r + 1) * ph, c * pw:(c + 1) * pw] = patch
    return Image.fromarray(arr)


def _object_removal(image: Image.Image, s: float, rng: np.random.Generator) -> Image.Image:
    arr = np.asarray(image).copy()
    h, w = arr.shape[:2]
    cy, cx = salient_centre(arr.astype(np.float64))
    bh, bw = max(2, int(0.45 * s * h)), max(2, int(0.45 * s * w))
    top, left = min(max(0, cy - bh // 2), h - bh), min(max(0, cx - bw // 2), w - bw)
    filler = np.asarray(image.filter(ImageFilter.BoxBlur(radius=max(bh, bw))))
    arr[top:top + bh, left:left + bw] = filler[top:top + bh, left:left + bw]
    return Image.fromarray(arr)


DEGRADATIONS: dict[str, Callable[[Image.Image, float, np.random.Generator], Image.Image]] = {
    "blur": _blur,
    "noise": _noise,
    "jpeg": _jpeg,
    "colour_shift": _colour_shift,
    "crop_shift": _crop_shift,
    "patch_shuffle": _patch_shuffle,
    "object_removal": _object_removal,
}


def degrade(image: Image.Image, kind: str, strength: float, *, seed: int = 0) -> Image.Image:
    """``image`` damaged by ``kind`` at ``strength`` in [0, 1] (0 returns it unchanged)."""
    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}; known: {', '.join(DEGRADATIONS)}")
    image = image.convert("RGB")
    if strength <= 0:
        return image.copy()
    return DEGRADATIONS[kind](image, float(strength), np.random.default_rng(seed))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b between two sequences (ties allowed); NaN when either is constant.

    Example:
        >>> kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]), kendall_tau([1, 2, 3], [3, 2, 1])
        (1.0, -1.0)
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    i, j = np.triu_indices(x.size, k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    concordant_minus_discordant = float((dx * dy).sum())
    pairs_x, pairs_y = float(np.count_nonzero(dx)), float(np.count_nonzero(dy))
    if pairs_x == 0 or pairs_y == 0:
        return float("nan")
    return concordant_minus_discordant / float(np.sqrt(pairs_x * pairs_y))


def degradation_scores(metric, reference, kinds: Sequence[str] = tuple(DEGRADATIONS),
                       strengths: Sequence[float] = STRENGTHS, *, seed: int = 0) -> dict[str, list[float]]:
    """kind -> the metric's similarity of each graded degradation to ``reference`` (one batch)."""
    prepared = metric.prepare(reference)
    out = {}
    for kind in kinds:
        images = [degrade(reference.image, kind, s, seed=seed) for s in strengths]
        out[kind] = [float(metric.similarity(v)) for v in metric.score(prepared, images)]
    return out


def degradation_validity(metrics: dict, references: Sequence, kinds: Sequence[str] = tuple(DEGRADATIONS),
                         strengths: Sequence[float] = STRENGTHS, *, seed: int = 0) -> dict[str, dict]:
    """Per metric label and kind: mean tau (+1 = similarity falls with every strength step),
    the per-image taus, and the mean similarity at each strength; ``all`` averages the kinds.

    ``metrics`` maps a label to a built Metric; ``references`` are backends.base.Reference.
    """
    results: dict[str, dict] = {}
    for label, metric in metrics.items():
        per_kind: dict[str, dict] = {}
        for index, reference in enumerate(references):
            scores = degradation_scores(metric, reference, kinds, strengths, seed=seed + index)
            for kind, values in scores.items():
                entry = per_kind.setdefault(kind, {"taus": [], "similarity": []})
                # similarity should fall as strength rises: tau(strength, -similarity)
                # a metric blind to the damage (constant) ranks nothing: tau 0, not undefined
                tau = kendall_tau(strengths, [-v for v in values])
                entry["taus"].append(0.0 if np.isnan(tau) else tau)
                entry["similarity"].append(values)
        for entry in per_kind.values():
            finite = [t for t in entry["taus"] if np.isfinite(t)]
            entry["tau"] = float(np.mean(finite)) if finite else None
            entry["similarity"] = [float(v) for v in np.mean(entry["similarity"], axis=0)]
            entry["taus"] = [None if not np.isfinite(t) else float(t) for t in entry["taus"]]
        taus = [e["tau"] for e in per_kind.values() if e["tau"] is not None]
        results[label] = {"kinds": per_kind, "all": float(np.mean(taus)) if taus else None}
    return results


#: Photos and drawings scikit-image ships in its wheel (no download); other ``skimage.data``
#: names fetch from the network, are volumes or stacks, or are no image at all (``download_all``).
BUNDLED_IMAGES = (
    "astronaut", "brick", "camera", "cat", "cell", "checkerboard", "chelsea", "clock", "coffee",
    "coins", "colorwheel", "grass", "gravel", "horse", "hubble_deep_field",
    "immunohistochemistry", "logo", "microaneurysms", "moon", "page", "retina", "rocket",
    "shepp_logan_phantom", "text")


def skimage_references(names: Sequence[str] = ("astronaut", "chelsea", "coffee"),
                       size: int = 128) -> list:
    """Real photos bundled with scikit-image (no download), resized to ``size`` x ``size``."""
    from skimage import data

    from repainter.backends.base import Reference

    references = []
    for name in names:
        if name not in BUNDLED_IMAGES:
            raise ValueError(f"{name!r} is not an image bundled with scikit-image; choose from "
                             f"{', '.join(BUNDLED_IMAGES)}")
        loader = getattr(data, name)
        arr = loader()
        image = Image.fromarray(arr).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
        references.append(Reference(id=f"skimage:{name}", image=image, source="skimage.data",
                                    license="scikit-image data (BSD / public domain)"))
    return references
