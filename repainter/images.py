"""Image I/O: safe decoding, content hashing, atomic PNG writes."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# Refuse to decode anything larger than this many pixels (decompression bombs); the check reads
# only the header, before any pixel is decoded.
MAX_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# Smaller images carry too little to describe or compare (SSIM's window alone is 7x7).
MIN_SIDE = 8


class ImageLoadError(ValueError):
    """An input image could not be used; the message says why."""


def load_image(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open ``path`` as an RGB image (see :func:`decode_image`); raise ImageLoadError otherwise."""
    path = Path(path)
    if not path.exists():
        raise ImageLoadError(f"{path}: file not found")
    if not path.is_file():
        raise ImageLoadError(f"{path}: not a regular file")
    if path.suffix.lower() in {".svg", ".svgz"}:
        raise ImageLoadError(f"{path}: SVG is a vector format; render it to PNG first")
    try:
        data = path.read_bytes()
    except PermissionError as exc:
        raise ImageLoadError(f"{path}: not readable ({exc.strerror})") from exc
    except OSError as exc:
        raise ImageLoadError(f"{path}: cannot read ({exc})") from exc
    return decode_image(data, str(path), max_pixels=max_pixels)


def decode_image(data: bytes, label: str, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode image bytes into 8-bit RGB, refusing what cannot be used, with a readable reason.

    The pixel limit is checked from the header before anything is decoded; EXIF orientation is
    applied; an animated image gives its first frame; transparency is composited on white.
    """
    if not data:
        raise ImageLoadError(f"{label}: empty file")
    head = data[:1024].lstrip().lower()
    if head.startswith(b"<?xml") and b"<svg" in head or head.startswith(b"<svg"):
        raise ImageLoadError(f"{label}: SVG is a vector format; render it to PNG first")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ImageLoadError(
                    f"{label}: {width}x{height} exceeds the {max_pixels}-pixel limit"
                )
            if min(width, height) < MIN_SIDE:
                raise ImageLoadError(f"{label}: {width}x{height} is below {MIN_SIDE} pixels a side")
            img.seek(0)  # animated images: the first frame is the reference
            img.load()
            return to_rgb(ImageOps.exif_transpose(img))
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"{label}: refused, {exc}") from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageLoadError(f"{label}: cannot decode image (not a recognised image format)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageLoadError(f"{label}: cannot decode image ({exc})") from exc


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency is composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = arr.max() if arr.max() > 255 else 255.0
        img = Image.fromarray((arr / peak * 255.0).clip(0, 255).astype(np.uint8))
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def image_sha256(img: Image.Image) -> str:
    """Hash of the decoded pixels (mode, size and bytes), independent of file encoding."""
    digest = hashlib.sha256()
    digest.update(f"{img.mode}:{img.size[0]}x{img.size[1]}:".encode())
    digest.update(img.tobytes())
    return digest.hexdigest()


def _current_umask() -> int:
    """The process umask (read once at import; os.umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write via a temp file in the same folder and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~_UMASK)  # mkstemp makes 0600; honour the umask
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_png(img: Image.Image, path: str | os.PathLike) -> None:
    buffer = io.BytesIO()
    # Lossless either way; level 1 is several times faster than the default 6 for renders.
    img.save(buffer, format="PNG", compress_level=1)
    atomic_write_bytes(path, buffer.getvalue())
