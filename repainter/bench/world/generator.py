"""Random scenes of the offline world, by difficulty category, reproducible from seeds.

Categories:

* ``single`` - one object on a solid background;
* ``pair`` - two objects on a solid background;
* ``crowded`` - four or five smaller objects, at least one tiny, on a solid background;
* ``styled`` - two or three outlined / textured objects on a gradient background.

Positions and sizes are continuous (not on the vocabulary's grid), colours are vocabulary
colours (two thirds of them light or dark shades), objects never overlap and always stand out
from the background.

:func:`scene_variants` makes near variants of a scene (hard negatives for retrieval): each
changes exactly one thing - moves, recolours, reshapes or resizes one object, swaps two objects'
colours, changes the background, drops or adds an object - and keeps the invariants above.

The bundled dataset (``datasets/world/scenes.jsonl``) is :func:`build_bundle` with its default
seeds; ``python -m repainter.bench.world.generator [--check] [PATH]`` rewrites (or checks) it.

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

from repainter.bench.world.scene import (
    Background,
    ObjectSpec,
    SceneSpec,
    circumradius,
    shape_extent,
)
from repainter.bench.world.vocabulary import (
    BACKGROUND_COLORS,
    COLORS,
    HUES,
    OBJECT_COLORS,
    SHAPES,
    basic_color,
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


_MARGIN = 0.03  # free space between an object's bounding box and the image border


def _contrasts(name: str, backgrounds: list[tuple[int, int, int]]) -> bool:
    return all(delta_e(COLORS[name], bg) >= _MIN_CONTRAST for bg in backgrounds)


def _under(background: Background) -> list[tuple[int, int, int]]:
    """The background colours an object may stand on (both ends of a gradient)."""
    return [background.rgb] + ([background.rgb2] if background.kind == "gradient"
                               and background.rgb2 is not None else [])


def _pick_colour(rng: np.random.Generator, backgrounds: list[tuple[int, int, int]]) -> str:
    for _ in range(100):
        hue = HUES[int(rng.integers(len(HUES)))]
        shade = ("light", "", "dark")[int(rng.integers(3))]
        name = f"{shade} {hue}".strip()
        if _contrasts(name, backgrounds):
            return name
    raise RuntimeError("no colour contrasts with the background")  # pragma: no cover


def _clear(x: float, y: float, cr: float, placed: list[tuple[float, float, float]]) -> bool:
    """No overlap with the ``placed`` objects (x, y, circumradius), with a little air between."""
    return all(np.hypot(x - px, y - py) >= (cr + pr) * 1.02 + 0.01 for px, py, pr in placed)


def _place(rng: np.random.Generator, shape: str, radius: float,
           placed: list[tuple[float, float, float]], *, shrink: bool = True,
           away_from: tuple[float, float] | None = None,
           ) -> tuple[float, float, float, float] | None:
    """A random free spot for ``shape``: (x, y, radius, circumradius), or None after 400 tries.

    ``shrink`` lets the radius shrink by 3% every 50 tries; ``away_from`` asks for a centre at
    least ``_MIN_SHIFT`` from that point.
    """
    for attempt in range(400):
        r = radius * (0.97 ** (attempt // 50)) if shrink else radius
        hx, hy = shape_extent(shape, r)
        if hx + _MARGIN >= 0.5 - 1e-6 or hy + _MARGIN >= 0.5 - 1e-6:
            continue
        x = float(rng.uniform(hx + _MARGIN, 1 - hx - _MARGIN))
        y = float(rng.uniform(hy + _MARGIN, 1 - hy - _MARGIN))
        if away_from is not None and np.hypot(x - away_from[0], y - away_from[1]) < _MIN_SHIFT:
            continue
        cr = circumradius(shape, r)
        if _clear(x, y, cr, placed):
            return x, y, r, cr
    return None


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
        spot = _place(rng, shape, radius, placed)
        if spot is None:  # pragma: no cover - the settings leave plenty of room
            raise RuntimeError(f"could not place object in {category} scene {seed}")
        x, y, r, cr = spot
        placed.append((x, y, cr))
        objects.append(ObjectSpec(shape=shape, color=colour, rgb=COLORS[colour],
                                  size=round(r, 4), x=round(x, 4), y=round(y, 4), style=style))
    return SceneSpec(background=background, objects=objects)


# -- near variants (hard negatives) ----------------------------------------------------------

#: What a near variant changes, exactly one thing each (see :func:`scene_variants`).
VARIANT_KINDS: tuple[str, ...] = (
    "move", "recolour", "swap_colours", "reshape", "resize", "background", "drop", "add",
)
MAX_OBJECTS = 5
#: A moved object's centre travels at least this far (object_f1's position tolerance is 0.1).
_MIN_SHIFT = 0.15
#: Size factors of ``resize``: shrink or grow beyond object_f1's size tolerance (x 1.3).
_RESIZE_FACTORS = ((0.6, 0.72), (1.4, 1.65))
_SIZE_RANGE = (0.035, 0.22)


def _spots(objects: list[ObjectSpec]) -> list[tuple[float, float, float]]:
    return [(o.x, o.y, circumradius(o.shape, o.size)) for o in objects]


def _fits(obj: ObjectSpec, others: list[ObjectSpec]) -> bool:
    """In frame (with the generator's margin) and clear of ``others``."""
    hx, hy = shape_extent(obj.shape, obj.size)
    return (hx + _MARGIN <= obj.x <= 1 - hx - _MARGIN and hy + _MARGIN <= obj.y <= 1 - hy - _MARGIN
            and _clear(obj.x, obj.y, circumradius(obj.shape, obj.size), _spots(others)))


def _with(spec: SceneSpec, index: int, obj: ObjectSpec | None) -> SceneSpec | None:
    """``spec`` with object ``index`` replaced by ``obj`` (None: removed); None if it won't fit."""
    others = spec.objects[:index] + spec.objects[index + 1:]
    if obj is None:
        return spec.model_copy(update={"objects": others})
    if not _fits(obj, others):
        return None
    return spec.model_copy(update={"objects": [*spec.objects[:index], obj,
                                               *spec.objects[index + 1:]]})


def _variant_move(spec: SceneSpec, rng: np.random.Generator) -> SceneSpec | None:
    i = int(rng.integers(len(spec.objects)))
    o = spec.objects[i]
    spot = _place(rng, o.shape, o.size, _spots(spec.objects[:i] + spec.objects[i + 1:]),
                  shrink=False, away_from=(o.x, o.y))
    if spot is None:
        return None
    return _with(spec, i, o.model_copy(update={"x": round(spot[0], 4), "y": round(spot[1], 4)}))


def _variant_recolour(spec: SceneSpec, rng: np.random.Generator) -> SceneSpec | None:
    i = int(rng.integers(len(spec.objects)))
    o = spec.objects[i]
    under = _under(spec.background)
    names = [c for c in OBJECT_COLORS
             if basic_color(c) != basic_color(o.color) and _contrasts(c, under)]
    if not names:
        return None
    name = names[int(rng.integers(len(names)))]
    return _with(spec, i, o.model_copy(update={"color": name, "rgb": COLORS[name]}))


def _variant_swap_colours(spec: SceneSpec, rng: np.random.Generator) -> SceneSpec | None:
    objs = spec.objects
    pairs = [(i, j) for i in range(len(objs)) for j in range(i + 1, len(objs))
             if delta_e(objs[i].rgb, objs[j].rgb) >= _MIN_CONTRAST]
    if not pairs:
        return None
    i, j = pairs[int(rng.integers(len(pairs)))]
    a, b = objs[i], objs[j]
    objects = list(objs)
    objects[i] = a.model_copy(update={"color": b.color, "rgb": b.rgb})
    objects[j] = b.model_copy(update={"color": a.color, "rgb": a.rgb})
    return spec.model_copy(update={"objects": objects})


def _variant_reshape(spec: SceneSpec, rng: np.random.Generator) -> SceneSpec | None:
    i = int(rng.integers(len(spec.objects)))
    o = spec.objects[i]
    for k in rng.permutation(len(SHAPES)):
        if SHAPES[k] != o.shape:
            found = _with(spec, i, o.model_copy(update={"shape": SHAPES[k]}))
            if found is not None:
                return found
    return None


def _variant_resize(spec: SceneSpec, rng: np.random.Generator) -> SceneSpec | None:
    i = int(rng.integers(len(spec.objects)))
    o = spec.objects[i]
    for _ in range(20):
        lo, hi = _RESIZE_FACTORS[int(rng.integers(2))]
        size = round(o.size * float(rng.uniform(lo, hi)), 4)
        if _SIZE_RANGE[0] <= size <= _SIZE_RANGE[1]:
            found = _with(spec, i, o.model_copy(update={"size": size}))
            if found is not None:
                return found
    return None


def _variant_background(spec: SceneSpec, rng: np.random.Generator) -> SceneSpec | None:
    bg = spec.background

    def shows(*names: str) -> bool:
        return all(_contrasts(o.color, [COLORS[n] for n in names]) for o in spec.objects)

    if bg.kind == "gradient":
        options = [(a, b) for pair in _GRADIENTS for a, b in (pair, pair[::-1])
                   if {a, b} != {bg.color, bg.color2} and shows(a, b)]
        if not options:
            return None
        c1, c2 = options[int(rng.integers(len(options)))]
        new = bg.model_copy(update={"color": c1, "rgb": COLORS[c1], "color2": c2,
                                    "rgb2": COLORS[c2]})
    else:
        options = [c for c in BACKGROUND_COLORS if c != bg.color and shows(c)]
        if not options:
            return None
        name = options[int(rng.integers(len(options)))]
        new = bg.model_copy(update={"color": name, "rgb": COLORS[name]})
    return spec.model_copy(update={"background": new})


def _variant_drop(spec: SceneSpec, rng: np.random.Generator) -> SceneSpec | None:
    if len(spec.objects) < 2:
        return None
    return _with(spec, int(rng.integers(len(spec.objects))), None)


def _variant_add(spec: SceneSpec, rng: np.random.Generator) -> SceneSpec | None:
    if len(spec.objects) >= MAX_OBJECTS:
        return None
    sizes = [o.size for o in spec.objects] or [0.1]
    radius = float(rng.uniform(max(min(sizes), 0.045), max(max(sizes), 0.06)))
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    style = spec.objects[int(rng.integers(len(spec.objects)))].style if spec.objects else "flat"
    colour = _pick_colour(rng, _under(spec.background))
    spot = _place(rng, shape, radius, _spots(spec.objects))
    if spot is None:
        return None
    x, y, r, _ = spot
    extra = ObjectSpec(shape=shape, color=colour, rgb=COLORS[colour], size=round(r, 4),
                       x=round(x, 4), y=round(y, 4), style=style)
    if not _fits(extra, spec.objects):
        return None
    return spec.model_copy(update={"objects": [*spec.objects, extra]})


_VARIANTS = {
    "move": _variant_move, "recolour": _variant_recolour, "swap_colours": _variant_swap_colours,
    "reshape": _variant_reshape, "resize": _variant_resize, "background": _variant_background,
    "drop": _variant_drop, "add": _variant_add,
}


def scene_variants(spec: SceneSpec, n: int, seed: int) -> list[tuple[str, SceneSpec]]:
    """``n`` near variants of ``spec``, each changing exactly one thing: ``(kind, scene)``.

    Kinds (:data:`VARIANT_KINDS`): ``move`` (one object's centre shifts by at least 0.15 of the
    image), ``recolour`` (one object takes a colour of another hue), ``swap_colours`` (two
    objects of clearly different colours exchange them: the same concepts, bound differently),
    ``reshape`` (one object takes another shape, same size and place), ``resize`` (one object
    shrinks to 0.6-0.72 or grows to 1.4-1.65 times its size), ``background`` (another background
    colour, or another gradient in the same direction), ``drop`` (one object removed, only where
    there are two or more) and ``add`` (one extra object, up to five). Every variant keeps the
    generator's invariants (objects in frame, not overlapping, standing out from the background),
    differs from ``spec`` and from the other variants. The kinds are taken in an order drawn from
    ``seed`` and cycled, so a few variants are of different kinds; a kind that does not apply (or
    finds no room) is skipped. The same (spec, n, seed) always gives the same variants.

    >>> base = generate_scene("pair", seed=7)
    >>> [kind for kind, _ in scene_variants(base, 3, seed=0)]
    ['resize', 'drop', 'move']
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"scene_variants: n must be an integer >= 0, not {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"scene_variants: seed must be an integer >= 0, not {seed!r}")
    rng = np.random.default_rng([int(seed), 0x7A41A])
    order = [VARIANT_KINDS[int(k)] for k in rng.permutation(len(VARIANT_KINDS))]
    seen = {spec.model_dump_json()}
    out: list[tuple[str, SceneSpec]] = []
    idle = 0  # kinds tried in a row without a new variant
    step = 0
    while len(out) < n:
        kind = order[step % len(order)]
        step += 1
        variant = _VARIANTS[kind](spec, rng)
        key = variant.model_dump_json() if variant is not None else None
        if key is None or key in seen:
            idle += 1
            if idle > 20 * len(order):
                raise ValueError(f"scene_variants: could not make {n} distinct variants "
                                 f"(made {len(out)})")
            continue
        idle = 0
        seen.add(key)
        out.append((kind, variant))
    return out


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
