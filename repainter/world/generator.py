"""Random scenes of the offline world, by difficulty category, reproducible from seeds.

Categories:

* ``single`` - one object on a solid background;
* ``pair`` - two objects on a solid background;
* ``crowded`` - four or five smaller objects, at least one tiny, on a solid background;
* ``styled`` - two or three outlined / textured objects on a gradient background.

Positions and sizes are continuous (not on the vocabulary's grid), colours are vocabulary
colours (two thirds of them light or dark shades), objects never overlap and always stand out
from the background.

The bundled dataset (``datasets/world/scenes.jsonl``) is :func:`build_bundle` with its default
seeds; ``python -m repainter.world.generator [--check] [PATH]`` rewrites (or checks) it.

>>> a = generate_scene("pair", seed=7)
>>> a == generate_scene("pair", seed=7), len(a.objects)
(True, 2)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from repainter.world.scene import Background, ObjectSpec, SceneSpec, circumradius, shape_extent
from repainter.world.vocabulary import (
    BACKGROUND_COLORS,
    COLORS,
    HUES,
    SHAPES,
    delta_e,
)

CATEGORIES: tuple[str, ...] = ("single", "pair", "crowded", "styled")
#: Scenes per category in the bundled file, and the seed of each: 1000 * (category index + 1) + i.
PER_CATEGORY = 8
BUNDLE_NAME = "scenes.jsonl"

_SETTINGS = {
    #          objects   radius range     styles (flat, outlined, textured)  gradient
    "single": ((1, 1), (0.07, 0.20), (0.6, 0.2, 0.2), False),
    "pair": ((2, 2), (0.06, 0.16), (0.5, 0.25, 0.25), False),
    "crowded": ((4, 5), (0.045, 0.11), (0.6, 0.2, 0.2), False),
    "styled": ((2, 3), (0.06, 0.15), (0.0, 0.5, 0.5), True),
}
_GRADIENTS = [
    ("light blue", "white"), ("white", "light yellow"), ("light pink", "light purple"),
    ("light teal", "light blue"), ("light yellow", "light orange"), ("dark blue", "blue"),
    ("light green", "white"), ("light gray", "white"), ("dark gray", "gray"),
]
_MIN_CONTRAST = 28.0  # CIELAB distance between an object's colour and the background under it


def _pick_colour(rng: np.random.Generator, backgrounds: list[tuple[int, int, int]]) -> str:
    for _ in range(100):
        hue = HUES[int(rng.integers(len(HUES)))]
        shade = ("light", "", "dark")[int(rng.integers(3))]
        name = f"{shade} {hue}".strip()
        if all(delta_e(COLORS[name], bg) >= _MIN_CONTRAST for bg in backgrounds):
            return name
    raise RuntimeError("no colour contrasts with the background")  # pragma: no cover


def generate_scene(category: str, seed: int) -> SceneSpec:
    """A random scene of ``category``; the same (category, seed) always gives the same scene."""
    if category not in _SETTINGS:
        raise ValueError(f"unknown world category {category!r}; known: {', '.join(CATEGORIES)}")
    (n_lo, n_hi), (r_lo, r_hi), style_p, gradient = _SETTINGS[category]
    rng = np.random.default_rng(seed)
    if gradient:
        c1, c2 = _GRADIENTS[int(rng.integers(len(_GRADIENTS)))]
        if rng.random() < 0.5:
            c1, c2 = c2, c1
        direction = "vertical" if rng.random() < 0.6 else "horizontal"
        background = Background(kind="gradient", color=c1, rgb=COLORS[c1], color2=c2,
                                rgb2=COLORS[c2], direction=direction)
        under = [COLORS[c1], COLORS[c2]]
    else:
        name = BACKGROUND_COLORS[int(rng.integers(len(BACKGROUND_COLORS)))]
        background = Background(color=name, rgb=COLORS[name])
        under = [COLORS[name]]
    n = int(rng.integers(n_lo, n_hi + 1))
    radii = rng.uniform(r_lo, r_hi, n)
    if category == "crowded":
        radii[int(rng.integers(n))] = rng.uniform(0.035, 0.05)  # one object a describer may miss
    radii = np.sort(radii)[::-1]  # big ones first: placement is easier and small ones draw on top
    objects: list[ObjectSpec] = []
    placed: list[tuple[float, float, float]] = []  # x, y, circumradius
    for radius in radii:
        radius = float(radius)
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        style = ("flat", "outlined", "textured")[int(rng.choice(3, p=style_p))]
        colour = _pick_colour(rng, under)
        for attempt in range(400):
            r = radius * (0.97 ** (attempt // 50))
            hx, hy = shape_extent(shape, r)
            margin = 0.03
            if hx + margin >= 0.5 - 1e-6 or hy + margin >= 0.5 - 1e-6:
                continue
            x = float(rng.uniform(hx + margin, 1 - hx - margin))
            y = float(rng.uniform(hy + margin, 1 - hy - margin))
            cr = circumradius(shape, r)
            if all(np.hypot(x - px, y - py) >= (cr + pr) * 1.02 + 0.01 for px, py, pr in placed):
                break
        else:  # pragma: no cover - the settings leave plenty of room
            raise RuntimeError(f"could not place object in {category} scene {seed}")
        placed.append((x, y, cr))
        objects.append(ObjectSpec(shape=shape, color=colour, rgb=COLORS[colour],
                                  size=round(r, 4), x=round(x, 4), y=round(y, 4), style=style))
    return SceneSpec(background=background, objects=objects)


def bundle_rows(per_category: int = PER_CATEGORY) -> list[dict]:
    """The rows of the bundled scene file: id, category, seed, scene."""
    rows = []
    for c_index, category in enumerate(CATEGORIES):
        for i in range(per_category):
            seed = 1000 * (c_index + 1) + i
            scene = generate_scene(category, seed)
            rows.append({"id": f"{category}-{i:02d}", "category": category, "seed": seed,
                         "scene": scene.model_dump(mode="json")})
    return rows


def bundle_text(per_category: int = PER_CATEGORY) -> str:
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in bundle_rows(per_category))


def default_bundle_path() -> Path:
    from repainter.resources import resource_dir

    return resource_dir("datasets") / "world" / BUNDLE_NAME


def build_bundle(path: str | Path | None = None) -> Path:
    """Write the bundled scene file (default: the repository's ``datasets/world``)."""
    target = Path(path) if path else default_bundle_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(bundle_text(), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the bundled world scenes.")
    parser.add_argument("path", nargs="?", help="output file (default: the bundled file)")
    parser.add_argument("--check", action="store_true",
                        help="only check that the file equals what the seeds give")
    args = parser.parse_args(argv)
    target = Path(args.path) if args.path else default_bundle_path()
    if args.check:
        same = target.is_file() and target.read_text(encoding="utf-8") == bundle_text()
        print(f"{target}: {'up to date' if same else 'DIFFERS from the seeds'}")
        return 0 if same else 1
    print(f"wrote {build_bundle(target)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
