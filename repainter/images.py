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
#: Image files larger than this are refused before they are read (a 1.5 GB file named .png must
#: not be read into memory to find out it is too large).
MAX_IMAGE_BYTES = 512 * 1024 * 1024
#: Manifests and other text inputs larger than this are refused before they are read.
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
# Smaller images carry too little to describe or compare (SSIM's window alone is 7x7).
MIN_SIDE = 8


class ImageLoadError(ValueError):
    """An input image could not be used; the message says why."""


class FileTooLargeError(OSError):
    """A file is over the size limit for what it should hold (checked before reading it)."""


def read_bytes_limited(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of ``path``, refusing a file over ``limit`` bytes before reading it.

    The size is checked with ``stat`` first and the read is bounded too, so a file that grows
    while it is read cannot exceed the limit either.

    >>> import tempfile; folder = Path(tempfile.mkdtemp()); (folder / "x").write_bytes(b"12345")
    5
    >>> read_bytes_limited(folder / "x", 3)
    Traceback (most recent call last):
    ...
    repainter.images.FileTooLargeError: ... 5 bytes is over the 3-byte limit
    """
    path = Path(path)
    size = path.stat().st_size
    if size > limit:
        raise FileTooLargeError(f"{path}: {size} bytes is over the {limit}-byte limit")
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileTooLargeError(f"{path}: more than {limit} bytes (the {limit}-byte limit)")
    return data


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
        data = read_bytes_limited(path, MAX_IMAGE_BYTES)
    except FileTooLargeError as exc:
        raise ImageLoadError(str(exc)) from exc
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
    """Convert any PIL mode to 8-bit RGB: the project's one image-mode policy.

    The loader applies it to every reference and render, and every metric applies it to what it
    is given, so a metric called directly sees the same pixels as one fed by the loader:

    * ``RGBA``, ``LA``, ``PA``, premultiplied ``RGBa`` / ``La``, and ``P`` / ``L`` / ``RGB`` images
      with a transparency entry: composited onto white;
    * ``I;16*`` (16-bit): the full 16-bit range onto 8 bits (``x * 255 / 65535``);
    * ``I`` (32-bit integers, how PIL opens many 16-bit files): values up to 255 kept, up to 65535
      read as 16-bit, larger ones scaled by 255 / max;
    * ``F`` (32-bit float): values in [0, 1] scaled by 255 (the usual float convention), values
      up to 255 kept, larger ones scaled by 255 / max; NaN becomes 0;
    * everything else (``1``, ``L``, ``P``, ``CMYK``, ``YCbCr`` ...): PIL's conversion to RGB.

    >>> to_rgb(Image.new("RGBA", (2, 2), (0, 0, 0, 0))).getpixel((0, 0))
    (255, 255, 255)
    >>> to_rgb(Image.new("F", (2, 2), 0.5)).getpixel((0, 0))
    (128, 128, 128)
    >>> to_rgb(Image.new("I;16", (2, 2), 65535)).getpixel((0, 0))
    (255, 255, 255)
    """
    if img.mode == "RGB" and "transparency" not in img.info:
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        img = Image.fromarray(_scaled_to_uint8(np.asarray(img, dtype=np.float64), img.mode))
    if img.mode in ("P", "RGBa", "La") or "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _scaled_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(arr.max()) if arr.size else 0.0
    if mode.startswith("I;16"):
        scale = 255.0 / 65535.0
    elif mode == "F" and float(arr.min(initial=0.0)) >= 0.0 and peak <= 1.0:
        scale = 255.0
    elif peak <= 255:
        scale = 1.0
    elif mode == "I" and peak <= 65535:
        scale = 255.0 / 65535.0
    else:
        scale = 255.0 / peak
    return np.rint(arr * scale).clip(0, 255).astype(np.uint8)


def check_not_constant(img: Image.Image, label: str) -> None:
    """Refuse an image whose pixels all have one value: nothing to describe or compare.

    >>> check_not_constant(Image.new("RGB", (8, 8), (3, 3, 3)), "ref.png")
    Traceback (most recent call last):
    ...
    repainter.images.ImageLoadError: ref.png: every pixel is (3, 3, 3); a constant image cannot be a reference (a float or 16-bit image may have lost its range)
    """
    extrema = to_rgb(img).getextrema()
    if all(low == high for low, high in extrema):
        value = tuple(low for low, _ in extrema)
        raise ImageLoadError(f"{label}: every pixel is {value}; a constant image cannot be a "
                             "reference (a float or 16-bit image may have lost its range)")


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


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> None:
    """Write via a temp file in the same folder and rename, so readers never see half a file.

    ``durable`` fsyncs the file before the rename; without it a killed process still leaves the
    whole file (the page cache survives it) but a power cut may not: the caller makes it durable
    later with :func:`make_durable` (one commit for all the files of a case).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~_UMASK)  # mkstemp makes 0600; honour the umask
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_durable(paths: list[Path]) -> None:
    """fsync ``paths`` (written without it) and their folders, so the files and their names
    survive a power cut; a file that is gone is skipped (a later write replaced it)."""
    folders = set()
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        folders.add(Path(path).parent)
    for folder in folders:
        fsync_folder(folder)


def fsync_folder(folder: Path) -> None:
    """Make the names in ``folder`` durable (where the platform lets a folder be fsynced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse to fsync a folder
        pass
    finally:
        os.close(fd)


def png_bytes(img: Image.Image) -> bytes:
    """The lossless PNG encoding the run folder stores."""
    buffer = io.BytesIO()
    # Lossless either way; level 1 is several times faster than the default 6 for renders.
    img.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def save_png(img: Image.Image, path: str | os.PathLike, *, durable: bool = True) -> None:
    atomic_write_bytes(path, png_bytes(img), durable=durable)


def reference_digest(image: Image.Image) -> str:
    """The pixel hash a case records of its reference (after the image-mode policy)."""
    return image_sha256(to_rgb(image))
