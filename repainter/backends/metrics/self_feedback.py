"""Self-feedback (SILMM): the MLLM's yes/no questions about the reference, answered on a candidate.

The score of a candidate is the fraction of questions about the reference that it answers as the
reference demands (all questions are written so that the reference's answer is "yes").

How the questions are asked - read this before comparing numbers with SILMM's:
``MLLMBackend`` has no question-answering role, so this metric does not ask the MLLM each
question about the candidate (visual question answering). Instead:

1. the MLLM describes the reference once (``mllm.describe``: an Image Understanding Tree);
2. yes/no questions are derived from that tree **deterministically, by template**, in order:
   per object (at most ``max_objects``) "Is there a {color} {shape}?", then one question per
   attribute in ``attributes`` that the tree states ("Is the {color} {shape} at the {position}?",
   "... {size}?", "... {texture}?"); "Is the background {color}?" where the description names a
   background colour (read by the registered background reader :data:`BACKGROUND_READER`, the
   bench world's grammar; see :data:`repainter.registry.BACKGROUND_READERS`); "Are there exactly {n} objects?" (``count``);
3. for each candidate the MLLM **describes the candidate** (``mllm.describe``) and each question
   is answered by matching that description: an object matches when its colour and shape (else
   name) equal the question's, an attribute question is "yes" when some matching object states
   the same value, the background and count questions compare the background colour and the
   number of objects. Values are compared after lower-casing and dropping articles
   (``match: exact``), or ``match: contains`` accepts a candidate value containing all of the
   question's words (for free-form MLLM descriptions: "red" matches "bright red").

A direct VQA answer per question would need a new MLLM role; this proxy is exactly as good as the
MLLM's descriptions. It runs offline with the built-in ``scene-analyst``. A reference from which
no question can be derived scores NaN (recorded as no score, with the reason).

``mllm`` is a component spec: ``scene-analyst`` (default), ``{name: openai, params: {...}}``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from repainter.backends.base import Metric, MLLMBackend, Reference
from repainter.registry import BACKGROUND_READERS, METRICS, MLLM
from repainter.schemas import ImageUnderstandingTree

ATTRIBUTE_CHOICES = ("position", "size", "texture", "material")
#: The background reader (of :data:`repainter.registry.BACKGROUND_READERS`) the background
#: question is read with: the simulation bench's world grammar, which names colours in text.
BACKGROUND_READER = "world"
_ARTICLES = {"a", "an", "the"}


def _norm(text: str | None) -> str:
    words = re.findall(r"[a-z0-9]+", (text or "").lower())
    return " ".join(w for w in words if w not in _ARTICLES)


@dataclass(frozen=True)
class Question:
    """One yes/no question; the reference's answer is yes."""

    text: str
    kind: str  # "object" | "attribute" | "background" | "count"
    color: str = ""
    noun: str = ""
    attribute: str = ""
    value: str = ""


def _noun(obj) -> str:
    return _norm(obj.attributes.shape) or _norm(obj.name)


def background_color(iut: ImageUnderstandingTree) -> str | None:
    """The background colour a description names (read by :data:`BACKGROUND_READER`), or None."""
    read = BACKGROUND_READERS.get(BACKGROUND_READER)
    for text in (iut.global_features.composition, iut.global_description,
                 iut.global_features.color_palette):
        colour = read(text or "")
        if colour:
            return colour
    return None


def questions_from_iut(iut: ImageUnderstandingTree, attributes: Sequence[str] = ("position",
                       "size", "texture"), max_objects: int = 5, background: bool = True,
                       count: bool = True) -> list[Question]:
    """The template questions about a description (deterministic; see the module docstring)."""
    out: list[Question] = []
    for obj in iut.objects[:max_objects]:
        color, noun = _norm(obj.attributes.color), _noun(obj)
        if not noun:
            continue
        label = f"{color} {noun}".strip()
        article = "an" if label[:1] in "aeiou" else "a"
        out.append(Question(f"Is there {article} {label}?", "object", color, noun))
        for attr in attributes:
            value = _norm(getattr(obj.attributes, attr, ""))
            if not value:
                continue
            phrase = {"position": "in the center" if value in ("center", "middle", "center middle")
                      else f"at the {value}", "material": f"made of {value}"}.get(attr, value)
            out.append(Question(f"Is the {label} {phrase}?", "attribute", color, noun, attr, value))
    if background:
        bg = background_color(iut)
        if bg:
            out.append(Question(f"Is the background {bg}?", "background", value=_norm(bg)))
    if count:
        n = len(iut.objects)
        text = "Is there exactly 1 object?" if n == 1 else f"Are there exactly {n} objects?"
        out.append(Question(text, "count", value=str(n)))
    return out


@METRICS.register("self_feedback")
class SelfFeedbackMetric(Metric):
    """Fraction of the MLLM's yes/no questions about the reference a candidate answers yes."""

    name = "self_feedback"
    higher_is_better = True

    def __init__(
        self,
        mllm: Any = "scene-analyst",
        attributes: Sequence[str] = ("position", "size", "texture"),
        max_objects: int = 5,
        background: bool = True,
        count: bool = True,
        match: str = "exact",
    ):
        unknown = sorted(set(attributes) - set(ATTRIBUTE_CHOICES))
        if unknown:
            raise ValueError(f"self_feedback: unknown attribute(s) {unknown}; "
                             f"known: {', '.join(ATTRIBUTE_CHOICES)}")
        if match not in ("exact", "contains"):
            raise ValueError("self_feedback: match must be 'exact' or 'contains'")
        if int(max_objects) < 1:
            raise ValueError("self_feedback: max_objects must be >= 1")
        self.mllm = self._build_mllm(mllm)
        self.attributes = tuple(attributes)
        self.max_objects = int(max_objects)
        self.background = bool(background)
        self.count = bool(count)
        self.match = match

    @staticmethod
    def _build_mllm(spec: Any) -> MLLMBackend:
        if isinstance(spec, MLLMBackend):
            return spec
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, dict) or not spec.get("name"):
            raise ValueError(f"self_feedback: mllm must be a name or {{name, params}}, not {spec!r}")
        return MLLM.create(str(spec["name"]), **dict(spec.get("params") or {}))

    def identity(self) -> dict[str, Any]:
        return {"metric": self.name, "mllm": self.mllm.identity(),
                "attributes": list(self.attributes), "max_objects": self.max_objects,
                "background": self.background, "count": self.count, "match": self.match,
                "version": 1}

    # -- questions ---------------------------------------------------------------------------

    def questions(self, iut: ImageUnderstandingTree) -> list[Question]:
        return questions_from_iut(iut, self.attributes, self.max_objects, self.background,
                                  self.count)

    def prepare(self, reference: Reference) -> list[Question]:
        return self.questions(self.mllm.describe(reference.image, reference.context))

    def _same(self, want: str, have: str) -> bool:
        if not want:  # the question sets no constraint here
            return True
        have = _norm(have)
        if self.match == "exact":
            return want == have
        return set(want.split()) <= set(have.split())

    def answer(self, question: Question, iut: ImageUnderstandingTree) -> bool:
        """The answer to ``question`` that the description ``iut`` of a candidate gives."""
        if question.kind == "count":
            return str(len(iut.objects)) == question.value
        if question.kind == "background":
            return self._same(question.value, background_color(iut) or "")
        matching = [o for o in iut.objects
                    if self._same(question.noun, _noun(o))
                    and self._same(question.color, o.attributes.color)]
        if question.kind == "object":
            return bool(matching)
        return any(self._same(question.value, getattr(o.attributes, question.attribute, ""))
                   for o in matching)

    def answers(self, questions: Sequence[Question], image: Image.Image) -> list[bool]:
        """Describe ``image`` once and answer every question from that description."""
        iut = self.mllm.describe(image)
        return [self.answer(q, iut) for q in questions]

    def score(self, prepared: list[Question], candidates: Sequence[Image.Image]) -> list[float]:
        if not prepared:
            return [float("nan")] * len(candidates)
        return [sum(self.answers(prepared, c)) / len(prepared) for c in candidates]
