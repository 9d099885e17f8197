"""Markdown that stays text: labels and cells of the generated Markdown files (leaderboards,
VALIDITY.md) escaped so a renderer never runs a label as HTML and a ``|`` never breaks a row."""

from __future__ import annotations

from typing import Any

_MARKDOWN_ESCAPES = str.maketrans({"<": "&lt;", ">": "&gt;", "|": "\\|", "\n": " ", "\r": " "})


def markdown_text(text: Any) -> str:
    """``text`` safe in a Markdown table cell or heading: HTML-significant characters as
    entities, ``|`` escaped, line breaks as spaces.

    >>> print(markdown_text("<script>a|b</script>"))
    &lt;script&gt;a\\|b&lt;/script&gt;
    """
    return str(text).translate(_MARKDOWN_ESCAPES)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table whose cells are already text (escaped here, see
    :func:`markdown_text`).

    >>> print("\\n".join(markdown_table(["a", "b"], [["1", "x|y"]])))
    | a | b |
    |---|---|
    | 1 | x\\|y |
    """
    return (["| " + " | ".join(map(markdown_text, header)) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(map(markdown_text, row)) + " |" for row in rows])
