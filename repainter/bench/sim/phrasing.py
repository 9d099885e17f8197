"""The ``sim-describer``'s own language: concepts -> natural English, and back (for its own text).

The describer thinks in *concepts* quantised at one fixed granularity, the same for describing,
critiquing, judging and revising:

* colour: a palette colour name of the world (``dark red``; 30 object colours + white / black);
* size: five levels (``tiny`` .. ``huge``), equal-area radius as a fraction of the image width;
* position: a 5 x 5 grid (``far left`` .. ``far right`` x ``top`` .. ``bottom``);
* shape: circle, ellipse, square, diamond, triangle, star; style: flat, outlined, textured.

Every concept has several phrasings ("crimson", "deep red", "maroon" for ``dark red``). The
describer prefers one of them per concept (its idiolect, fixed by ``idiolect``), and its revision
falls back on the plainest phrasing of a concept the T2I model did not draw (or, with
``rephrase="next"``, tries the next one). An idiolect uses the plainest
phrasing of a concept half of the time (decided per concept by a fixed hash), else another one. This module never imports the
simulated T2I model's lexicon (:mod:`repainter.bench.sim.lexicon`): the two languages overlap only as
much as two independently written English vocabularies do. :func:`read_prompt` reads back only
text this module wrote.

>>> obj = ObjectConcept("star", "dark red", "small", "left", "upper", "flat")
>>> phrase_object(obj, choices={})
'a small dark red star at the upper left'
>>> read_prompt(write_prompt(PromptPlan(BackgroundConcept("solid", "white"), [obj]))).objects == [obj]
True
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field, replace

from repainter.bench.world.vocabulary import COLORS

SHAPES: tuple[str, ...] = ("circle", "ellipse", "square", "diamond", "triangle", "star")
STYLES: tuple[str, ...] = ("flat", "outlined", "textured")

#: The describer's five sizes (equal-area radius, fraction of the image width).
SIZE_LEVELS: dict[str, float] = {"tiny": 0.045, "small": 0.065, "medium": 0.09, "large": 0.125,
                                 "huge": 0.17}
X_LEVELS: dict[str, float] = {"far left": 0.12, "left": 0.3, "center": 0.5, "right": 0.7,
                              "far right": 0.88}
Y_LEVELS: dict[str, float] = {"top": 0.12, "upper": 0.3, "middle": 0.5, "lower": 0.7,
                              "bottom": 0.88}

_HUE_WORDS = {
    "red": ("red", "scarlet"), "orange": ("orange", "tangerine"), "yellow": ("yellow", "golden"),
    "green": ("green", "emerald"), "teal": ("teal", "turquoise"), "blue": ("blue", "azure"),
    "purple": ("purple", "violet"), "pink": ("pink", "rose"), "brown": ("brown", "chocolate"),
    "gray": ("gray", "grey"),
}
_SHADE_WORDS = {"light": ("light", "pale", "pastel"), "": ("",), "dark": ("dark", "deep")}
#: Single words for some colours, tried before the composed ones where listed.
_SPECIAL_COLOURS = {"dark red": ("crimson", "maroon"), "dark blue": ("navy",),
                    "light brown": ("beige", "tan"), "light gray": ("silver",),
                    "dark green": ("forest green",), "light pink": ("blush",),
                    "dark purple": ("plum",), "light yellow": ("cream",)}

SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "round dot"), "ellipse": ("ellipse", "oval", "egg shape"),
    "square": ("square", "box", "tile"), "diamond": ("diamond", "rhombus", "lozenge"),
    "triangle": ("triangle", "pyramid shape", "wedge"),
    "star": ("star", "five-pointed star", "starburst"),
}
SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "tiny": ("tiny", "minuscule", "very small"), "small": ("small", "little"),
    "medium": ("medium-sized", "mid-sized", "moderate"), "large": ("large", "big"),
    "huge": ("huge", "giant", "enormous"),
}
STYLE_WORDS: dict[str, tuple[str, ...]] = {
    "flat": ("",), "outlined": ("outlined", "black-bordered", "with a black outline"),
    "textured": ("textured", "checkered", "patterned"),
}
X_WORDS: dict[str, tuple[str, ...]] = {
    "far left": ("far left", "left edge"), "left": ("left", "left-hand"),
    "center": ("center", "centre"), "right": ("right", "right-hand"),
    "far right": ("far right", "right edge"),
}
Y_WORDS: dict[str, tuple[str, ...]] = {
    "top": ("top", "very top"), "upper": ("upper", "high"), "middle": ("middle", "mid"),
    "lower": ("lower", "low"), "bottom": ("bottom", "very bottom"),
}
BACKGROUND_FORMS = ("on a {c} background", "against a {c} backdrop", "over a plain {c} ground")
GRADIENT_FORMS = {
    "vertical": ("on a background fading from {a} at the top to {b} at the bottom",
                 "against a {a} to {b} gradient from top to bottom"),
    "horizontal": ("on a background fading from {a} on the left to {b} on the right",
                   "against a {a} to {b} gradient from left to right"),
}


def colour_words(name: str) -> tuple[str, ...]:
    """Every phrasing of a palette colour, plainest first.

    >>> colour_words("dark red")[:3]
    ('dark red', 'dark scarlet', 'crimson')
    """
    if name in ("white", "black"):
        return {"white": ("white", "snow-white"), "black": ("black", "jet-black")}[name]
    shade, _, hue = name.rpartition(" ")
    words = [f"{s} {h}".strip() for s in _SHADE_WORDS[shade] for h in _HUE_WORDS[hue]]
    return tuple(dict.fromkeys([*words[:2], *_SPECIAL_COLOURS.get(name, ()), *words[2:]]))


def stable_unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from ``parts`` (the same on every machine)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


# -- concepts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectConcept:
    shape: str
    color: str
    size: str
    x: str
    y: str
    style: str = "flat"


@dataclass(frozen=True)
class BackgroundConcept:
    kind: str  # "solid" | "gradient"
    color: str
    color2: str | None = None
    direction: str = "vertical"


@dataclass
class PromptPlan:
    """What a prompt says (concepts in order) and which phrasing each concept uses."""

    background: BackgroundConcept | None
    objects: list[ObjectConcept]
    #: concept key (e.g. ``"color:dark red"``) -> index of its phrasing.
    choices: dict[str, int] = field(default_factory=dict)
    #: Leave out optional words (style words of flat objects, ``medium-sized``): a shorter prompt.
    terse: bool = False


def nearest_level(levels: dict[str, float], value: float, log: bool = False) -> str:
    if log:
        return min(levels, key=lambda w: abs(math.log(max(value, 1e-3) / levels[w])))
    return min(levels, key=lambda w: abs(levels[w] - value))


def shift_level(levels: dict[str, float], word: str, steps: int) -> str:
    names = list(levels)
    return names[min(max(names.index(word) + steps, 0), len(names) - 1)]


# -- writing ----------------------------------------------------------------------------------


def _pick(options: tuple[str, ...], key: str, choices: dict[str, int], idiolect: int | None) -> str:
    if key in choices:
        return options[choices[key] % len(options)]
    if idiolect is None:
        return options[0]
    # an idiolect says the plainest word half of the time, else one of the others
    u = stable_unit("idiolect", idiolect, key)
    if u < 0.5 or len(options) == 1:
        return options[0]
    return options[1 + int((u - 0.5) * 2 * (len(options) - 1))]


def phrase_object(obj: ObjectConcept, choices: dict[str, int], idiolect: int | None = None,
                  terse: bool = False) -> str:
    colour = _pick(colour_words(obj.color), f"color:{obj.color}", choices, idiolect)
    shape = _pick(SHAPE_WORDS[obj.shape], f"shape:{obj.shape}", choices, idiolect)
    size = "" if terse and obj.size == "medium" else _pick(
        SIZE_WORDS[obj.size], f"size:{obj.size}", choices, idiolect)
    style = _pick(STYLE_WORDS[obj.style], f"style:{obj.style}", choices, idiolect)
    xw = _pick(X_WORDS[obj.x], f"x:{obj.x}", choices, idiolect)
    yw = _pick(Y_WORDS[obj.y], f"y:{obj.y}", choices, idiolect)
    where = "in the center" if (obj.x, obj.y) == ("center", "middle") else f"at the {yw} {xw}"
    trailing = style.startswith("with ")
    words = [size, "" if trailing else style, colour, shape, style if trailing else "", where]
    body = " ".join(w for w in words if w)
    article = "an" if body[0] in "aeiou" else "a"
    return f"{article} {body}"


def phrase_background(bg: BackgroundConcept, choices: dict[str, int],
                      idiolect: int | None = None) -> str:
    a = _pick(colour_words(bg.color), f"color:{bg.color}", choices, idiolect)
    if bg.kind == "gradient" and bg.color2:
        b = _pick(colour_words(bg.color2), f"color:{bg.color2}", choices, idiolect)
        form = _pick(GRADIENT_FORMS[bg.direction], "background:gradient", choices, idiolect)
        return form.format(a=a, b=b)
    return _pick(BACKGROUND_FORMS, "background:solid", choices, idiolect).format(c=a)


def write_prompt(plan: PromptPlan, idiolect: int | None = None) -> str:
    """The plan as one English sentence-like prompt (objects in order, then the background)."""
    parts = [phrase_object(o, plan.choices, idiolect, plan.terse) for o in plan.objects]
    if plan.background is not None:
        parts.append(phrase_background(plan.background, plan.choices, idiolect))
    text = ", ".join(parts)
    return (text[0].upper() + text[1:]) if text else ""


def fix_choices(plan: PromptPlan, idiolect: int | None) -> PromptPlan:
    """The plan with every phrasing the idiolect would pick written into ``choices``."""
    choices = dict(plan.choices)
    keys = []
    for o in plan.objects:
        keys += [(f"color:{o.color}", colour_words(o.color)), (f"shape:{o.shape}", SHAPE_WORDS[o.shape]),
                 (f"size:{o.size}", SIZE_WORDS[o.size]), (f"style:{o.style}", STYLE_WORDS[o.style]),
                 (f"x:{o.x}", X_WORDS[o.x]), (f"y:{o.y}", Y_WORDS[o.y])]
    if plan.background is not None:
        bg = plan.background
        keys.append((f"color:{bg.color}", colour_words(bg.color)))
        if bg.color2:
            keys.append((f"color:{bg.color2}", colour_words(bg.color2)))
        keys.append(("background:gradient", GRADIENT_FORMS[bg.direction]) if bg.kind == "gradient"
                    else ("background:solid", BACKGROUND_FORMS))
    for key, options in keys:
        if key not in choices:
            choices[key] = options.index(_pick(options, key, {}, idiolect))
    return replace(plan, choices=choices)


# -- reading its own text -------------------------------------------------------------------------

_PHRASE_TABLES: dict[str, dict[str, tuple[str, ...]]] = {
    "color": {c: colour_words(c) for c in COLORS},
    "shape": SHAPE_WORDS, "size": SIZE_WORDS, "style": STYLE_WORDS, "x": X_WORDS, "y": Y_WORDS,
}


def _alternation(table: dict[str, tuple[str, ...]]) -> tuple[str, dict[str, tuple[str, int]]]:
    lookup = {w: (concept, i) for concept, words in table.items()
              for i, w in enumerate(words) if w}
    pattern = "|".join(re.escape(w) for w in sorted(lookup, key=len, reverse=True))
    return pattern, lookup


_COLOUR_RE, _COLOUR_LOOKUP = _alternation(_PHRASE_TABLES["color"])
_OBJECT_TABLES = {k: _alternation(v) for k, v in _PHRASE_TABLES.items() if k != "color"}


@dataclass
class ReadPrompt:
    background: BackgroundConcept | None
    objects: list[ObjectConcept]
    choices: dict[str, int]
    terse: bool


def _find(kind: str, text: str) -> tuple[str, int] | None:
    pattern, lookup = _OBJECT_TABLES[kind] if kind != "color" else (_COLOUR_RE, _COLOUR_LOOKUP)
    match = re.search(rf"(?<![\w-])({pattern})(?![\w-])", text)
    return lookup[match.group(1)] if match else None


def _read_background(part: str, choices: dict[str, int]) -> BackgroundConcept | None:
    colours = [(_COLOUR_LOOKUP[m.group(1)], m.start())
               for m in re.finditer(rf"(?<![\w-])({_COLOUR_RE})(?![\w-])", part)]
    if not colours:
        return None
    for (concept, i), _ in colours:
        choices[f"color:{concept}"] = i
    if len(colours) >= 2:
        direction = "horizontal" if "on the left" in part or "left to right" in part else "vertical"
        choices["background:gradient"] = 1 if "gradient" in part else 0
        return BackgroundConcept("gradient", colours[0][0][0], colours[1][0][0], direction)
    choices["background:solid"] = (1 if "backdrop" in part else 2 if "ground" in part
                                   and "background" not in part else 0)
    return BackgroundConcept("solid", colours[0][0][0])


def read_prompt(prompt: str) -> ReadPrompt:
    """Concepts and phrasing choices of a prompt :func:`write_prompt` wrote (others: best effort)."""
    choices: dict[str, int] = {}
    objects, background, terse = [], None, False
    for part in (p.strip().lower() for p in prompt.split(",")):
        if not part:
            continue
        if re.search(r"background|backdrop|ground\b|gradient", part):
            background = _read_background(part, choices) or background
            continue
        found = {k: _find(k, part) for k in ("color", "shape", "size", "style", "x", "y")}
        if found["shape"] is None:
            continue
        for kind, hit in found.items():
            if hit is not None:
                choices[f"{kind}:{hit[0]}"] = hit[1]
        if "in the center" in part:
            found["x"], found["y"] = ("center", 0), ("middle", 0)
        if found["size"] is None:
            terse = True
        objects.append(ObjectConcept(
            shape=found["shape"][0], color=(found["color"] or ("gray", 0))[0],
            size=(found["size"] or ("medium", 0))[0], x=(found["x"] or ("center", 0))[0],
            y=(found["y"] or ("middle", 0))[0], style=(found["style"] or ("flat", 0))[0]))
    return ReadPrompt(background, objects, choices, terse)
