"""Shared preprocessing for the weight-free metrics.

Every metric converts its inputs with :func:`repainter.images.to_rgb` (the project's one image-mode
policy), so a metric called directly sees the same pixels as one fed by the loader.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from skimage.color import rgb2lab

from repainter.images import to_rgb

#: How pixel metrics (SSIM, PSNR) handle sizes without a fixed ``size``: native resolution when
#: the sizes match, else the candidate is resized (bicubic) to the reference's size.
NATIVE_RESIZE_POLICY = "native; candidate resized (bicubic) to the reference's size if they differ"


def resize_policy(size: int | None) -> str:
    """The resize step a pixel metric records in its identity."""
    if size is None:
        return NATIVE_RESIZE_POLICY
    return f"both resized (bicubic, aspect not kept) to {size}x{size}"


def pool_cells(array: np.ndarray, cells: int) -> np.ndarray:
    """Average-pool the first two axes of a square ``array`` into ``cells`` x ``cells`` blocks
    (rows and columns beyond a multiple of ``cells`` are dropped); trailing axes are kept.

    >>> pool_cells(np.arange(16.0).reshape(4, 4), 2).tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    k = array.shape[0] // cells
    trimmed = array[: k * cells, : k * cells]
    return trimmed.reshape((cells, k, cells, k) + array.shape[2:]).mean(axis=(1, 3))


def box_lab(img: Image.Image, size: int) -> np.ndarray:
    """CIELAB (float64) of ``img`` resized with a box filter (aspect not kept) to ``size`` x
    ``size``: every output pixel averages its block, so a pattern at least a pixel wide at
    ``size`` survives and a finer one averages out.

    >>> box_lab(Image.new("RGB", (8, 6), (255, 255, 255)), 4).shape
    (4, 4, 3)
    """
    small = to_rgb(img).resize((size, size), Image.Resampling.BOX)
    return rgb2lab(np.asarray(small, dtype=np.float64) / 255.0)


def resize_square(img: Image.Image, size: int) -> np.ndarray:
    """RGB uint8 array of ``img`` resized (bicubic, aspect not kept) to ``size`` x ``size``."""
    return rgb_array(img, (size, size))


def rgb_array(img: Image.Image, size: tuple[int, int] | None = None) -> np.ndarray:
    """RGB uint8 array of ``img``, resized (bicubic) to ``size`` = (W, H) only where it differs.

    >>> rgb_array(Image.new("RGBA", (9, 8), (0, 0, 0, 0))).shape  # alpha composited on white
    (8, 9, 3)
    >>> int(rgb_array(Image.new("RGBA", (9, 8), (0, 0, 0, 0)))[0, 0, 0])
    255
    """
    img = to_rgb(img)
    if size is not None and img.size != tuple(size):
        img = img.resize(tuple(size), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.uint8)


def prepare_pixels(reference: Image.Image, size: int | None) -> np.ndarray:
    """The reference's pixels for SSIM / PSNR: at ``size`` x ``size``, or native when None."""
    return rgb_array(reference, (size, size) if size is not None else None)


def candidate_pixels(candidate: Image.Image, prepared: np.ndarray) -> np.ndarray:
    """A candidate's pixels at the prepared reference's size (resized only if it differs)."""
    return rgb_array(candidate, (prepared.shape[1], prepared.shape[0]))
