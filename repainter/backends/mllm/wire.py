"""What the OpenAI-compatible MLLM puts on the wire and reads back: images as data URLs (never
upscaled), a critique / judge pair side by side in one image, the JSON object of a reply.

>>> fitted_size((1024, 512), 768)
(768, 384)
>>> extract_json('Sure: {"a": 1} and more')
{'a': 1}
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from PIL import Image


def fitted_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``size`` scaled down so that its longer side is at most ``max_side`` (never up)."""
    width, height = size
    if max(width, height) <= max_side:
        return (width, height)
    scale = max_side / max(width, height)
    return (max(1, round(width * scale)), max(1, round(height * scale)))


def encode_image(image: Image.Image, max_side: int = 768, fmt: str = "png") -> str:
    """``data:image/...;base64,...`` URL of ``image`` with its longer side at most ``max_side``."""
    fmt = fmt.lower()
    if fmt not in ("png", "jpeg", "jpg"):
        raise ValueError(f"image format must be png or jpeg, not {fmt!r}")
    img = image.convert("RGB") if image.mode != "RGB" else image.copy()
    if max(img.size) > max_side:
        img = img.resize(fitted_size(img.size, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if fmt == "png":
        img.save(buffer, format="PNG")
        mime = "image/png"
    else:
        img.save(buffer, format="JPEG", quality=90)
        mime = "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    """``left`` and ``right`` at the same height, next to each other on white (RGB)."""
    height = max(left.height, right.height)
    scaled = [img.convert("RGB").resize((max(1, round(img.width * height / img.height)), height),
                                        Image.Resampling.LANCZOS) if img.height != height
              else img.convert("RGB") for img in (left, right)]
    canvas = Image.new("RGB", (scaled[0].width + scaled[1].width, height), "white")
    canvas.paste(scaled[0], (0, 0))
    canvas.paste(scaled[1], (scaled[0].width, 0))
    return canvas


#: How many top-level ``{`` :func:`extract_json` tries before it gives up (bounds its work).
MAX_JSON_STARTS = 64


def _top_level_braces(text: str):
    """Positions of the ``{`` that open an object outside any other (strings inside skipped)."""
    depth, in_string, escaped = 0, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == "{":
            if depth == 0:
                yield i
            depth += 1
        elif depth:
            if ch == "}":
                depth -= 1
            elif ch == '"':
                in_string = True


def extract_json(text: str) -> Any:
    """The JSON value of ``text``, or the first JSON object inside it (code fences, prose ...).

    Only objects that open at the top level are tried, so a reply cut off mid-object is
    rejected rather than read as one of its complete inner objects (``{"differences":
    [{...}], "summ`` is not the ``Critique`` ``{...}``). At most :data:`MAX_JSON_STARTS` are
    tried, and JSON nested too deeply for the parser is a ``ValueError`` like any other
    unusable reply (never a ``RecursionError``).
    """
    text = (text or "").strip()
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    decoder = json.JSONDecoder()
    for tries, start in enumerate(_top_level_braces(text)):
        if tries >= MAX_JSON_STARTS:
            break
        try:
            value, _ = decoder.raw_decode(text, start)
            return value
        except (ValueError, RecursionError):
            continue
    raise ValueError("the reply holds no complete JSON object")


def reply_text(response: Any) -> str:
    """The first choice's message text; a ``ValueError`` says why there is none."""
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise ValueError("the reply has no choices")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    refusal = getattr(message, "refusal", None)
    if not content and refusal:
        raise ValueError(f"the model refused: {refusal}")
    if content is not None and not isinstance(content, str):
        raise ValueError(f"the reply's content is a {type(content).__name__}, not text")
    return content or ""


__all__ = ["MAX_JSON_STARTS", "encode_image", "extract_json", "fitted_size", "reply_text",
           "side_by_side"]
