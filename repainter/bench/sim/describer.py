"""``sim-describer``: an offline MLLM that perceives pixels once, one way, and talks English.

Every role uses the same perception (:func:`repainter.bench.sim.perception.perceive`: one fixed
``resolution``, fixed seeded ``noise``) and the same concept granularity
(:mod:`repainter.bench.sim.phrasing`): the description is as fine as the critique, so a loop can only
gain from feedback about what the T2I model got wrong, never from a finer second look.

* ``describe``: the perceived objects and background, as concepts, into the IUT;
* ``rewrite_prompt``: the IUT in the describer's own English (its idiolect picks one phrasing
  per concept, e.g. "crimson" for dark red);
* ``write_variants``: the prompt, then rewordings (another phrasing of one concept, two objects
  swapped in order, or a terser prompt);
* ``critique``: perceived differences between reference and render at concept granularity:
  a missing or extra object, another shape / colour / size / place / style, another background;
  each names the prompt clause it concerns (``target = clause:<k>``) and what was drawn;
* ``revise``: acts on the critique: a missing object's clause moves to the front (late words are
  the first a model drops) and the prompt turns terse when several are missing; a concept drawn
  wrong gets another phrasing (the model may not know the word): with ``rephrase="plainer"``
  (the default) the plainest one, as a capable MLLM falls back on common words (a plainest word
  that failed is kept: the word was not the problem), and a missing object is described in its
  plainest words; with ``"next"`` the next phrasing in its list (and a missing object's shape); a size or place drawn one
  step off is asked one step further the other way (compensating the model's own scale);
* ``judge``: 1-5 from the perceived agreement.

It never reads the T2I model's lexicon or the world grammar, and never sees ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

from repainter.backends.base import MLLMBackend
from repainter.bench.sim.perception import Percept, SeenObject, perceive
from repainter.bench.sim.phrasing import (
    SHAPE_WORDS,
    SIZE_LEVELS,
    SIZE_WORDS,
    STYLE_WORDS,
    X_LEVELS,
    X_WORDS,
    Y_LEVELS,
    Y_WORDS,
    BackgroundConcept,
    ObjectConcept,
    PromptPlan,
    colour_words,
    fix_choices,
    nearest_level,
    read_prompt,
    shift_level,
    write_prompt,
)
from repainter.bench.world.vocabulary import COLORS, delta_e
from repainter.schemas import (
    Critique,
    Difference,
    GlobalFeatures,
    ImageUnderstandingTree,
    Judgement,
    ObjectAttributes,
    SceneObject,
)

#: How a revision rephrases a concept drawn wrong (see ``revise`` above).
REPHRASE = ("plainer", "next")
#: Words beyond which the describer shortens a prompt that lost objects.
LONG_PROMPT_WORDS = 40
_LEVELS = {"size": SIZE_LEVELS, "x": X_LEVELS, "y": Y_LEVELS}
_WORDS = {"shape": SHAPE_WORDS, "size": SIZE_WORDS, "style": STYLE_WORDS, "x": X_WORDS,
          "y": Y_WORDS}


def _options(kind: str, value: str) -> tuple[str, ...]:
    return colour_words(value) if kind == "color" else _WORDS[kind][value]


def _kv(text: str) -> dict[str, str]:
    """``"op=missing; shape=star"`` -> ``{"op": "missing", "shape": "star"}``."""
    pairs = (part.partition("=") for part in text.split(";"))
    return {key.strip(): value.strip() for key, sep, value in pairs if sep}


def _object_cost(a: ObjectConcept | SeenObject, b: ObjectConcept | SeenObject) -> float:
    ca = a.concept if isinstance(a, SeenObject) else a
    cb = b.concept if isinstance(b, SeenObject) else b
    steps = sum(abs(list(_LEVELS[k]).index(getattr(ca, k)) - list(_LEVELS[k]).index(getattr(cb, k)))
                for k in ("size", "x", "y"))
    return (float(ca.shape != cb.shape) + delta_e(COLORS[ca.color], COLORS[cb.color]) / 40
            + 0.3 * steps)


def match(a: Sequence, b: Sequence, limit: float = 2.5) -> list[tuple[int, int]]:
    """One-to-one pairs (i, j) of the same object in two lists of concepts / seen objects."""
    if not a or not b:
        return []
    cost = np.array([[_object_cost(p, q) for q in b] for p in a])
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] < limit]


class SimDescriber(MLLMBackend):
    """Offline MLLM of the simulation bench: one perception for every role, its own English."""

    kind = "sim-describer"

    def __init__(self, resolution: int = 224, noise: float = 1.0, seed: int = 0,
                 idiolect: int = 0, max_differences: int = 10, rephrase: str = "plainer"):
        if rephrase not in REPHRASE:
            raise ValueError(f"sim-describer rephrase must be one of {REPHRASE}, not {rephrase!r}")
        if not 32 <= int(resolution) <= 1024:
            raise ValueError("sim-describer resolution must be between 32 and 1024 pixels")
        if noise < 0:
            raise ValueError("sim-describer noise must be >= 0")
        self.resolution, self.noise, self.seed = int(resolution), float(noise), int(seed)
        self.idiolect, self.max_differences = int(idiolect), int(max_differences)
        self.rephrase = rephrase
        self._calls: dict[str, int] = {}

    def identity(self) -> dict[str, Any]:
        return {"backend": self.kind, "resolution": self.resolution, "noise": self.noise,
                "seed": self.seed, "idiolect": self.idiolect,
                "max_differences": self.max_differences, "rephrase": self.rephrase}

    def _count(self, role: str) -> None:
        self._calls[role] = self._calls.get(role, 0) + 1

    def usage(self) -> dict[str, float]:
        return {"calls": float(sum(self._calls.values())),
                **{f"calls_{k}": float(v) for k, v in sorted(self._calls.items())}}

    def see(self, image: Image.Image) -> Percept:
        return perceive(image, self.resolution, self.noise, self.seed)

    # -- describe / write -------------------------------------------------------------------------

    def describe(self, image: Image.Image, context: Sequence[dict[str, Any]] = ()
                 ) -> ImageUnderstandingTree:
        self._count("describe")
        seen = self.see(image)
        return plan_to_iut(PromptPlan(seen.background, [o.concept for o in seen.objects]))

    def rewrite_prompt(self, draft: str, iut: ImageUnderstandingTree) -> str:
        """The IUT's concepts in the describer's idiolect (the template draft is not needed)."""
        self._count("rewrite_prompt")
        return write_prompt(iut_to_plan(iut), self.idiolect)

    def write_variants(self, prompt: str, n: int, iut: ImageUnderstandingTree,
                       critique: Critique | None, seed: int) -> list[str]:
        self._count("write_variants")
        rng = np.random.default_rng([abs(int(seed)) & 0xFFFFFFFF, 0x5A7])
        base = _plan_of(prompt, self.idiolect)
        out = [prompt]
        for _ in range(max(0, n - 1)):
            for _attempt in range(10):
                text = write_prompt(self._reword(base, rng), self.idiolect)
                if text not in out:
                    out.append(text)
                    break
            else:
                out.append(prompt)
        return out[:n]

    @staticmethod
    def _reword(plan: PromptPlan, rng: np.random.Generator) -> PromptPlan:
        plan = replace(plan, objects=list(plan.objects), choices=dict(plan.choices))
        move = rng.random()
        if move < 0.25 and len(plan.objects) > 1:
            i, j = rng.choice(len(plan.objects), 2, replace=False)
            plan.objects[i], plan.objects[j] = plan.objects[j], plan.objects[i]
        elif move < 0.35:
            plan.terse = not plan.terse
        elif plan.choices:
            key = sorted(plan.choices)[int(rng.integers(len(plan.choices)))]
            plan.choices[key] += 1
        return plan

    # -- critique / revise ------------------------------------------------------------------------

    def critique(self, reference: Image.Image, candidate: Image.Image, prompt: str) -> Critique:
        self._count("critique")
        ref, cand = self.see(reference), self.see(candidate)
        clauses = read_prompt(prompt).objects
        clause_of = dict(match(ref.objects, clauses, limit=9.0))
        diffs: list[tuple[float, Difference]] = []
        if ref.background != cand.background:
            diffs.append((1.0, Difference(
                aspect="background", target="background",
                change=f"op=background; want={_bg_text(ref.background)}; drawn={_bg_text(cand.background)}",
                description=f"the background should be {_bg_text(ref.background)}, "
                            f"not {_bg_text(cand.background)}")))
        pairs = match(ref.objects, cand.objects)
        matched_ref, matched_cand = {i for i, _ in pairs}, {j for _, j in pairs}
        for i, j in pairs:
            want, got = ref.objects[i].concept, cand.objects[j].concept
            target = f"clause:{clause_of[i]}" if i in clause_of else "new"
            for kind in ("shape", "color", "size", "x", "y", "style"):
                a, b = getattr(want, kind), getattr(got, kind)
                if a != b:
                    aspect = {"shape": "content", "color": "color", "style": "style"}.get(kind, "composition")
                    diffs.append((0.5 + ref.objects[i].size, Difference(
                        aspect=aspect, target=target,
                        change=f"op=attribute; kind={kind}; want={a}; drawn={b}",
                        description=f"the {want.color} {want.shape}: {kind} should be {a}, not {b}")))
        for i, obj in enumerate(ref.objects):
            if i not in matched_ref:
                c = obj.concept
                target = f"clause:{clause_of[i]}" if i in clause_of else "new"
                diffs.append((1.0 + 2 * obj.size, Difference(
                    aspect="content", target=target,
                    change=(f"op=missing; shape={c.shape}; color={c.color}; size={c.size}; "
                            f"x={c.x}; y={c.y}; style={c.style}"),
                    description=f"missing: a {c.size} {c.color} {c.shape} at the {c.y} {c.x}")))
        for j, obj in enumerate(cand.objects):
            if j not in matched_cand:
                c = obj.concept
                diffs.append((0.8 + 2 * obj.size, Difference(
                    aspect="content", target="extra", change=f"op=extra; shape={c.shape}; color={c.color}",
                    description=f"extra: a {c.color} {c.shape} that the reference does not have")))
        diffs.sort(key=lambda sd: -sd[0])
        kept = [d for _, d in diffs[: self.max_differences]]
        summary = (f"{len(kept)} difference(s): " + "; ".join(d.description for d in kept[:4])
                   if kept else "the candidate matches the reference closely")
        return Critique(differences=kept, summary=summary)

    def revise(self, prompt: str, critique: Critique, iut: ImageUnderstandingTree) -> str:
        self._count("revise")
        plan = _plan_of(prompt, self.idiolect)
        objects, choices = list(plan.objects), dict(plan.choices)
        front: list[int] = []
        missing = 0
        for diff in critique.differences:
            kv = _kv(diff.change)
            op = kv.get("op")
            k = _clause_index(diff.target, len(objects))
            if op == "background" and plan.background is not None:
                for key in _background_keys(plan.background):
                    _rephrase(choices, key, self.rephrase)
            elif op == "missing":
                missing += 1
                if k is None:
                    concept = ObjectConcept(kv["shape"], kv["color"], kv["size"], kv["x"], kv["y"],
                                            kv.get("style", "flat"))
                    objects.append(concept)
                    k = len(objects) - 1
                    if self.rephrase == "plainer":
                        _rephrase_object(choices, objects[k])
                elif self.rephrase == "plainer":  # not drawn at all: every word of it plainer
                    _rephrase_object(choices, objects[k])
                else:
                    _rephrase(choices, f"shape:{objects[k].shape}", self.rephrase)
                front.append(k)
            elif op == "attribute" and k is not None:
                objects[k] = _fix_attribute(objects[k], kv, choices, self.rephrase)
        order = list(dict.fromkeys([*front, *range(len(objects))]))
        terse = plan.terse or (missing >= 2 and len(prompt.split()) > LONG_PROMPT_WORDS)
        revised = PromptPlan(plan.background, [objects[i] for i in order], choices, terse)
        return write_prompt(revised, self.idiolect)

    # -- judge ------------------------------------------------------------------------------------

    def judge(self, reference: Image.Image, candidate: Image.Image) -> Judgement:
        self._count("judge")
        ref, cand = self.see(reference), self.see(candidate)
        pairs = match(ref.objects, cand.objects)
        n = max(len(ref.objects), len(cand.objects), 1)
        agree = [np.mean([getattr(ref.objects[i].concept, k) == getattr(cand.objects[j].concept, k)
                          for k in ("shape", "color", "size", "x", "y", "style")]) for i, j in pairs]
        objects = float(sum(agree)) / n if (ref.objects or cand.objects) else 1.0
        background = float(ref.background == cand.background)
        semantic = 0.85 * objects + 0.15 * background
        colours = [ref.objects[i].concept.color == cand.objects[j].concept.color for i, j in pairs]
        aesthetic = 0.5 * background + 0.5 * (sum(colours) / n)
        return Judgement(
            semantic=int(1 + round(4 * semantic)), aesthetic=int(1 + round(4 * aesthetic)),
            rationale=(f"{len(pairs)} of {len(ref.objects)} reference objects seen "
                       f"({len(cand.objects)} drawn); attribute agreement {objects:.2f}; "
                       f"background {'matches' if background else 'differs'}"))


# -- helpers ------------------------------------------------------------------------------------


def _bg_text(bg: BackgroundConcept) -> str:
    if bg.kind == "gradient" and bg.color2:
        return f"a {bg.direction} gradient from {bg.color} to {bg.color2}"
    return f"plain {bg.color}"


def _background_keys(bg: BackgroundConcept) -> list[str]:
    keys = [f"color:{bg.color}"] + ([f"color:{bg.color2}"] if bg.color2 else [])
    return keys + ["background:gradient" if bg.kind == "gradient" else "background:solid"]


def _clause_index(target: str, n: int) -> int | None:
    if not target.startswith("clause:"):
        return None
    try:
        k = int(target.split(":", 1)[1])
    except ValueError:
        return None
    return k if 0 <= k < n else None


def _rephrase(choices: dict[str, int], key: str, policy: str) -> None:
    """Another phrasing of ``key``'s concept: the plainest, or the next one."""
    choices[key] = 0 if policy == "plainer" else choices.get(key, 0) + 1


def _rephrase_object(choices: dict[str, int], obj: ObjectConcept) -> None:
    """Every concept of ``obj`` in its plainest words."""
    for kind in ("color", "shape", "size", "style", "x", "y"):
        _rephrase(choices, f"{kind}:{getattr(obj, kind)}", "plainer")


def _fix_attribute(obj: ObjectConcept, kv: dict[str, str], choices: dict[str, int],
                   policy: str = "plainer") -> ObjectConcept:
    """Another phrasing for a concept drawn wrong; one step further for a size / place one off."""
    kind, want, drawn = kv.get("kind"), kv.get("want"), kv.get("drawn")
    if kind not in ("shape", "color", "size", "x", "y", "style") or want is None:
        return obj
    current = getattr(obj, kind)
    if kind in _LEVELS and drawn in _LEVELS[kind] and want in _LEVELS[kind]:
        names = list(_LEVELS[kind])
        step = names.index(want) - names.index(drawn)
        if abs(step) == 1:  # drawn one step off: ask one step further the other way
            return replace(obj, **{kind: shift_level(_LEVELS[kind], current, step)})
    _rephrase(choices, f"{kind}:{current}", policy)
    return obj


def _plan_of(prompt: str, idiolect: int) -> PromptPlan:
    read = read_prompt(prompt)
    return fix_choices(PromptPlan(read.background, read.objects, read.choices, read.terse), idiolect)


def plan_to_iut(plan: PromptPlan) -> ImageUnderstandingTree:
    """Concepts into an Image Understanding Tree (positions as ``"y / x"``)."""
    items = [SceneObject(name=f"{o.color} {o.shape}", attributes=ObjectAttributes(
        color=o.color, shape=o.shape, size=o.size, position=f"{o.y} / {o.x}", texture=o.style,
        material="flat colour")) for o in plan.objects]
    bg = plan.background or BackgroundConcept("solid", "white")
    listed = ", ".join(f"a {o.size} {o.color} {o.shape}" for o in plan.objects) or "nothing"
    return ImageUnderstandingTree(
        global_description=f"A flat illustration of {listed} on {_bg_text(bg)} background.",
        global_features=GlobalFeatures(
            style="flat vector illustration", lighting="flat, even lighting",
            color_palette=f"background={bg.kind};{bg.color};{bg.color2 or ''};{bg.direction}",
            composition=f"{len(plan.objects)} simple shapes"),
        objects=items)


def iut_to_plan(iut: ImageUnderstandingTree) -> PromptPlan:
    """The concepts :func:`plan_to_iut` wrote (objects with unknown words are left out)."""
    background = None
    palette = iut.global_features.color_palette
    if palette.startswith("background="):
        kind, c1, c2, direction = (palette.split("=", 1)[1].split(";") + ["", "", "", ""])[:4]
        if c1 in COLORS:
            background = BackgroundConcept(kind if c2 in COLORS else "solid", c1,
                                           c2 if c2 in COLORS else None, direction or "vertical")
    objects = []
    for obj in iut.objects:
        a = obj.attributes
        y, _, x = a.position.partition(" / ")
        if (a.shape in SHAPE_WORDS and a.color in COLORS and a.size in SIZE_LEVELS
                and x in X_LEVELS and y in Y_LEVELS):
            objects.append(ObjectConcept(a.shape, a.color, a.size, x, y,
                                         a.texture if a.texture in STYLE_WORDS else "flat"))
    return PromptPlan(background, objects)


def oracle_plan(scene: dict) -> PromptPlan:
    """The concepts of a ground-truth scene (a ``SceneSpec`` dict), quantised as the describer
    quantises what it sees."""
    objects = [ObjectConcept(o["shape"], o["color"], nearest_level(SIZE_LEVELS, o["size"], log=True),
                             nearest_level(X_LEVELS, o["x"]), nearest_level(Y_LEVELS, o["y"]),
                             o.get("style", "flat")) for o in scene["objects"]]
    bg = scene["background"]
    background = (BackgroundConcept("gradient", bg["color"], bg["color2"], bg.get("direction", "vertical"))
                  if bg.get("kind") == "gradient" and bg.get("color2") else
                  BackgroundConcept("solid", bg["color"]))
    return PromptPlan(background, objects)
