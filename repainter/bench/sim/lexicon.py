"""The simulated T2I models' own prompt reader: a lexicon and a clause parser.

Written independently of the describer's phrasing (:mod:`repainter.bench.sim.phrasing`, never imported
here) and of the world grammar (:mod:`repainter.bench.world.grammar`). Like a text encoder trained on
web captions it reads words, not a grammar:

* the prompt is cut into **tokens**; a model keeps only its first ``token_budget`` word tokens
  (CLIP's 77-token window truncates Stable Diffusion 1.5 / SDXL prompts the same way);
* the kept text is split into clauses at commas, semicolons and "and"; a clause with a
  background word (``background``, ``gradient``, ...) sets the background, any other clause with
  a shape noun or a colour makes objects;
* **core words** (basic colours, shades, shapes, sizes, positions, ``outlined``, ``textured``)
  are known to every model; **extended words** (``crimson``, ``rhombus``, ``backdrop``, ...) are
  known to a model with ``vocabulary`` v iff their fixed difficulty (a hash in [0, 1)) is below v,
  so a model with a smaller vocabulary knows a subset of the words a larger one knows; some
  English words (``tangerine``, ``emerald``, ``lozenge``, ...) are in no model's lexicon.

Values are this lexicon's own (its "left" is x = 0.27, its "crimson" its own RGB), not the
describer's.

>>> parsed = parse("a small crimson star at the upper left, a big blue disc, on a white background")
>>> [(o.shape, o.size, o.x, o.y) for o in parsed.objects]
[('star', 0.068, 0.27, 0.3), ('circle', 0.12, None, None)]
>>> parsed.background.rgb, parsed.unknown
((250, 250, 250), [])
>>> parse("a crimson star", vocabulary=0.0).unknown
['crimson']
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from repainter.bench.world.vocabulary import COLORS

RGB = tuple[int, int, int]

# -- the lexicon --------------------------------------------------------------------------------

_HUES = ("red", "orange", "yellow", "green", "teal", "blue", "purple", "pink", "brown", "gray")
#: colour word -> (RGB, core?)
COLOUR_WORDS: dict[str, tuple[RGB, bool]] = {h: (COLORS[h], True) for h in _HUES}
COLOUR_WORDS.update({
    "grey": (COLORS["gray"], True), "white": ((250, 250, 250), True),
    "black": ((20, 20, 20), True),
    "scarlet": ((226, 36, 32), False), "crimson": ((160, 24, 40), False),
    "maroon": ((120, 22, 30), False), "navy": ((28, 42, 112), False),
    "azure": ((52, 130, 228), False), "violet": ((146, 70, 196), False),
    "turquoise": ((44, 186, 184), False), "golden": ((228, 182, 42), False),
    "rose": ((230, 112, 150), False), "beige": ((214, 196, 160), False),
    "silver": ((196, 196, 200), False), "cream": ((248, 238, 200), False),
    "plum": ((106, 44, 108), False), "cyan": ((40, 200, 210), False),
    "magenta": ((210, 40, 160), False), "olive": ((128, 128, 30), False),
})
#: shade word -> ("light" | "dark", core?)
SHADE_WORDS = {"light": ("light", True), "dark": ("dark", True), "pale": ("light", True),
               "deep": ("dark", False), "pastel": ("light", False)}
SHAPE_NOUNS: dict[str, tuple[str, bool]] = {
    "circle": ("circle", True), "square": ("square", True), "triangle": ("triangle", True),
    "star": ("star", True), "diamond": ("diamond", True), "ellipse": ("ellipse", True),
    "oval": ("ellipse", True), "disc": ("circle", False), "disk": ("circle", False),
    "dot": ("circle", False), "ball": ("circle", False), "box": ("square", False),
    "block": ("square", False), "cube": ("square", False), "tile": ("square", False),
    "rhombus": ("diamond", False), "pyramid": ("triangle", False), "wedge": ("triangle", False),
    "starburst": ("star", False), "egg": ("ellipse", False),
}
SIZE_WORDS: dict[str, tuple[float, bool]] = {
    "tiny": (0.045, True), "small": (0.068, True), "medium": (0.092, True),
    "large": (0.128, True), "big": (0.12, True), "huge": (0.175, True),
    "little": (0.065, False), "giant": (0.18, False), "enormous": (0.19, False),
    "minuscule": (0.04, False), "medium-sized": (0.092, False), "mid-sized": (0.09, False),
}
X_POSITION = {"left": (0.27, True), "right": (0.73, True), "center": (0.5, True),
              "centre": (0.5, False), "left-hand": (0.27, False), "right-hand": (0.73, False)}
Y_POSITION = {"top": (0.14, True), "upper": (0.3, True), "middle": (0.5, True),
              "lower": (0.7, True), "bottom": (0.86, True), "high": (0.3, False),
              "low": (0.7, False), "mid": (0.5, False)}
STYLE_WORDS = {"outlined": ("outlined", True), "outline": ("outlined", True),
               "textured": ("textured", True), "bordered": ("outlined", False),
               "black-bordered": ("outlined", False), "checkered": ("textured", False),
               "patterned": ("textured", False), "flat": ("flat", True)}
BACKGROUND_WORDS = {"background": True, "gradient": True, "backdrop": False, "fading": False}
COUNT_WORDS = {"a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "pair": 2, "three": 3,
               "four": 4, "five": 5, "1": 1, "2": 2, "3": 3, "4": 4, "5": 5}
#: Words that change the next position word: "far left", "very top", "left edge".
EXTREME_WORDS = {"far": True, "very": True, "edge": False}
#: Words no model acts on (articles, prepositions, fillers): neither known nor unknown.
FUNCTION_WORDS = {"the", "at", "in", "on", "of", "to", "from", "with", "over", "against", "and",
                  "plain", "shape", "shapes", "object", "area", "near", "is", "are", "sized",
                  "five-pointed", "round", "snow-white", "jet-black", "bright"}


def difficulty(word: str) -> float:
    """A word's fixed difficulty in [0, 1): a model knows an extended word iff it is lower
    than the model's ``vocabulary``."""
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big") / 2 ** 64


def knows(word: str, core: bool, vocabulary: float) -> bool:
    return core or difficulty(word) < vocabulary


# -- tokens ---------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*|[,;]")


def tokens(prompt: str) -> list[str]:
    """Lower-case word tokens and clause separators (``,`` / ``;``)."""
    return _TOKEN.findall(prompt.lower())


def truncate(toks: list[str], budget: int | None) -> tuple[list[str], int]:
    """The tokens up to the ``budget``-th word, and how many words were dropped."""
    if budget is None:
        return toks, 0
    words = 0
    for i, tok in enumerate(toks):
        if tok not in ",;":
            words += 1
            if words > budget:
                return toks[:i], sum(1 for t in toks[i:] if t not in ",;")
    return toks, 0


# -- parsing --------------------------------------------------------------------------------------


@dataclass
class ObjectClause:
    shape: str | None = None
    rgb: RGB | None = None
    size: float | None = None
    x: float | None = None
    y: float | None = None
    style: str | None = None
    count: int = 1


@dataclass
class BackgroundClause:
    kind: str
    rgb: RGB
    rgb2: RGB | None = None
    direction: str = "vertical"


@dataclass
class Parsed:
    background: BackgroundClause | None = None
    objects: list[ObjectClause] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    dropped_words: int = 0


def _shade(rgb: RGB, shade: str | None) -> RGB:
    if shade is None:
        return rgb
    for hue in _HUES:  # the palette's own light / dark shades for basic hues
        if COLORS[hue] == rgb:
            return COLORS[f"{shade} {hue}"]
    target = (255, 255, 255) if shade == "light" else (0, 0, 0)
    mix = 0.45 if shade == "light" else 0.35
    return tuple(int(round(c + (t - c) * mix)) for c, t in zip(rgb, target))  # type: ignore[return-value]


def _colours(words: list[str], vocabulary: float, unknown: list[str]) -> list[tuple[int, RGB]]:
    """(position, RGB) of every colour phrase (shade + colour word) in a clause."""
    out, shade = [], None
    for i, w in enumerate(words):
        if w in SHADE_WORDS:
            value, core = SHADE_WORDS[w]
            shade = value if knows(w, core, vocabulary) else shade
            if not knows(w, core, vocabulary):
                unknown.append(w)
            continue
        if w in COLOUR_WORDS:
            rgb, core = COLOUR_WORDS[w]
            if knows(w, core, vocabulary):
                out.append((i, _shade(rgb, shade)))
            else:
                unknown.append(w)
        shade = None
    return out


def _lookup(table: dict, word: str, vocabulary: float, unknown: list[str]):
    value, core = table[word]
    if knows(word, core, vocabulary):
        return value
    unknown.append(word)
    return None


def _singular(word: str) -> str:
    if word in SHAPE_NOUNS:
        return word
    for cut in ("es", "s"):
        if word.endswith(cut) and word[: -len(cut)] in SHAPE_NOUNS:
            return word[: -len(cut)]
    return word


def _object(words: list[str], vocabulary: float, unknown: list[str]) -> ObjectClause | None:
    clause = ObjectClause()
    noun_at, plural = None, False
    extreme = False
    for i, raw in enumerate(words):
        w = _singular(raw)
        if w in SHAPE_NOUNS and noun_at is None:
            shape = _lookup(SHAPE_NOUNS, w, vocabulary, unknown)
            if shape is not None:
                clause.shape, noun_at, plural = shape, i, w != raw
        elif w in SIZE_WORDS:
            size = _lookup(SIZE_WORDS, w, vocabulary, unknown)
            if size is not None:
                clause.size = size * (0.8 if i and words[i - 1] == "very" and size < 0.09
                                      else 1.25 if i and words[i - 1] == "very" else 1.0)
            extreme = False
        elif w in STYLE_WORDS:
            clause.style = _lookup(STYLE_WORDS, w, vocabulary, unknown) or clause.style
        elif w in COUNT_WORDS:
            clause.count = COUNT_WORDS[w]
        elif w in EXTREME_WORDS:
            extreme = knows(w, EXTREME_WORDS[w], vocabulary) or extreme
            if w == "edge" and extreme and clause.x is not None:  # "left edge"
                clause.x = 0.1 if clause.x < 0.5 else 0.9
        elif w in X_POSITION:
            x = _lookup(X_POSITION, w, vocabulary, unknown)
            if x is not None:
                clause.x = (0.1 if x < 0.5 else 0.9) if extreme and x != 0.5 else x
            extreme = False
        elif w in Y_POSITION:
            y = _lookup(Y_POSITION, w, vocabulary, unknown)
            if y is not None:
                clause.y = (0.1 if y < 0.5 else 0.9) if extreme and y != 0.5 else y
            extreme = False
        elif w not in COLOUR_WORDS and w not in SHADE_WORDS and w not in FUNCTION_WORDS:
            unknown.append(raw)
    if "center" in words and clause.y is None and clause.x == 0.5:
        clause.y = 0.5
    colours = _colours(words, vocabulary, unknown)
    if noun_at is not None and colours:
        before = [c for c in colours if c[0] < noun_at]
        clause.rgb = (before[-1] if before else colours[0])[1]
    elif colours:
        clause.rgb = colours[0][1]
    if clause.shape is None and clause.rgb is None:
        return None
    if plural and not any(w in COUNT_WORDS for w in words):
        clause.count = 2
    return clause


def _background(words: list[str], vocabulary: float, unknown: list[str]) -> BackgroundClause | None:
    colours = [rgb for _, rgb in _colours(words, vocabulary, unknown)]
    if not colours:
        return None
    if len(colours) >= 2:
        horizontal = "left" in words and "right" in words
        return BackgroundClause("gradient", colours[0], colours[1],
                                "horizontal" if horizontal else "vertical")
    return BackgroundClause("solid", colours[0])


def _clauses(toks: list[str]) -> list[list[str]]:
    out, current = [], []
    for tok in toks:
        if tok in ",;" or tok == "and":
            if current:
                out.append(current)
            current = []
        else:
            current.append(tok)
    if current:
        out.append(current)
    return out


def parse(prompt: str, vocabulary: float = 1.0, token_budget: int | None = None) -> Parsed:
    """What a model with ``vocabulary`` and ``token_budget`` reads in ``prompt``."""
    toks, dropped = truncate(tokens(prompt), token_budget)
    parsed = Parsed(dropped_words=dropped)
    for words in _clauses(toks):
        bg_words = [w for w in words if w in BACKGROUND_WORDS]
        if bg_words:
            if any(knows(w, BACKGROUND_WORDS[w], vocabulary) for w in bg_words):
                parsed.background = _background(words, vocabulary, parsed.unknown) or parsed.background
            else:
                parsed.unknown.extend(bg_words)
            continue
        clause = _object(words, vocabulary, parsed.unknown)
        if clause is not None:
            parsed.objects.append(clause)
    return parsed
