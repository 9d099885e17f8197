"""The render-corruption ladder: a render of the user's own model damaged at graded strengths.

Rung 0 is the render itself; rung k of R applies strength k / (R - 1), so the last rung is the
strongest damage. Every kind is nested by construction (a stronger rung damages a superset, or
more, of what a weaker one damaged), and seeded by the case, so reruns give the same images.

Kinds and what strength s in [0, 1] does:

- ``noise_blend``: blended toward Gaussian noise around mid-grey with weight s (s = 1: noise);
- ``other_blend``: blended toward another reference of the sample with weight s;
- ``blur``: Gaussian blur, radius 8 s % of the short side;
- ``patch_shuffle``: a 4 x 4 grid, the first ceil(s 16) patches of a seeded order cycled among
  themselves (a stronger rung moves a superset);
- ``mask``: the box around the centre of edge energy (where the main object most likely is),
  60 s % of each side, filled with the image's mean colour, as if the object were erased.

>>> from PIL import Image
>>> image = Image.new("RGB", (32, 32), (200, 40, 40))
>>> [im.size for im in corruption_ladder(image, "blur", rungs=3, seed=0)]
[(32, 32), (32, 32), (32, 32)]
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

KINDS = ("noise_blend", "other_blend", "blur", "patch_shuffle", "mask")


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def _image(array: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.round(array), 0, 255).astype(np.uint8))


def _noise_blend(image, s, rng, other):
    arr = _array(image)
    # one noise field per case (drawn before s is used): rungs differ only in its weight
    noise = np.clip(rng.normal(128.0, 64.0, arr.shape), 0, 255)
    return _image((1 - s) * arr + s * noise)


def _other_blend(image, s, rng, other):
    if other is None:
        raise ValueError("other_blend needs another reference (a sample of at least two)")
    target = _array(other.convert("RGB").resize(image.size, Image.Resampling.BICUBIC))
    return _image((1 - s) * _array(image) + s * target)


def _blur(image, s, rng, other):
    if s <= 0:
        return image.copy()
    return image.filter(ImageFilter.GaussianBlur(radius=0.08 * s * min(image.size)))


def _patch_shuffle(image, s, rng, other, grid: int = 4):
    arr = np.asarray(image.convert("RGB")).copy()
    order = rng.permutation(grid * grid)  # drawn first: the same order at every strength
    count = math.ceil(s * grid * grid)
    if count < 2:
        return _image(arr.astype(np.float64))
    h, w = arr.shape[0] // grid, arr.shape[1] // grid
    source = arr.copy()
    chosen = order[:count]
    for target_index, source_index in zip(chosen, np.roll(chosen, 1), strict=True):
        tr, tc = divmod(int(target_index), grid)
        sr, sc = divmod(int(source_index), grid)
        arr[tr * h:(tr + 1) * h, tc * w:(tc + 1) * w] = source[sr * h:(sr + 1) * h, sc * w:(sc + 1) * w]
    return Image.fromarray(arr)


def salient_centre(arr: np.ndarray) -> tuple[int, int]:
    """Centre (row, column) of the image's edge energy: where its main object most likely is."""
    grey = arr.mean(axis=2)
    energy = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1, :]
    total = energy.sum()
    if total <= 0:
        return arr.shape[0] // 2, arr.shape[1] // 2
    rows, cols = np.indices(energy.shape)
    return int((rows * energy).sum() / total), int((cols * energy).sum() / total)


def _mask(image, s, rng, other):
    arr = _array(image)
    if s <= 0:
        return image.copy()
    row, col = salient_centre(arr)
    half_h, half_w = int(0.3 * s * arr.shape[0]), int(0.3 * s * arr.shape[1])
    top, left = max(0, row - half_h), max(0, col - half_w)
    arr[top:row + half_h + 1, left:col + half_w + 1] = arr.reshape(-1, 3).mean(axis=0)
    return _image(arr)


_KIND_FUNCTIONS = {"noise_blend": _noise_blend, "other_blend": _other_blend, "blur": _blur,
                   "patch_shuffle": _patch_shuffle, "mask": _mask}


def corruption_ladder(image: Image.Image, kind: str, *, rungs: int, seed: int,
                      other: Image.Image | None = None) -> list[Image.Image]:
    """``rungs`` images, best first: ``image`` itself, then ever stronger ``kind`` damage."""
    if kind not in _KIND_FUNCTIONS:
        raise ValueError(f"unknown corruption {kind!r}; choose from {', '.join(KINDS)}")
    image = image.convert("RGB")
    damage = _KIND_FUNCTIONS[kind]
    out = [image]
    for rung in range(1, rungs):
        # the same generator state at every rung: one noise field, one patch order per case
        out.append(damage(image, rung / (rungs - 1), np.random.default_rng(seed), other))
    return out
