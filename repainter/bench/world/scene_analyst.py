"""The built-in offline "MLLM": a scene analyst that really looks at images.

It plays every MLLM role of the loop with image analysis (:mod:`repainter.bench.world.analysis`) and
the world's grammar, and never sees a dataset's ground truth - only images and prompt text.

Design: a **coarse description, a fine critique**. Like a real MLLM, its one-shot description of
a reference is approximate - objects on a 3 x 3 grid (``upper left``), basic colour names without
shade (``red`` for dark red), three sizes (small / medium / large), a gradient background reported
as its average colour, and objects smaller than ``min_object_size`` missed - while comparing two
images side by side it sees much more: "move the red circle further left", "make it darker (dark
red)", "slightly larger", "the background is a gradient from light blue to white", "a tiny green
star is missing at the top right". The loop therefore starts from a plausible but imprecise prompt
and has real work to do: each critique -> revision brings the render measurably closer.

Critique differences carry machine-readable detail for :meth:`SceneAnalyst.revise`:
``target`` is ``object:<i>`` (the i-th object clause of the prompt, counts unrolled), ``new`` or
``background``; ``change`` is ``key=value; ...`` with keys ``op`` (``set``/``add``/``remove``),
``shape``, ``color``, ``size``, ``x``, ``y``, ``style`` (values are vocabulary words), or for the
background ``kind``, ``color``, ``color2``, ``direction``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

from repainter.backends.base import MLLMBackend
from repainter.bench.world.analysis import Analysis, DetectedObject, analyse
from repainter.bench.world.grammar import (
    BackgroundClause,
    ObjectClause,
    ParsedPrompt,
    format_prompt,
    object_phrase,
    parse_prompt,
)
from repainter.bench.world.vocabulary import (
    COLORS,
    SIZES,
    X_WORDS,
    Y_WORDS,
    basic_color,
    delta_e,
    nearest_color_name,
    nearest_size_word,
    nearest_x_word,
    nearest_y_word,
    shade_of,
    shift_word,
    with_shade,
)
from repainter.schemas import (
    MAX_OBJECTS,
    Critique,
    Difference,
    GlobalFeatures,
    ImageUnderstandingTree,
    Judgement,
    ObjectAttributes,
    Relationship,
    SceneObject,
)

#: Most objects a revised prompt may hold.
MAX_PROMPT_OBJECTS = 6


def _coarse_position(obj: DetectedObject) -> str:
    xw, yw = nearest_x_word(obj.x, coarse=True), nearest_y_word(obj.y, coarse=True)
    if xw == "center" and yw == "middle":
        return "center"
    return f"{yw} {xw}"


def _pairs(cost: np.ndarray, limit: float) -> list[tuple[int, int]]:
    """Hungarian matching, keeping only pairs cheaper than ``limit``."""
    if cost.size == 0:
        return []
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] < limit]


def match_objects(a: Sequence[DetectedObject], b: Sequence[DetectedObject],
                  limit: float = 0.9) -> list[tuple[int, int]]:
    """Pairs (i, j) of the same object seen in two images (position, colour, shape, size)."""
    cost = np.array([[
        np.hypot(p.x - q.x, p.y - q.y) + delta_e(p.rgb, q.rgb) / 100
        + (0.0 if p.shape == q.shape else 0.25) + 0.3 * abs(np.log(p.size / q.size))
        for q in b] for p in a]).reshape(len(a), len(b))
    return _pairs(cost, limit)


def _clause_cost(obj: DetectedObject, clause: ObjectClause) -> float:
    cost = 0.0
    if clause.has_position:
        cost += np.hypot(obj.x - (clause.x if clause.x is not None else 0.5),
                         obj.y - (clause.y if clause.y is not None else 0.5))
    else:
        cost += 0.15
    cost += (0.0 if clause.shape == obj.shape else 0.3) if clause.shape else 0.1
    cost += delta_e(obj.rgb, COLORS[clause.color]) / 100 if clause.color else 0.1
    if clause.size is not None:
        cost += 0.2 * abs(np.log(obj.size / clause.size))
    return float(cost)


def _kv(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _change(**items: str) -> str:
    return "; ".join(f"{k}={v}" for k, v in items.items())


def _name(obj: DetectedObject) -> str:
    return f"{obj.color_name} {obj.shape}"


class SceneAnalyst(MLLMBackend):
    """Offline MLLM of the built-in world: coarse descriptions, fine side-by-side critiques."""

    kind = "scene-analyst"

    def __init__(self, min_object_size: float = 0.05, max_differences: int = 10):
        self.min_object_size = float(min_object_size)
        self.max_differences = int(max_differences)
        self._calls: dict[str, int] = {}

    def identity(self) -> dict[str, Any]:
        return {"backend": self.kind, "min_object_size": self.min_object_size,
                "max_differences": self.max_differences}

    def _count(self, role: str) -> None:
        self._calls[role] = self._calls.get(role, 0) + 1

    def usage(self) -> dict[str, float]:
        return {"calls": float(sum(self._calls.values())),
                **{f"calls_{k}": float(v) for k, v in sorted(self._calls.items())}}

    # -- describe -----------------------------------------------------------------------------

    def describe(self, image: Image.Image, context: Sequence[dict[str, Any]] = ()
                 ) -> ImageUnderstandingTree:
        self._count("describe")
        seen = analyse(image)
        objects = [o for o in seen.objects if o.size >= self.min_object_size][:MAX_OBJECTS]
        bg_name = nearest_color_name(seen.background.mean_rgb)
        items = []
        for o in objects:
            items.append(SceneObject(
                name=f"{o.basic_color} {o.shape}", type="object",
                attributes=ObjectAttributes(
                    color=o.basic_color, shape=o.shape, size=nearest_size_word(o.size, coarse=True),
                    position=_coarse_position(o), texture=o.style, material="flat colour",
                ),
            ))
        listed = ", ".join(f"a {i.attributes.size} {i.name}" for i in items) or "nothing"
        relationships = []
        for a, b, oa, ob in zip(items, items[1:], objects, objects[1:]):
            dx, dy = ob.x - oa.x, ob.y - oa.y
            if abs(dx) >= abs(dy):
                relation = "left of" if dx > 0 else "right of"
            else:
                relation = "above" if dy > 0 else "below"
            relationships.append(Relationship(subject=a.name, relation=relation, object=b.name))
        styles = sorted({o.style for o in objects} - {"flat"})
        return ImageUnderstandingTree(
            global_description=f"A flat illustration of {listed} on a {bg_name} background.",
            global_features=GlobalFeatures(
                style="flat vector illustration" + (f", {' and '.join(styles)} shapes"
                                                     if styles else ""),
                lighting="flat, even lighting, no shadows",
                color_palette="; ".join([f"{bg_name} background",
                                         ", ".join(dict.fromkeys(o.basic_color for o in objects))]),
                composition=f"{len(objects)} simple shapes on a {bg_name} background",
            ),
            objects=items,
            relationships=relationships,
        )

    # -- prompts ------------------------------------------------------------------------------

    def refine_dialogue(self, caption: str, dialog: Sequence[tuple[str, str]]) -> str:
        """The world grammar's merge of caption and answers (:func:`repainter.bench.world.dar.refine_query`)."""
        from repainter.bench.world.dar import refine_query

        self._count("refine_dialogue")
        return refine_query(caption, [answer for _, answer in dialog])

    def rewrite_prompt(self, draft: str, iut: ImageUnderstandingTree) -> str:
        """Comma-separated prompt from the IUT's fields (the template draft is not needed)."""
        self._count("rewrite_prompt")
        background = None
        for text in (iut.global_features.composition, iut.global_description,
                     iut.global_features.color_palette):
            bg = parse_prompt(text).background
            if bg is not None and bg.color is not None:
                background = bg
                break
        clauses, extra = [], []
        for obj in iut.objects:
            a = obj.attributes
            style = a.texture if a.texture in ("outlined", "textured") else ""
            text = " ".join(w for w in (
                "a", a.size, a.color, style, a.shape or obj.name,
                f"at the {a.position}" if a.position else "") if w)
            parsed = parse_prompt(text).objects
            if parsed:
                clauses.append(parsed[0])
            else:  # not a shape this world knows: keep the words for other T2I models
                extra.append(" ".join(w for w in (a.color, obj.name, a.position) if w))
        prompt = format_prompt(ParsedPrompt(background=background, objects=clauses))
        return ", ".join([prompt, *extra])

    def write_variants(self, prompt: str, n: int, iut: ImageUnderstandingTree,
                       critique: Critique | None, seed: int) -> list[str]:
        """``prompt`` itself, then small edits of it: a neighbouring position, size or shade."""
        self._count("write_variants")
        rng = np.random.default_rng([abs(int(seed)) & 0xFFFFFFFF, 0xA11A])
        parsed = parse_prompt(prompt)
        objects = parsed.expanded()
        out = [prompt]
        for _ in range(max(0, n - 1)):
            variant = None
            for _attempt in range(20):
                if not objects:
                    break
                edited = [replace(o) for o in objects]
                for _edit in range(int(rng.integers(1, 3))):
                    self._random_edit(edited[int(rng.integers(len(edited)))], rng)
                text = format_prompt(ParsedPrompt(parsed.background, parsed.style, edited))
                if text not in out:
                    variant = text
                    break
            out.append(variant or prompt)
        return out[:n]

    @staticmethod
    def _random_edit(clause: ObjectClause, rng: np.random.Generator) -> None:
        kind = ("x", "y", "size", "shade")[int(rng.integers(4))]
        step = int(rng.choice([-1, 1]))
        if kind in ("x", "y"):
            if clause.x is None:
                clause.x, clause.y = 0.5, 0.5
            if kind == "x":
                clause.x = X_WORDS[shift_word(X_WORDS, nearest_x_word(clause.x), step)]
            else:
                clause.y = Y_WORDS[shift_word(Y_WORDS, nearest_y_word(clause.y), step)]
        elif kind == "size":
            word = nearest_size_word(clause.size if clause.size is not None else SIZES["medium"])
            clause.size = SIZES[shift_word(SIZES, word, step)]
        elif clause.color:
            shades = [s for s in ("light", "", "dark") if s != shade_of(clause.color)]
            clause.color = with_shade(clause.color, shades[int(rng.integers(len(shades)))])

    # -- critique / revise ---------------------------------------------------------------------

    def critique(self, reference: Image.Image, candidate: Image.Image, prompt: str) -> Critique:
        self._count("critique")
        ref, cand = analyse(reference), analyse(candidate)
        clauses = parse_prompt(prompt).expanded()
        diffs = [(1.0, d) for d in self._background_differences(ref, cand)]
        # which prompt clause produced each candidate object
        cost = np.array([[_clause_cost(o, c) for c in clauses] for o in cand.objects]
                        ).reshape(len(cand.objects), len(clauses))
        clause_of = dict(_pairs(cost, 1.0))
        pairs = match_objects(ref.objects, cand.objects)
        matched_ref = {i for i, _ in pairs}
        matched_cand = {j for _, j in pairs}
        for i, j in sorted(pairs):
            r, c = ref.objects[i], cand.objects[j]
            if j in clause_of:
                diffs += self._object_differences(r, c, clause_of[j], clauses[clause_of[j]])
        # reference objects nobody drew: reuse a clause that drew nothing, else add one
        missing = [i for i in range(len(ref.objects)) if i not in matched_ref]
        idle = [k for k in range(len(clauses)) if k not in clause_of.values()]
        reuse = {}
        if missing and idle:
            cost = np.array([[_clause_cost(ref.objects[i], clauses[k]) for k in idle]
                             for i in missing])
            reuse = {missing[a]: idle[b] for a, b in _pairs(cost, 10.0)}
        n_objects = len(clauses)
        for i in missing:
            r = ref.objects[i]
            attrs = dict(shape=r.shape, color=r.color_name, size=nearest_size_word(r.size),
                         x=nearest_x_word(r.x), y=nearest_y_word(r.y), style=r.style)
            where = f"{nearest_y_word(r.y)} {nearest_x_word(r.x)}"
            if i in reuse:
                diffs.append((0.6 + 2 * r.size, Difference(
                    aspect="content", target=f"object:{reuse[i]}",
                    change=_change(op="set", **attrs),
                    description=f"the prompt's {object_phrase(clauses[reuse[i]])} does not show; "
                                f"the reference has a {attrs['size']} {_name(r)} at the {where}")))
            elif n_objects < MAX_PROMPT_OBJECTS:
                n_objects += 1
                diffs.append((0.6 + 2 * r.size, Difference(
                    aspect="content", target="new", change=_change(op="add", **attrs),
                    description=f"missing: a {attrs['size']} {_name(r)} at the {where}")))
        for j, c in enumerate(cand.objects):
            if j not in matched_cand and j in clause_of:
                diffs.append((0.6 + 2 * c.size, Difference(
                    aspect="content", target=f"object:{clause_of[j]}", change="op=remove",
                    description=f"extra: the {_name(c)} is not in the reference")))
        # the most salient first, as a model would list them; at most max_differences
        diffs.sort(key=lambda sd: -sd[0])
        diffs = [d for _, d in diffs[: self.max_differences]]
        summary = (f"{len(diffs)} difference(s): " + "; ".join(d.description for d in diffs[:4])
                   if diffs else "the candidate matches the reference closely")
        return Critique(differences=diffs, summary=summary)

    @staticmethod
    def _background_differences(ref: Analysis, cand: Analysis) -> list[Difference]:
        rb, cb = ref.background, cand.background
        same_kind = rb.kind == cb.kind and (rb.kind == "solid" or rb.direction == cb.direction)
        close = delta_e(rb.rgb, cb.rgb) < 6 and (
            rb.rgb2 is None or cb.rgb2 is None or delta_e(rb.rgb2, cb.rgb2) < 6)
        if same_kind and close:
            return []
        if rb.kind == "gradient":
            c1, c2 = rb.color_name, rb.color2_name
            return [Difference(
                aspect="background", target="background",
                change=_change(kind="gradient", color=c1, color2=c2, direction=rb.direction),
                description=f"the background should be a {rb.direction} gradient "
                            f"from {c1} to {c2}")]
        name = rb.color_name
        was = cb.color_name if cb.kind == "solid" else "a gradient"
        return [Difference(aspect="background", target="background",
                           change=_change(kind="solid", color=name),
                           description=f"the background should be plain {name}, not {was}")]

    @staticmethod
    def _object_differences(r: DetectedObject, c: DetectedObject, k: int,
                            clause: ObjectClause) -> list[tuple[float, Difference]]:
        target, name, out = f"object:{k}", _name(c), []
        if r.shape != c.shape:
            out.append((0.5, Difference(aspect="content", target=target,
                                        change=_change(shape=r.shape),
                                        description=f"the {name} should be a {r.shape}")))
        ref_colour = r.color_name
        if delta_e(r.rgb, c.rgb) > 10 and ref_colour != clause.color:
            if basic_color(ref_colour) == basic_color(c.color_name):
                darker = delta_e(r.rgb, (0, 0, 0)) < delta_e(c.rgb, (0, 0, 0))
                how = "darker" if darker else "lighter"
                text = f"the {name} should be {how}: {ref_colour}"
            else:
                text = f"the {name} should be {ref_colour}, not {c.color_name}"
            out.append((delta_e(r.rgb, c.rgb) / 60, Difference(
                aspect="color", target=target, change=_change(color=ref_colour), description=text)))
        moves, words = {}, []
        for axis, _table, nearest, (neg, pos) in (
                ("x", X_WORDS, nearest_x_word, ("further left", "further right")),
                ("y", Y_WORDS, nearest_y_word, ("higher", "lower"))):
            delta = getattr(r, axis) - getattr(c, axis)
            said = getattr(clause, axis)
            base = said if said is not None else getattr(c, axis)
            word = nearest(base + delta)
            if abs(delta) > 0.04 and (said is None or word != nearest(said)):
                moves[axis] = word
                words.append(f"{pos if delta > 0 else neg} ({word})")
        if moves:
            if not clause.has_position:  # a position needs both axes
                moves.setdefault("x", nearest_x_word(r.x))
                moves.setdefault("y", nearest_y_word(r.y))
            out.append((3 * float(np.hypot(r.x - c.x, r.y - c.y)), Difference(
                aspect="composition", target=target, change=_change(**moves),
                description=f"move the {name} " + " and ".join(words))))
        ratio = r.size / c.size
        if abs(np.log(ratio)) > 0.1:
            base = clause.size if clause.size is not None else c.size
            word = nearest_size_word(base * ratio)
            if clause.size is None or word != nearest_size_word(clause.size):
                how = "larger" if ratio > 1 else "smaller"
                if abs(np.log(ratio)) < 0.3:
                    how = f"slightly {how}"
                out.append((float(abs(np.log(ratio))), Difference(
                    aspect="composition", target=target, change=_change(size=word),
                    description=f"the {name} should be {how} ({word})")))
        if r.style != c.style:
            out.append((0.3, Difference(aspect="style", target=target,
                                        change=_change(style=r.style),
                                        description=f"the {name} should be {r.style}")))
        return out

    def revise(self, prompt: str, critique: Critique, iut: ImageUnderstandingTree) -> str:
        """Apply the critique's machine-readable changes to the prompt's clauses."""
        self._count("revise")
        parsed = parse_prompt(prompt)
        objects = parsed.expanded()
        background = parsed.background
        removed: set[int] = set()
        for diff in critique.differences:
            kv = _kv(diff.change)
            if diff.target == "background":
                if kv.get("color") in COLORS:
                    gradient = kv.get("kind") == "gradient" and kv.get("color2") in COLORS
                    background = BackgroundClause(
                        "gradient" if gradient else "solid", kv["color"],
                        kv.get("color2") if gradient else None,
                        kv.get("direction", "vertical") if gradient else "vertical")
                continue
            if diff.target == "new" and kv.get("op") == "add":
                if len(objects) < MAX_PROMPT_OBJECTS:
                    objects.append(self._apply(ObjectClause(), kv))
                continue
            if diff.target.startswith("object:"):
                try:
                    k = int(diff.target.split(":", 1)[1])
                except ValueError:
                    continue
                if not 0 <= k < len(objects):
                    continue
                if kv.get("op") == "remove":
                    removed.add(k)
                else:
                    objects[k] = self._apply(objects[k], kv)
        kept = [o for k, o in enumerate(objects) if k not in removed]
        return format_prompt(ParsedPrompt(background, parsed.style, kept))

    @staticmethod
    def _apply(clause: ObjectClause, kv: dict[str, str]) -> ObjectClause:
        clause = replace(clause)
        if kv.get("shape") in ("circle", "ellipse", "square", "diamond", "triangle", "star"):
            clause.shape = kv["shape"]
        if kv.get("color") in COLORS:
            clause.color = kv["color"]
        if kv.get("size") in SIZES:
            clause.size = SIZES[kv["size"]]
        if kv.get("x") in X_WORDS:
            clause.x = X_WORDS[kv["x"]]
            clause.y = 0.5 if clause.y is None else clause.y
        if kv.get("y") in Y_WORDS:
            clause.y = Y_WORDS[kv["y"]]
            clause.x = 0.5 if clause.x is None else clause.x
        if kv.get("style") in ("flat", "outlined", "textured"):
            clause.style = kv["style"]
        return clause

    # -- judge --------------------------------------------------------------------------------

    def judge(self, reference: Image.Image, candidate: Image.Image) -> Judgement:
        self._count("judge")
        ref, cand = analyse(reference), analyse(candidate)
        pairs = match_objects(ref.objects, cand.objects)
        quality = []
        style_ok = []
        for i, j in pairs:
            r, c = ref.objects[i], cand.objects[j]
            quality.append(0.4 * (r.shape == c.shape) + 0.3 * (r.basic_color == c.basic_color)
                           + 0.3 * (np.hypot(r.x - c.x, r.y - c.y) < 0.12))
            style_ok.append(float(r.style == c.style))
        n = max(len(ref.objects), len(cand.objects), 1)
        objects_score = sum(quality) / n
        bg_sim = max(0.0, 1 - delta_e(ref.background.mean_rgb, cand.background.mean_rgb) / 50)
        colour_sims = [max(0.0, 1 - delta_e(ref.objects[i].rgb, cand.objects[j].rgb) / 50)
                       for i, j in pairs]
        colour_sim = (sum(colour_sims) / n) if ref.objects or cand.objects else 1.0
        style_sim = (sum(style_ok) / n) if ref.objects or cand.objects else 1.0
        semantic = 0.85 * objects_score + 0.15 * bg_sim
        aesthetic = (bg_sim + colour_sim + style_sim) / 3
        return Judgement(
            semantic=int(1 + round(4 * semantic)), aesthetic=int(1 + round(4 * aesthetic)),
            rationale=(f"{len(pairs)} of {len(ref.objects)} reference objects found "
                       f"({len(cand.objects)} drawn); object agreement {objects_score:.2f}, "
                       f"background similarity {bg_sim:.2f}, colour {colour_sim:.2f}, "
                       f"style {style_sim:.2f}"),
        )
