"""Prompt text <-> scenes: the offline world's grammar.

:func:`parse_prompt` reads a free-form, comma-separated prompt the way an LLM writes one::

    a flat illustration, light gray background, a large dark red circle at the upper left,
    two small blue triangles at the bottom, outlined

into a :class:`ParsedPrompt`: a background clause (solid colour, or ``a vertical gradient
background from light blue to white``), a global style, and object clauses, each with whatever of
shape, colour, size, position, style and count it names. Words it does not understand are
ignored. :func:`realise` turns a parsed prompt into a :class:`~repainter.bench.world.scene.SceneSpec`,
drawing what the prompt leaves unspecified from a seeded generator, and :func:`format_prompt`
writes a parsed prompt back as canonical prompt text (which parses to the same clauses).

>>> p = parse_prompt("a flat illustration, light gray background, "
...                  "a large dark red circle at the upper left, "
...                  "two small blue triangles, outlined")
>>> p.background.color, p.style, len(p.objects)
('light gray', 'outlined', 2)
>>> o = p.objects[0]
>>> o.shape, o.color, o.size, o.x, o.y
('circle', 'dark red', 0.12, 0.27, 0.27)
>>> p.objects[1].count, p.objects[1].shape
(2, 'triangle')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np

from repainter.bench.world.scene import Background, ObjectSpec, SceneSpec
from repainter.bench.world.vocabulary import (
    COLOR_SYNONYMS,
    COLORS,
    GENERIC_NOUNS,
    HUES,
    NUMBERS,
    OBJECT_COLORS,
    PLURAL_SHAPES,
    SHADE_SYNONYMS,
    SHAPE_SYNONYMS,
    SHAPES,
    SIZE_SYNONYMS,
    SIZES,
    STYLE_SYNONYMS,
    X_WORDS,
    Y_WORDS,
    nearest_size_word,
    nearest_x_word,
    nearest_y_word,
    position_phrase,
)

#: Attributes a deliberately weaker T2I model may ignore.
ATTRIBUTES = ("shape", "color", "size", "position", "style", "background", "count")
MAX_OBJECTS = 8


@dataclass
class ObjectClause:
    """One object as a prompt names it; ``None`` = not said."""

    shape: str | None = None
    color: str | None = None
    size: float | None = None
    x: float | None = None
    y: float | None = None
    style: str | None = None
    count: int = 1

    @property
    def has_position(self) -> bool:
        return self.x is not None or self.y is not None


@dataclass
class BackgroundClause:
    kind: str = "solid"
    color: str | None = None
    color2: str | None = None
    direction: str = "vertical"


@dataclass
class ParsedPrompt:
    background: BackgroundClause | None = None
    style: str | None = None
    objects: list[ObjectClause] = field(default_factory=list)

    def expanded(self) -> list[ObjectClause]:
        """One clause per object: counts unrolled, a shared position spread horizontally."""
        out: list[ObjectClause] = []
        for clause in self.objects:
            n = max(1, clause.count)
            for i in range(n):
                one = replace(clause, count=1)
                if n > 1 and clause.has_position:
                    base = clause.x if clause.x is not None else 0.5
                    one.x = base + (i - (n - 1) / 2) * 0.16
                    if one.y is None:
                        one.y = 0.5
                out.append(one)
        return out[:MAX_OBJECTS]


# -- tokenising -------------------------------------------------------------------------------

_KEEP_HYPHENATED = {w for w in (*X_WORDS, *Y_WORDS, *SIZE_SYNONYMS) if "-" in w}
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*|\d+")


def _tokens(text: str) -> list[str]:
    text = text.lower().replace("centre", "center").replace("colour", "color")
    out: list[str] = []
    for tok in _WORD.findall(text):
        if "-" in tok and tok not in _KEEP_HYPHENATED:
            out.extend(tok.split("-"))
        else:
            out.append(tok)
    return out


def _match(tokens: list[str], i: int, phrases) -> tuple[str, int] | None:
    """Longest phrase of ``phrases`` (space-separated words) starting at token ``i``."""
    best = None
    for phrase in phrases:
        words = phrase.split(" ")
        if tokens[i:i + len(words)] == words and (best is None or len(words) > best[1]):
            best = (phrase, len(words))
    return best


def _color_at(tokens: list[str], i: int) -> tuple[str, int] | None:
    """A colour phrase at token ``i``: (vocabulary name, tokens used)."""
    tok = tokens[i]
    shade = SHADE_SYNONYMS.get(tok)
    if shade and i + 1 < len(tokens):
        nxt = COLOR_SYNONYMS.get(tokens[i + 1], tokens[i + 1])
        if nxt in HUES:
            return f"{shade} {nxt}", 2
    name = COLOR_SYNONYMS.get(tok, tok)
    if name in COLORS:
        return name, 1
    return None


_SIZE_PHRASES = (*SIZES, *SIZE_SYNONYMS)
_Y_ONLY = {"top": "top", "upper": "upper", "upper-middle": "upper-middle", "lower": "lower",
           "lower-middle": "lower-middle", "bottom": "bottom"}


def _parse_object(tokens: list[str]) -> ObjectClause | None:
    clause = ObjectClause()
    noun = False
    centred = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if (hit := _match(tokens, i, X_WORDS)) is not None and clause.x is None:
            clause.x = X_WORDS[hit[0]]
            i += hit[1]
            continue
        if tok in _Y_ONLY and clause.y is None:
            clause.y = Y_WORDS[_Y_ONLY[tok]]
            i += 1
            continue
        if tok in ("center", "middle", "centered", "central"):
            centred = True
            i += 1
            continue
        if (hit := _match(tokens, i, _SIZE_PHRASES)) is not None:
            if clause.size is None:
                clause.size = SIZES[SIZE_SYNONYMS.get(hit[0], hit[0])]
            i += hit[1]
            continue
        if (col := _color_at(tokens, i)) is not None:
            if clause.color is None:
                clause.color = col[0]
            i += col[1]
            continue
        if tok in SHAPE_SYNONYMS:
            if not noun:
                clause.shape = SHAPE_SYNONYMS[tok]
                noun = True
                if tok in PLURAL_SHAPES and clause.count == 1:
                    clause.count = 2
            i += 1
            continue
        if tok in GENERIC_NOUNS:
            noun = True
            if tok.endswith("s") and clause.count == 1:
                clause.count = 2
            i += 1
            continue
        if tok in STYLE_SYNONYMS and clause.style is None:
            clause.style = STYLE_SYNONYMS[tok]
            i += 1
            continue
        if tok in NUMBERS and tok not in ("a", "an") and not noun:
            clause.count = NUMBERS[tok]
            i += 1
            continue
        i += 1
    if not noun:
        return None
    if centred or clause.x is not None or clause.y is not None:
        clause.x = 0.5 if clause.x is None else clause.x
        clause.y = 0.5 if clause.y is None else clause.y
    clause.count = max(1, min(clause.count, 5))
    return clause


def _parse_background(tokens: list[str]) -> BackgroundClause:
    colours = []
    i = 0
    while i < len(tokens):
        col = _color_at(tokens, i)
        if col is not None:
            colours.append(col[0])
            i += col[1]
        else:
            i += 1
    gradient = "gradient" in tokens or "fading" in tokens or "fade" in tokens
    direction = "horizontal" if ("horizontal" in tokens or "right" in tokens
                                  or "horizontally" in tokens) else "vertical"
    if gradient and len(colours) >= 2:
        return BackgroundClause("gradient", colours[0], colours[1], direction)
    return BackgroundClause("solid", colours[0] if colours else None)


_SPLIT = re.compile(r"[,;.\n]+|\band\b")
_BG_SPLIT = re.compile(
    r"\b(?:on|against|over|in front of)\s+(?:a|an|the)?\s*(?=[^,]*\bbackground\b)")


def _segments(tokens: list[str]) -> list[list[str]]:
    """Split ``a red circle above a blue square`` into one token list per object."""
    nouns = [i for i, t in enumerate(tokens) if t in SHAPE_SYNONYMS or t in GENERIC_NOUNS]
    if len(nouns) < 2:
        return [tokens] if tokens else []
    segments, start = [], 0
    for prev, nxt in zip(nouns, nouns[1:]):
        cut = next((j for j in range(prev + 1, nxt) if tokens[j] in NUMBERS), None)
        if cut is not None:
            segments.append(tokens[start:cut])
            start = cut
    segments.append(tokens[start:])
    return [s for s in segments if s]


def parse_prompt(text: str) -> ParsedPrompt:
    """Read ``text`` into background, global style and object clauses (see the module doc)."""
    parsed = ParsedPrompt()
    for raw in _SPLIT.split(text.lower()):
        raw = raw.strip()
        if not raw:
            continue
        parts = [raw]
        if "background" in raw or "backdrop" in raw:
            m = _BG_SPLIT.search(raw)
            parts = [raw[: m.start()], raw[m.end():]] if m else ["", raw]
            bg_tokens = _tokens(parts[1])
            bg = _parse_background(bg_tokens)
            if bg.color is not None or parsed.background is None:
                parsed.background = bg
            parts = [parts[0]]
        for part in parts:
            for tokens in _segments(_tokens(part)):
                obj = _parse_object(tokens)
                if obj is not None:
                    parsed.objects.append(obj)
                    continue
                styles = [STYLE_SYNONYMS[t] for t in tokens if t in STYLE_SYNONYMS]
                # "a flat illustration" sets flat; "outlined" later overrides it
                if styles and (parsed.style in (None, "flat") or styles[-1] != "flat"):
                    parsed.style = styles[-1]
    return parsed


def background_colour(text: str) -> str | None:
    """The background colour ``text`` names, or None (the ``world`` background reader of
    :data:`repainter.registry.BACKGROUND_READERS`, read by the ``self_feedback`` metric).

    >>> background_colour("a red circle on a light blue background"), background_colour("a cat")
    ('light blue', None)
    """
    bg = parse_prompt(text).background
    return bg.color if bg is not None and bg.color else None


# -- prompt -> scene --------------------------------------------------------------------------


def realise(
    parsed: ParsedPrompt,
    rng: np.random.Generator,
    jitter: float = 1.0,
    ignore: tuple[str, ...] | list[str] = (),
) -> SceneSpec:
    """A scene for ``parsed``: unsaid attributes drawn from ``rng``, small jitter on the rest.

    Every object draws the same random numbers whether or not its attributes were said, so
    saying one attribute never changes how another comes out.
    """
    ignore = set(ignore)
    bg_clause = parsed.background if "background" not in ignore else None
    bg_noise = rng.normal(0, 1.5 * jitter, 6)
    if bg_clause is not None and bg_clause.color is not None:
        if bg_clause.kind == "gradient" and bg_clause.color2:
            rgb1 = _noisy(COLORS[bg_clause.color], bg_noise[:3])
            rgb2 = _noisy(COLORS[bg_clause.color2], bg_noise[3:])
            background = Background(kind="gradient", color=bg_clause.color, rgb=rgb1,
                                    color2=bg_clause.color2, rgb2=rgb2,
                                    direction=bg_clause.direction)
        else:
            background = Background(color=bg_clause.color,
                                    rgb=_noisy(COLORS[bg_clause.color], bg_noise[:3]))
    else:
        background = Background(color="white", rgb=COLORS["white"])
    clauses = parsed.objects
    if "count" in ignore:
        clauses = [replace(c, count=1) for c in clauses]
    objects = []
    for clause in ParsedPrompt(objects=clauses).expanded():
        r_shape = SHAPES[int(rng.integers(len(SHAPES)))]
        r_color = OBJECT_COLORS[int(rng.integers(len(OBJECT_COLORS)))]
        r_size = float(rng.choice([SIZES["small"], SIZES["medium"], SIZES["large"]]))
        r_pos = rng.uniform(0.2, 0.8, 2)
        n_pos = rng.normal(0, 0.012 * jitter, 2)
        n_size = rng.normal(0, 0.04 * jitter)
        n_col = rng.normal(0, 3.0 * jitter, 3)
        shape = clause.shape if clause.shape and "shape" not in ignore else r_shape
        colour = clause.color if clause.color and "color" not in ignore else r_color
        size = clause.size if clause.size and "size" not in ignore else r_size
        x, y = r_pos
        if clause.has_position and "position" not in ignore:
            x = clause.x if clause.x is not None else 0.5
            y = clause.y if clause.y is not None else 0.5
        style = "flat"
        if "style" not in ignore:
            style = clause.style or parsed.style or "flat"
        objects.append(ObjectSpec(
            shape=shape, color=colour, rgb=_noisy(COLORS[colour], n_col),
            size=float(np.clip(size * np.exp(n_size), 0.01, 0.5)),
            x=float(np.clip(x + n_pos[0], 0.0, 1.0)), y=float(np.clip(y + n_pos[1], 0.0, 1.0)),
            style=style,
        ))
    return SceneSpec(background=background, objects=objects)


def _noisy(rgb, noise) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(np.rint(np.asarray(rgb) + noise), 0, 255))


# -- scene / clauses -> prompt ----------------------------------------------------------------


def background_phrase(bg: BackgroundClause | Background | None) -> str:
    if bg is None or bg.color is None:
        return ""
    if bg.kind == "gradient" and bg.color2:
        return f"a {bg.direction} gradient background from {bg.color} to {bg.color2}"
    return f"{bg.color} background"


def object_phrase(clause: ObjectClause | ObjectSpec, default_style: str | None = None) -> str:
    """``a large dark red outlined circle at the upper left`` (unsaid parts left out)."""
    words = []
    count = getattr(clause, "count", 1)
    words.append({1: "a", 2: "two", 3: "three", 4: "four", 5: "five"}.get(count, "a"))
    if clause.size is not None:
        words.append(nearest_size_word(clause.size))
    if clause.color:
        words.append(clause.color)
    style = clause.style
    if style and style != (default_style or "flat"):
        words.append(style)
    shape = clause.shape or "shape"
    if count > 1:
        shape = {"circle": "circles", "ellipse": "ellipses", "square": "squares",
                 "diamond": "diamonds", "triangle": "triangles", "star": "stars"}.get(
            shape, "shapes")
    words.append(shape)
    if words[0] == "a" and words[1][0] in "aeiou":
        words[0] = "an"
    x, y = clause.x, clause.y
    if x is not None or y is not None:
        words.append(position_phrase(nearest_x_word(0.5 if x is None else x),
                                     nearest_y_word(0.5 if y is None else y)))
    return " ".join(words)


def format_prompt(parsed: ParsedPrompt) -> str:
    """Canonical comma-separated prompt text for ``parsed``."""
    parts = ["a flat illustration"]
    bg = background_phrase(parsed.background)
    if bg:
        parts.append(bg)
    for clause in parsed.objects:
        parts.append(object_phrase(clause, default_style=parsed.style or "flat"))
    if parsed.style and parsed.style != "flat":
        parts.append(parsed.style)
    return ", ".join(parts)


def scene_to_prompt(spec: SceneSpec) -> str:
    """The finest prompt the vocabulary can write for a scene (what a perfect describer says)."""
    parsed = ParsedPrompt(
        background=BackgroundClause(spec.background.kind, spec.background.color,
                                    spec.background.color2, spec.background.direction),
        objects=[ObjectClause(shape=o.shape, color=o.color, size=o.size, x=o.x, y=o.y,
                              style=o.style) for o in spec.objects],
    )
    return format_prompt(parsed)
