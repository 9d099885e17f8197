"""Word-level diffs of prompts, as plain-text segments the report's template escapes."""

from __future__ import annotations

import difflib
import re

_TOKEN = re.compile(r"\s+|[\w'’-]+|[^\w\s]", re.UNICODE)


#: Longest changed stretch (in tokens, words and spaces) a word diff matches token by token;
#: beyond it the stretch is one deletion plus one insertion, so a diff stays linear in time.
MAX_DIFF_TOKENS = 600


def word_diff(old: str | None, new: str | None) -> list[tuple[str, str]]:
    """Word-level diff of two prompts as ``(op, text)`` segments, op in {"eq", "ins", "del"}.

    Segments are plain text: the template escapes them, so a diff never carries markup from the
    model. Whitespace between two changed words is kept inside the change.

    Example:
        >>> word_diff("a red square", "a blue square")
        [('eq', 'a '), ('del', 'red'), ('ins', 'blue'), ('eq', ' square')]
    """
    a, b = _TOKEN.findall(old or ""), _TOKEN.findall(new or "")
    # The common head and tail are found in linear time; only the changed middle is matched,
    # and a middle too large for SequenceMatcher (quadratic or worse on long, repetitive
    # prompts) is shown as one deletion and one insertion.
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    a_mid, b_mid = a[head:len(a) - tail], b[head:len(b) - tail]
    out: list[tuple[str, str]] = []

    def push(op: str, text: str) -> None:
        if not text:
            return
        if out and out[-1][0] == op:
            out[-1] = (op, out[-1][1] + text)
        else:
            out.append((op, text))

    push("eq", "".join(a[:head]))
    if max(len(a_mid), len(b_mid)) > MAX_DIFF_TOKENS:
        push("del", "".join(a_mid))
        push("ins", "".join(b_mid))
    else:
        matcher = difflib.SequenceMatcher(None, a_mid, b_mid, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                push("eq", "".join(a_mid[i1:i2]))
            else:
                if i2 > i1:
                    push("del", "".join(a_mid[i1:i2]))
                if j2 > j1:
                    push("ins", "".join(b_mid[j1:j2]))
    push("eq", "".join(a[len(a) - tail:]))
    return out


def compact_diff(segments: list[tuple[str, str]] | None, context: int = 3) -> list[tuple[str, str]] | None:
    """``segments`` with long unchanged stretches cut to ``context`` words around each change.

    Example:
        >>> compact_diff(word_diff("one two three four five six", "one two three four five 6"), 2)
        [('eq', '… four five '), ('del', 'six'), ('ins', '6')]
    """
    if segments is None:
        return None
    out = []
    last = len(segments) - 1
    for i, (op, text) in enumerate(segments):
        if op == "eq":
            tokens = re.findall(r"\s+|\S+\s*", text)  # each word with its trailing space
            head = context if i > 0 else 0
            tail = context if i < last else 0
            if len(tokens) > head + tail + 1:
                text = "".join(tokens[:head]) + "… " + "".join(tokens[len(tokens) - tail:]) if tail \
                    else "".join(tokens[:head]) + "…"
        out.append((op, text))
    return out


def diff_stats(segments: list[tuple[str, str]]) -> dict[str, int]:
    words = {op: sum(len(t.split()) for o, t in segments if o == op) for op in ("ins", "del")}
    return words
