"""Dialogues for diffusion-augmented retrieval: built-in ones from world scenes, external ones
from a ChatIR / VisDial style JSONL manifest, and the offline refinement of a dialogue into one
query.

A manifest row::

    {"id": "d1", "target": "single-00", "caption": "...",
     "dialog": [{"question": "...", "answer": "..."}, ...]}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_COUNT_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven",
                8: "eight", 9: "nine"}
_ORDINALS = ("largest", "second largest", "third largest", "fourth largest", "fifth largest",
             "sixth largest")
MIN_TURNS, MAX_TURNS = 4, 6


class DialogueError(ValueError):
    """A malformed dialogue or manifest row."""


@dataclass
class Turn:
    question: str
    answer: str


@dataclass
class Dialogue:
    """One DAR case: a caption (turn 0) and question/answer turns about ``target``."""

    id: str
    target: str
    caption: str
    dialog: list[Turn] = field(default_factory=list)

    @property
    def n_turns(self) -> int:
        """Number of rounds including the caption (turn 0)."""
        return 1 + len(self.dialog)

    def answers(self, turn: int) -> list[str]:
        """The answers given before ``turn`` (turn 0 = the caption alone)."""
        return [t.answer for t in self.dialog[:turn]]

    def exchanges(self, turn: int) -> list[tuple[str, str]]:
        """The (question, answer) pairs before ``turn``."""
        return [(t.question, t.answer) for t in self.dialog[:turn]]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "target": self.target, "caption": self.caption,
                "dialog": [asdict(t) for t in self.dialog]}


# -- built-in dialogues ----------------------------------------------------------------------


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
    from repainter.world.grammar import object_phrase
    from repainter.world.scene import SceneSpec

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
    """One built-in dialogue per item (default: the world dataset's scenes)."""
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


# -- manifest ----------------------------------------------------------------------------------


def parse_dialogue(row: Any, where: str = "row") -> Dialogue:
    """One manifest row -> :class:`Dialogue` (raises :class:`DialogueError`)."""
    if not isinstance(row, dict):
        raise DialogueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [k for k in ("id", "target", "caption", "dialog") if k not in row]
    if missing:
        raise DialogueError(f"{where}: missing field(s) {missing}")
    for key in ("id", "target", "caption"):
        if not isinstance(row[key], str) or (key != "caption" and not row[key].strip()):
            raise DialogueError(f"{where}: {key!r} must be a non-empty string")
    if not isinstance(row["dialog"], list):
        raise DialogueError(f"{where}: 'dialog' must be a list of {{question, answer}} objects")
    turns = []
    for k, turn in enumerate(row["dialog"]):
        if (not isinstance(turn, dict) or not isinstance(turn.get("question"), str)
                or not isinstance(turn.get("answer"), str)):
            raise DialogueError(
                f"{where}: dialog[{k}] must be an object with string 'question' and 'answer'")
        turns.append(Turn(turn["question"], turn["answer"]))
    return Dialogue(id=row["id"], target=row["target"], caption=row["caption"], dialog=turns)


def _read_manifest(path: Path) -> str:
    from repainter.images import MAX_MANIFEST_BYTES, read_bytes_limited

    try:
        return read_bytes_limited(path, MAX_MANIFEST_BYTES).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DialogueError(f"cannot read manifest {path}: {exc}") from exc


def load_dialogues(path: str | Path, gallery_ids: Sequence[str] | None = None) -> list[Dialogue]:
    """Read a JSONL manifest of dialogues; ``gallery_ids`` checks that every target exists."""
    path = Path(path)
    if not path.is_file():
        raise DialogueError(f"manifest not found: {path}")
    known = set(gallery_ids) if gallery_ids is not None else None
    out: list[Dialogue] = []
    seen: set[str] = set()
    for lineno, line in enumerate(_read_manifest(path).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DialogueError(f"{where}: invalid JSON ({exc.msg})") from exc
        dialogue = parse_dialogue(row, where)
        if dialogue.id in seen:
            raise DialogueError(f"{where}: duplicate id {dialogue.id!r}")
        seen.add(dialogue.id)
        if known is not None and dialogue.target not in known:
            raise DialogueError(f"{where}: unknown target {dialogue.target!r} (not in gallery)")
        out.append(dialogue)
    if not out:
        raise DialogueError(f"{path}: no dialogues")
    return out


# -- query refinement ------------------------------------------------------------------------


def concat_query(caption: str, answers: Sequence[str]) -> str:
    """The plain reformulation: caption and answers joined into one comma-separated prompt."""
    parts = [p.strip().rstrip(".") for p in [caption, *answers] if p and p.strip()]
    return ", ".join(parts)


def refine_query(caption: str, answers: Sequence[str]) -> str:
    """Deterministic offline "LLM" reformulation of a dialogue into one T2I prompt.

    The caption and answers are parsed with the world grammar and merged: the latest
    background said wins, every described object is kept once, and objects counted in the
    caption but not described yet stay as a generic "N shapes" clause. Text the grammar does
    not understand at all falls back to :func:`concat_query`.
    """
    from repainter.world.grammar import ObjectClause, ParsedPrompt, format_prompt, parse_prompt

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
