"""Every MLLM prompt lives as its own file in ``prompts/`` and is loaded here by name.

Files are Jinja2 templates; ``StrictUndefined`` makes a missing variable an error instead of an
empty string silently sent to a model.
"""

from __future__ import annotations

from functools import cache

import jinja2

from repainter.resources import resource_dir


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("prompts"))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_prompt(name: str, **variables: object) -> str:
    """Render ``prompts/<name>.j2`` with ``variables``."""
    return _environment().get_template(f"{name}.j2").render(**variables).strip()


@cache
def templates_digest() -> str:
    """SHA-256 (16 hex digits) of every template's name and text: part of MLLM cache keys, so an
    edited ``prompts/*.j2`` never answers from replies to the old wording."""
    import hashlib

    digest = hashlib.sha256()
    folder = resource_dir("prompts")
    for name in sorted(_environment().list_templates()):
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]
