"""Diffusion-augmented retrieval on the procedural world: the built-in dialogues written from
world scenes, the offline refinement of a dialogue into one query (the ``scene-analyst``'s
``refine_dialogue``), and the weight-free text scorers.

Registered by :func:`repainter.bench.register` into the core's DAR extension points:
``world`` dialogues (:data:`repainter.registry.DAR_DIALOGUES`) and the ``concepts`` / ``scene``
text scorers (:data:`repainter.registry.DAR_TEXT_SCORERS`):

* ``concepts`` (the default of ``DARSpec()``): like a contrastive text tower, it sees which
  colours and shapes a query mentions and an image shows (Jaccard overlap), but neither which
  colour goes with which shape nor where: CLIP's known weakness at attribute binding and
  spatial relations.
* ``scene``: the ``retrieval`` backend's exact matcher (:mod:`repainter.bench.world.retrieval`),
  which reads the world's own grammar: bound attributes, positions, sizes. Close to an oracle;
  a text-side upper bound rather than a model of a text encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from repainter.bench.world.grammar import (
    ObjectClause,
    ParsedPrompt,
    format_prompt,
    object_phrase,
    parse_prompt,
)
from repainter.bench.world.retrieval import SCENE_SHAPES, scene_features, scene_scores
from repainter.bench.world.scene import SceneSpec
from repainter.bench.world.vocabulary import basic_color, nearest_color_name
from repainter.dar.dialogues import Dialogue, DialogueError, Turn, concat_query
from repainter.references import Reference

_COUNT_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven",
                8: "eight", 9: "nine"}
_ORDINALS = ("largest", "second largest", "third largest", "fourth largest", "fifth largest",
             "sixth largest")
MIN_TURNS, MAX_TURNS = 4, 6


# -- built-in dialogues from world scenes ----------------------------------------------------------------------


def scene_dialogue(scene: dict[str, Any], target: str, *, seed: int = 0,
                   dialogue_id: str | None = None) -> Dialogue:
    """A deterministic dialogue about a world scene (the ``ground_truth`` dict of a reference).

    Turn 0 is vague: the number of objects only (a caption that also named the background
    colour already puts every target of the 32-scene world in the top 10 with the text
    scorer, leaving nothing for later turns to improve). Every further turn reveals one
    object's shape, colour, size, position (and style), largest object first; when the scene
    has fewer objects than turns, the background (gradient or solid) and a closing
    "anything else?" turn fill up. 4-6 rounds in all (caption included); ``seed`` picks the
    length and the question wording.
    """
    spec = SceneSpec.model_validate(scene)
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *[ord(c) for c in target]])
    rng = np.random.default_rng(ss)
    objs = sorted(spec.objects, key=lambda o: (-o.size, o.y, o.x))
    n = len(objs)
    bg = spec.background
    noun = "shape" if n == 1 else "shapes"
    caption = f"a picture with {_COUNT_WORDS.get(n, str(n))} {noun}" if n else "an empty picture"
    low = min(MAX_TURNS, max(MIN_TURNS, 1 + n))
    rounds = int(rng.integers(low, MAX_TURNS + 1))
    turns: list[Turn] = []
    for i, obj in enumerate(objs[: rounds - 1]):
        ordinal = _ORDINALS[i] if i < len(_ORDINALS) else f"number {i + 1} by size"
        if n == 1:
            question = ["what is the shape?", "what does the object look like?"][
                int(rng.integers(2))]
        else:
            question = [f"what is the {ordinal} object?", f"describe the {ordinal} shape"][
                int(rng.integers(2))]
        turns.append(Turn(question, object_phrase(obj)))
    if len(turns) < rounds - 1:
        if bg.kind == "gradient" and bg.color2:
            answer = f"yes, a {bg.direction} gradient background from {bg.color} to {bg.color2}"
        else:
            answer = f"no, a solid {bg.color} background"
        turns.append(Turn("is the background a gradient?", answer))
    while len(turns) < rounds - 1:
        turns.append(Turn("is there anything else in the picture?", "no, nothing else"))
    return Dialogue(id=dialogue_id or target, target=target, caption=caption, dialog=turns)


def world_dialogues(items: Sequence[Any] | None = None, *, seed: int = 0,
                    limit: int | None = None) -> list[Dialogue]:
    """One built-in dialogue per item (default: the world dataset's scenes); DAR's built-in
    dialogues for the ``world`` dataset (:data:`repainter.registry.DAR_DIALOGUES`)."""
    if items is None:
        from repainter.datasets import load_dataset

        items = load_dataset("world").items()
    items = list(items)[:limit] if limit is not None else list(items)
    out = []
    for item in items:
        ref = item.load()
        if not ref.ground_truth or "background" not in ref.ground_truth:
            raise DialogueError(f"item {item.id!r} has no scene ground truth")
        out.append(scene_dialogue(ref.ground_truth, str(item.id), seed=seed))
    return out


# -- query refinement ---------------------------------------------------------------------------


def refine_query(caption: str, answers: Sequence[str]) -> str:
    """Deterministic offline "LLM" reformulation of a dialogue into one T2I prompt.

    The caption and answers are parsed with the world grammar and merged: the latest
    background said wins, every described object is kept once, and objects counted in the
    caption but not described yet stay as a generic "N shapes" clause. Text the grammar does
    not understand at all falls back to :func:`concat_query`.
    """
    cap = parse_prompt(caption)
    background = cap.background
    counted = sum(c.count for c in cap.objects if c.shape is None and c.color is None)
    described = [c for c in cap.objects if not (c.shape is None and c.color is None)]
    style = cap.style
    for answer in answers:
        parsed = parse_prompt(answer)
        if parsed.background is not None and parsed.background.color:
            background = parsed.background
        described.extend(c for c in parsed.objects
                         if c.shape is not None or c.color is not None)
        style = parsed.style if parsed.style and parsed.style != "flat" else style
    if background is None and not described and not counted:
        return concat_query(caption, answers)
    objects = list(described)
    rest = counted - sum(c.count for c in described)
    if rest > 0:
        objects.append(ObjectClause(count=int(rest)))
    return format_prompt(ParsedPrompt(background=background, style=style, objects=objects))


# -- text scorers -------------------------------------------------------------------------------


class SceneTextScorer:
    """The retrieval backend's ``scene`` matcher: bound attributes and positions (world only)."""

    name = "scene"

    def fit(self, ids: list[str], references: list[Reference]) -> None:
        self.features = scene_features(ids, references)
        self.features["ids"] = np.array(ids, dtype=str)

    def scores(self, query: str) -> np.ndarray:
        return np.asarray(scene_scores(query, self.features), dtype=np.float64)

    def identity(self) -> dict[str, Any]:
        return {"text_scorer": self.name, "version": 1}


class ConceptTextScorer(SceneTextScorer):
    """Jaccard overlap of the colours and shapes mentioned and shown, unbound (world only)."""

    name = "concepts"

    def fit(self, ids: list[str], references: list[Reference]) -> None:
        super().fit(ids, references)
        self.concepts = image_concepts(self.features)

    def scores(self, query: str) -> np.ndarray:
        wanted = query_concepts(query)
        return np.array([_jaccard(wanted, have) for have in self.concepts], dtype=np.float64)


def query_concepts(query: str) -> set[str]:
    """The colours and shapes a query mentions, unbound (see :class:`ConceptTextScorer`)."""
    parsed = parse_prompt(query)
    found = set()
    if parsed.background is not None:
        for colour in (parsed.background.color, getattr(parsed.background, "color2", None)):
            if colour:
                found.add("color:" + basic_color(colour))
    for clause in parsed.objects:
        if clause.color:
            found.add("color:" + basic_color(clause.color))
        if clause.shape:
            found.add("shape:" + clause.shape)
    return found


def image_concepts(features: dict[str, np.ndarray]) -> list[set[str]]:
    """Per image of a ``scene_features`` table: the basic colours and shapes it shows."""
    found: list[set[str]] = [set() for _ in range(len(features["background"]))]
    for i, row in enumerate(features["background"]):
        found[i].add("color:" + basic_color(nearest_color_name(row[1:4])))
    for row in features["objects"]:
        item, shape = int(row[0]), int(row[1])
        found[item].add("color:" + basic_color(nearest_color_name(row[2:5])))
        if shape >= 0:
            found[item].add("shape:" + SCENE_SHAPES[shape])
    return found


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0
