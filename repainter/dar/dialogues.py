"""Dialogues for diffusion-augmented retrieval: external ones from a ChatIR / VisDial style
JSONL manifest, and the plain refinement of a dialogue into one query (caption and answers
joined). Dialogues built from a dataset's ground truth come from the writer registered for that
dataset in :data:`repainter.registry.DAR_DIALOGUES` (the bench's ``world``:
:mod:`repainter.bench.world.dar`).

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
