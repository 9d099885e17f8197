"""BENCHMARKS.md is written by several scripts; each owns one marked section of it.

A script replaces only the text between its ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``
markers, so re-running one benchmark never erases another's table.
"""

from __future__ import annotations

import re
from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def write_section(path: Path, name: str, body: str, *, at_start: bool = False) -> None:
    """Put ``body`` between ``name``'s markers in ``path`` (appended, or prepended, if absent)."""
    begin, end = markers(name)
    section = f"{begin}\n{body.strip(chr(10))}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: section, text, flags=re.S)
    elif at_start:
        text = section + "\n\n" + text.lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")
