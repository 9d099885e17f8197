"""``sim``: a simulated text-to-image model with the failure modes of real ones.

The model reads a prompt with its own lexicon (:mod:`repainter.bench.sim.lexicon`), decides which scene
to draw - making the mistakes its rate parameters ask for - and renders that scene with the
world's pixel renderer (:func:`repainter.bench.world.scene.render_scene`, physics shared with the
references). Every image carries the scene it **actually drew** in
``GeneratedImage.metadata["drawn_scene"]``, a key it marks as recorded (``recorded_metadata``),
so the run keeps it in each candidate's ``metadata``; the truth metric ``scene_truth`` compares it
with the reference's ground truth: no detector is involved in judging a model.

Rate parameters (each a probability in [0, 1] unless said otherwise; 0 = never, 1 = always):

``vocabulary``
    Fraction of the *extended* words (``crimson``, ``rhombus``, ``backdrop``, ...) the model knows
    (:func:`repainter.bench.sim.lexicon.knows`; nested: a smaller vocabulary knows a subset). Core words
    are always known. An attribute whose words are all unknown is drawn from the model's prior.
``token_budget``
    Word tokens read from the start of the prompt (an int, or None for no limit); later words are
    dropped, as CLIP's 77-token window truncates Stable Diffusion prompts.
``order_drop``
    Word-order emphasis: the k-th object clause (k = 0, 1, ...) is left out with probability
    ``1 - (1 - order_drop) ** k``, so later objects are dropped more often.
``binding_leak``
    Attribute-binding leakage: per object not yet swapped (in scenes of two or more), the
    probability that its colour (two times in three) or its shape is swapped with another
    not-yet-swapped object's.
``count_error``
    Per object clause, the probability that one object too many or too few is drawn.
``spatial_error``
    Per object not yet moved, the probability that it is drawn at the wrong place: it swaps
    places with another not-yet-moved object (a spatial-relation error), or, when none is left,
    lands at a random place.
``background_bias``
    Probability that the prompt's background is ignored for the model's ``default_background``.
``style_bias``
    Per object, the probability that an asked-for style (outlined / textured) is drawn flat.
``jitter``
    Seed variance (>= 0): standard deviations 0.02 * jitter of position, 6 % * jitter of size and
    4 * jitter RGB levels of colour, drawn per seed.
``renderer``
    Which world renderer draws the chosen scene (:mod:`repainter.bench.world.renderers`):
    ``flat`` (default) or ``painterly`` (another look, nothing was tuned on it). Only the drawing
    changes: the same prompt and seed give the same ``drawn_scene`` with either.

What a prompt leaves unsaid (or the model did not understand) comes from the seed: a random
shape, palette colour, size around ``medium`` and place.

The defaults are a capable but imperfect model (it knows 70 % of the extended words, reads 77
words, and makes each kind of mistake now and then); :func:`repainter.bench.sim.zoo.ladders` lists
models that are worse in one documented way at a time. ``SimT2I(vocabulary=1, order_drop=0,
binding_leak=0, count_error=0, spatial_error=0, background_bias=0, style_bias=0, jitter=0)``
draws exactly what it reads.

>>> t2i = SimT2I(size=64)
>>> out = t2i.generate(["a large red circle in the center, on a white background"], [3])[0]
>>> drawn = out.metadata["drawn_scene"]
>>> drawn["objects"][0]["shape"], drawn["background"]["rgb"], out.image.size
('circle', [250, 250, 250], (64, 64))
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from repainter.backends.base import GeneratedImage, T2IBackend
from repainter.bench.sim.lexicon import ObjectClause, Parsed, parse
from repainter.bench.world.renderers import check_renderer, draw
from repainter.bench.world.scene import Background, ObjectSpec, SceneSpec
from repainter.bench.world.vocabulary import COLORS, OBJECT_COLORS

SHAPES = ("circle", "ellipse", "square", "diamond", "triangle", "star")
RATES = ("order_drop", "binding_leak", "count_error", "spatial_error", "background_bias",
         "style_bias")
MAX_DRAWN = 8


def _prompt_salt(prompt: str) -> int:
    return int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big")


class SimT2I(T2IBackend):
    """Simulated T2I model with documented failure rates; reports the scene it drew."""

    kind = "sim"
    #: The scene each render drew is kept with its candidate (``scene_truth`` reads it).
    recorded_metadata = ("drawn_scene",)

    def __init__(self, size: int = 256, vocabulary: float = 0.7, token_budget: int | None = 77,
                 order_drop: float = 0.05, binding_leak: float = 0.1, count_error: float = 0.05,
                 spatial_error: float = 0.1, background_bias: float = 0.1,
                 style_bias: float = 0.2, jitter: float = 1.0,
                 default_background: str = "white", renderer: str = "flat"):
        if not 16 <= int(size) <= 2048:
            raise ValueError("sim size must be between 16 and 2048 pixels")
        rates = dict(vocabulary=vocabulary, order_drop=order_drop, binding_leak=binding_leak,
                     count_error=count_error, spatial_error=spatial_error,
                     background_bias=background_bias, style_bias=style_bias)
        for name, value in rates.items():
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"sim {name} must be in [0, 1], not {value!r}")
        if token_budget is not None and int(token_budget) < 1:
            raise ValueError("sim token_budget must be >= 1 or null")
        if jitter < 0:
            raise ValueError("sim jitter must be >= 0")
        if default_background not in COLORS:
            raise ValueError(f"sim default_background must be a palette colour, not {default_background!r}")
        self.size = int(size)
        self.rates = {k: float(v) for k, v in rates.items()}
        self.token_budget = None if token_budget is None else int(token_budget)
        self.jitter = float(jitter)
        self.default_background = default_background
        self.renderer = check_renderer(renderer)

    def identity(self) -> dict[str, Any]:
        return {"backend": self.kind, "size": self.size, **self.rates,
                "token_budget": self.token_budget, "jitter": self.jitter,
                "default_background": self.default_background,
                # only a non-default renderer enters the identity (flat runs keep their caches)
                **({"renderer": self.renderer} if self.renderer != "flat" else {})}

    # -- what it draws --------------------------------------------------------------------------

    def read(self, prompt: str) -> Parsed:
        return parse(prompt, self.rates["vocabulary"], self.token_budget)

    def draw(self, prompt: str, seed: int) -> tuple[SceneSpec, Parsed]:
        """The scene this model draws for ``prompt`` and ``seed``, and what it read."""
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, _prompt_salt(prompt), 0x51D])
        parsed = self.read(prompt)
        rate = self.rates
        # one uniform draw per failure decision, in a fixed order, so rates compare across models
        background = self._background(parsed, rng.random() < rate["background_bias"])
        objects: list[dict[str, Any]] = []
        for k, clause in enumerate(parsed.objects):
            dropped = rng.random() >= (1 - rate["order_drop"]) ** k
            miscounted = rng.random() < rate["count_error"]
            count = clause.count + (int(rng.choice([-1, 1])) if miscounted else 0)
            if clause.count == 1 and miscounted:
                count = 2 if rng.random() < 0.5 else 0
            for n in range(0 if dropped else max(count, 0)):
                objects.append(self._realise(clause, rng, duplicate=n > 0))
        objects = objects[:MAX_DRAWN]
        swapped: set[int] = set()
        for i, obj in enumerate(objects):
            if rng.random() < rate["style_bias"]:
                obj["style"] = "flat"
            leak, what, other = rng.random(), rng.random(), rng.integers(1 << 30)
            partners = [k for k in range(len(objects)) if k != i and k not in swapped]
            if i not in swapped and partners and leak < rate["binding_leak"]:
                # a leak swaps one attribute between two objects, each pair at most once
                j = partners[int(other) % len(partners)]
                keys = ("color", "rgb") if what < 2 / 3 else ("shape",)
                for key in keys:
                    obj[key], objects[j][key] = objects[j][key], obj[key]
                swapped |= {i, j}
        moved: set[int] = set()
        for i, obj in enumerate(objects):
            misplaced, other = rng.random(), rng.integers(1 << 30)
            place = [float(v) for v in rng.uniform(0.15, 0.85, 2)]
            partners = [k for k in range(len(objects)) if k != i and k not in moved]
            if i in moved or misplaced >= rate["spatial_error"]:
                continue
            if partners:  # two objects swap places
                j = partners[int(other) % len(partners)]
                (obj["x"], obj["y"]), (objects[j]["x"], objects[j]["y"]) = (
                    (objects[j]["x"], objects[j]["y"]), (obj["x"], obj["y"]))
                moved |= {i, j}
            else:  # alone (or the last one left): a random place
                obj["x"], obj["y"] = place
                moved.add(i)
        self._jitter(objects, rng)
        return SceneSpec(background=background, objects=[ObjectSpec(**o) for o in objects]), parsed

    def _background(self, parsed: Parsed, biased: bool) -> Background:
        bg = parsed.background
        if bg is None or biased:
            return Background(color=self.default_background, rgb=COLORS[self.default_background])
        if bg.kind == "gradient" and bg.rgb2 is not None:
            return Background(kind="gradient", color="drawn", rgb=bg.rgb, color2="drawn",
                              rgb2=bg.rgb2, direction=bg.direction)
        return Background(color="drawn", rgb=bg.rgb)

    def _realise(self, clause: ObjectClause, rng: np.random.Generator, duplicate: bool) -> dict:
        # the prior draws are always made (fixed order), then the clause's words override them
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        colour = OBJECT_COLORS[int(rng.integers(len(OBJECT_COLORS)))]
        size = float(np.clip(0.09 * np.exp(rng.normal(0, 0.3)), 0.035, 0.2))
        x, y = (float(v) for v in rng.uniform(0.15, 0.85, 2))
        return {
            "shape": clause.shape or shape,
            "color": "drawn" if clause.rgb else colour,
            "rgb": tuple(clause.rgb or COLORS[colour]),
            "size": clause.size or size,
            "x": x if duplicate or clause.x is None else clause.x,
            "y": y if duplicate or clause.y is None else clause.y,
            "style": clause.style or "flat",
        }

    def _jitter(self, objects: list[dict], rng: np.random.Generator) -> None:
        j = self.jitter
        for obj in objects:
            dx, dy = rng.normal(0, 0.02 * j, 2)
            obj["x"] = float(np.clip(obj["x"] + dx, 0.03, 0.97))
            obj["y"] = float(np.clip(obj["y"] + dy, 0.03, 0.97))
            obj["size"] = float(np.clip(obj["size"] * np.exp(rng.normal(0, 0.06 * j)), 0.02, 0.3))
            noise = rng.normal(0, 4 * j, 3)
            obj["rgb"] = tuple(int(np.clip(round(c + n), 0, 255)) for c, n in zip(obj["rgb"], noise))

    # -- the backend ------------------------------------------------------------------------------

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[GeneratedImage]:
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        out = []
        for prompt, seed in zip(prompts, seeds):
            scene, parsed = self.draw(prompt, seed)
            out.append(GeneratedImage(
                image=draw(scene, self.size, self.renderer, int(seed)), prompt=prompt,
                seed=int(seed),
                metadata={"drawn_scene": scene.model_dump(mode="json"),
                          "dropped_words": parsed.dropped_words,
                          "unknown_words": sorted(set(parsed.unknown))},
            ))
        return out
