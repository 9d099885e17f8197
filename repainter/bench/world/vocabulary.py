"""The shared vocabulary of the offline world: colour, size, position, shape and style words.

Every word maps to one value, and every value back to its nearest word, so that a prompt, a
scene and an analysed image all speak the same language:

* colours: ten hues, each in three shades (``light red``, ``red``, ``dark red``), plus ``white``
  and ``black`` (backgrounds only; ``black`` is also the outline colour);
* sizes: seven words from ``tiny`` to ``huge``, each an equal-area radius as a fraction of the
  image width;
* positions: seven words per axis (``far left`` .. ``far right``, ``top`` .. ``bottom``), at
  fractions of the image; a *coarse* 3 x 3 subset (``left/center/right`` x
  ``upper/middle/lower``) is what the scene analyst's first description uses;
* shapes: circle, ellipse, square, diamond, triangle, star (with plural and a few synonyms);
* styles: flat, outlined (a black outline), textured (a fine checker pattern).

>>> COLORS["dark red"]
(150, 25, 25)
>>> nearest_size_word(0.125), nearest_x_word(0.3), nearest_y_word(0.9)
('large', 'left', 'bottom')
>>> nearest_color_name((148, 30, 28)), basic_color("dark red")
('dark red', 'red')
"""

from __future__ import annotations

from functools import cache

import numpy as np
from skimage.color import rgb2lab

RGB = tuple[int, int, int]

#: hue -> (light, normal, dark) RGB.
_HUES: dict[str, tuple[RGB, RGB, RGB]] = {
    # every channel stays 6+ levels away from a multiple of 32, so the jitter of a render never
    # pushes a flat area across a bin of the 8-bin colour-histogram metric
    "red": ((240, 134, 134), (218, 40, 40), (150, 25, 25)),
    "orange": ((250, 186, 120), (240, 135, 26), (180, 85, 10)),
    "yellow": ((250, 238, 150), (235, 205, 40), (166, 135, 15)),
    "green": ((150, 218, 140), (50, 170, 58), (25, 105, 38)),
    "teal": ((134, 210, 205), (26, 150, 150), (15, 90, 90)),
    "blue": ((140, 180, 240), (40, 90, 218), (26, 55, 150)),
    "purple": ((200, 166, 230), (140, 58, 180), (90, 38, 120)),
    "pink": ((250, 180, 215), (235, 102, 170), (170, 40, 110)),
    "brown": ((198, 154, 115), (140, 90, 50), (90, 55, 26)),
    "gray": ((200, 200, 200), (134, 134, 134), (75, 75, 75)),
}
HUES: tuple[str, ...] = tuple(_HUES)
SHADES: tuple[str, ...] = ("light", "", "dark")

COLORS: dict[str, RGB] = {}
for _hue, (_light, _normal, _dark) in _HUES.items():
    COLORS[f"light {_hue}"] = _light
    COLORS[_hue] = _normal
    COLORS[f"dark {_hue}"] = _dark
COLORS["white"] = (250, 250, 250)
COLORS["black"] = (20, 20, 20)

#: Colours objects may have (black is reserved for outlines, white for backgrounds).
OBJECT_COLORS: tuple[str, ...] = tuple(c for c in COLORS if c not in ("white", "black"))
#: Colours a background may have.
BACKGROUND_COLORS: tuple[str, ...] = (
    "white", "light gray", "light blue", "light yellow", "light pink", "light green",
    "light teal", "light orange", "light purple", "gray", "dark blue", "dark gray",
)
OUTLINE_RGB: RGB = (15, 15, 15)

#: Synonyms the grammar accepts for colour words.
COLOR_SYNONYMS = {"grey": "gray", "violet": "purple", "cyan": "teal", "turquoise": "teal",
                  "magenta": "pink", "crimson": "dark red", "navy": "dark blue",
                  "olive": "dark yellow", "beige": "light brown", "silver": "light gray",
                  "maroon": "dark red", "gold": "yellow", "lime": "light green"}
SHADE_SYNONYMS = {"light": "light", "pale": "light", "pastel": "light", "dark": "dark",
                  "deep": "dark"}

SIZES: dict[str, float] = {
    "tiny": 0.04, "very small": 0.055, "small": 0.07, "medium": 0.09, "large": 0.12,
    "very large": 0.15, "huge": 0.19,
}
SIZE_SYNONYMS = {"big": "large", "little": "small", "mid-sized": "medium", "medium-sized": "medium",
                 "giant": "huge", "enormous": "huge", "minuscule": "tiny"}
COARSE_SIZES: tuple[str, ...] = ("small", "medium", "large")

X_WORDS: dict[str, float] = {
    "far left": 0.12, "left": 0.27, "center-left": 0.40, "center": 0.5, "center-right": 0.60,
    "right": 0.73, "far right": 0.88,
}
Y_WORDS: dict[str, float] = {
    "top": 0.12, "upper": 0.27, "upper-middle": 0.40, "middle": 0.5, "lower-middle": 0.60,
    "lower": 0.73, "bottom": 0.88,
}
COARSE_X: tuple[str, ...] = ("left", "center", "right")
COARSE_Y: tuple[str, ...] = ("upper", "middle", "lower")

SHAPES: tuple[str, ...] = ("circle", "ellipse", "square", "diamond", "triangle", "star")
SHAPE_SYNONYMS = {
    "circle": "circle", "circles": "circle", "disc": "circle", "discs": "circle",
    "disk": "circle", "disks": "circle", "dot": "circle", "dots": "circle", "ball": "circle",
    "balls": "circle", "ellipse": "ellipse", "ellipses": "ellipse", "oval": "ellipse",
    "ovals": "ellipse", "egg": "ellipse", "square": "square", "squares": "square",
    "box": "square", "boxes": "square", "block": "square", "blocks": "square", "cube": "square",
    "tile": "square", "diamond": "diamond", "diamonds": "diamond", "rhombus": "diamond",
    "lozenge": "diamond", "triangle": "triangle", "triangles": "triangle", "pyramid": "triangle",
    "star": "star", "stars": "star",
}
PLURAL_SHAPES = {"circles", "discs", "disks", "dots", "balls", "ellipses", "ovals", "squares",
                 "boxes", "blocks", "diamonds", "triangles", "stars"}
#: Nouns that make an object of unspecified shape.
GENERIC_NOUNS = {"object", "objects", "shape", "shapes", "form", "forms", "blob", "blobs",
                 "thing", "things"}

STYLES: tuple[str, ...] = ("flat", "outlined", "textured")
STYLE_SYNONYMS = {"flat": "flat", "plain": "flat", "solid": "flat", "outlined": "outlined",
                  "outline": "outlined", "outlines": "outlined", "bordered": "outlined",
                  "textured": "textured", "texture": "textured", "patterned": "textured",
                  "checkered": "textured", "checked": "textured", "speckled": "textured"}

NUMBERS = {"a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "pair": 2, "three": 3, "four": 4,
           "five": 5, "1": 1, "2": 2, "3": 3, "4": 4, "5": 5}


def _lab(rgb) -> np.ndarray:
    arr = np.asarray(rgb, dtype=np.float64).reshape(-1, 1, 3) / 255.0
    return rgb2lab(arr).reshape(-1, 3)


@cache
def _color_table(names: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray]:
    return names, _lab([COLORS[n] for n in names])


def lab(rgb) -> np.ndarray:
    """CIELAB of one RGB triple (0-255) or an (N, 3) array."""
    out = _lab(rgb)
    return out[0] if np.asarray(rgb).ndim == 1 else out


def delta_e(rgb1, rgb2) -> float:
    """CIE76 colour difference of two RGB triples."""
    return float(np.linalg.norm(lab(rgb1) - lab(rgb2)))


def nearest_color_name(rgb, names: tuple[str, ...] | None = None) -> str:
    """The vocabulary colour nearest to ``rgb`` in CIELAB (among ``names``, default all)."""
    table_names, table = _color_table(tuple(names) if names else tuple(COLORS))
    d = np.linalg.norm(table - lab(rgb), axis=1)
    return table_names[int(np.argmin(d))]


def basic_color(name: str) -> str:
    """Drop the shade: ``dark red`` -> ``red``; ``light gray`` -> ``gray``."""
    for shade in ("light ", "dark "):
        if name.startswith(shade):
            return name[len(shade):]
    return name


def shade_of(name: str) -> str:
    return name.split(" ", 1)[0] if name.startswith(("light ", "dark ")) else ""


def with_shade(name: str, shade: str) -> str:
    hue = basic_color(name)
    if hue not in _HUES:
        return name
    return f"{shade} {hue}".strip()


def _nearest(table: dict[str, float], value: float, words=None) -> str:
    items = [(w, v) for w, v in table.items() if words is None or w in words]
    return min(items, key=lambda wv: abs(wv[1] - value))[0]


def nearest_size_word(radius: float, coarse: bool = False) -> str:
    """Nearest size word to an equal-area radius (geometric distance)."""
    words = COARSE_SIZES if coarse else None
    items = [(w, v) for w, v in SIZES.items() if words is None or w in words]
    return min(items, key=lambda wv: abs(np.log(max(radius, 1e-3) / wv[1])))[0]


def nearest_x_word(x: float, coarse: bool = False) -> str:
    return _nearest(X_WORDS, x, COARSE_X if coarse else None)


def nearest_y_word(y: float, coarse: bool = False) -> str:
    return _nearest(Y_WORDS, y, COARSE_Y if coarse else None)


def shift_word(table: dict[str, float], word: str, steps: int) -> str:
    """The word ``steps`` places further along an ordered table (clamped at the ends)."""
    words = list(table)
    i = min(max(words.index(word) + steps, 0), len(words) - 1)
    return words[i]


def position_phrase(x_word: str, y_word: str) -> str:
    """``at the upper left``; ``in the center`` for the middle of the image."""
    if x_word == "center" and y_word == "middle":
        return "in the center"
    return f"at the {y_word} {x_word}"
