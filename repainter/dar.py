"""Diffusion-augmented interactive retrieval (DAR).

A case is a dialogue about a target image of a gallery: an initial (vague) caption and
question/answer turns. After every turn the dialogue so far is refined into one query; a
T2I model renders ``images_per_turn`` images from it, and the gallery is ranked by a fusion
of a text score (query text vs. each gallery image: the weight-free ``scene`` scorer of the
retrieval backend) and an image score (generated image(s) vs. each gallery image: the
weight-free ``colour_layout`` embedding of the identification metric)::

    fused = alpha * z(text) + (1 - alpha) * z(image)

with z-normalisation over the gallery, per turn. The rank of the target is reported per turn
with generated images (``fused``) and without them (``text`` only).

Dialogues come from the built-in world's scene specs (:func:`world_dialogues`, offline and
deterministic) or from a ChatIR / VisDial style JSONL manifest (:func:`load_dialogues`)::

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

from repainter.backends.base import Reference, T2IBackend

HITS_AT = (1, 5, 10)
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


def load_dialogues(path: str | Path, gallery_ids: Sequence[str] | None = None) -> list[Dialogue]:
    """Read a JSONL manifest of dialogues; ``gallery_ids`` checks that every target exists."""
    path = Path(path)
    if not path.is_file():
        raise DialogueError(f"manifest not found: {path}")
    known = set(gallery_ids) if gallery_ids is not None else None
    out: list[Dialogue] = []
    seen: set[str] = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
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


def _mllm_query(mllm: Any, draft: str) -> str:
    from repainter.schemas import ImageUnderstandingTree

    try:
        iut = ImageUnderstandingTree(global_description=draft)
    except Exception:  # noqa: BLE001 - schema differences: fall back to the default tree
        iut = ImageUnderstandingTree.model_construct()
    text = str(mllm.rewrite_prompt(draft, iut) or "").strip()
    return text or draft


# -- scoring ---------------------------------------------------------------------------------


def zscore(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    std = values.std()
    if not np.isfinite(std) or std < 1e-12:
        return np.zeros_like(values)
    return (values - values.mean()) / std


def target_rank(scores: np.ndarray, index: int) -> int:
    """1-based rank of ``scores[index]`` (ties count against the target)."""
    scores = np.asarray(scores, dtype=np.float64)
    others = np.delete(scores, index)
    return int(1 + (others >= scores[index]).sum())


@dataclass
class GalleryIndex:
    """Features of a gallery for DAR: scene analysis (text scorer) and colour layout."""

    ids: list[str]
    scene: dict[str, np.ndarray]
    layout: np.ndarray
    embedding: Any
    _concepts: list[set[str]] | None = None

    @classmethod
    def build(cls, gallery_items: Sequence[Any], embedding: Any = None) -> GalleryIndex:
        from repainter.backends.metrics.identification import ColourLayoutEmbedding
        from repainter.backends.t2i.retrieval import scene_features

        embedding = embedding or ColourLayoutEmbedding()
        ids, refs = [], []
        for item in gallery_items:
            ref = item if isinstance(item, Reference) else item.load()
            ids.append(str(item.id))
            refs.append(ref)
        if not refs:
            raise ValueError("DAR gallery is empty")
        if len(set(ids)) != len(ids):
            raise ValueError("DAR gallery has duplicate ids")
        scene = scene_features(ids, refs)
        scene["ids"] = np.array(ids, dtype=str)
        layout = embedding.embed([r.image for r in refs])
        return cls(ids=ids, scene=scene, layout=layout, embedding=embedding)

    def text_scores(self, query: str, scorer: str = "scene") -> np.ndarray:
        """Text-to-image scores of ``query`` against the gallery.

        ``scene`` matches objects with their bound attributes and positions (the world's exact
        grammar: close to an oracle). ``concepts`` behaves like a contrastive text tower: it sees
        which colours and shapes are mentioned and present, but neither which colour goes with
        which shape nor where (CLIP's known weakness at attribute binding and spatial relations).
        """
        if scorer == "concepts":
            wanted = query_concepts(query)
            return np.array([_jaccard(wanted, have) for have in self.concepts], dtype=np.float64)
        from repainter.backends.t2i.retrieval import scene_scores

        return np.asarray(scene_scores(query, self.scene), dtype=np.float64)

    @property
    def concepts(self) -> list[set[str]]:
        """Per gallery image: the basic colours (objects and background) and shapes it shows."""
        if self._concepts is None:
            from repainter.backends.t2i.retrieval import _SHAPES
            from repainter.world.vocabulary import basic_color, nearest_color_name

            found: list[set[str]] = [set() for _ in self.ids]
            for i, row in enumerate(self.scene["background"]):
                found[i].add("color:" + basic_color(nearest_color_name(row[1:4])))
            for row in self.scene["objects"]:
                item, shape = int(row[0]), int(row[1])
                found[item].add("color:" + basic_color(nearest_color_name(row[2:5])))
                if shape >= 0:
                    found[item].add("shape:" + _SHAPES[shape])
            self._concepts = found
        return self._concepts

    def image_scores(self, images: Sequence[Any]) -> np.ndarray:
        sims = self.embedding.similarities(self.embedding.embed(list(images)), self.layout)
        return np.asarray(sims, dtype=np.float64).mean(axis=0)


def query_concepts(query: str) -> set[str]:
    """The colours and shapes a query mentions, unbound (see ``GalleryIndex.text_scores``)."""
    from repainter.world.grammar import parse_prompt
    from repainter.world.vocabulary import basic_color

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


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


@dataclass
class TurnRecord:
    case: str
    target: str
    turn: int
    query: str
    rank_text: int
    rank_fused: int
    gallery_size: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DARResult:
    records: list[TurnRecord]
    alpha: float
    images_per_turn: int
    config: dict[str, Any] = field(default_factory=dict)

    def ranks(self, case: str) -> dict[str, list[int]]:
        rows = sorted((r for r in self.records if r.case == case), key=lambda r: r.turn)
        return {"text": [r.rank_text for r in rows], "fused": [r.rank_fused for r in rows]}

    def summary(self) -> dict[str, Any]:
        """Per turn: cases, Hits@1/5/10 and mean rank, without (``text``) and with
        (``fused``) generated images. A case shorter than a turn is not counted there."""
        turns: dict[int, list[TurnRecord]] = {}
        for r in self.records:
            turns.setdefault(r.turn, []).append(r)
        per_turn = []
        for t in sorted(turns):
            rows = turns[t]
            entry: dict[str, Any] = {"turn": t, "cases": len(rows)}
            for mode, key in (("text", "rank_text"), ("fused", "rank_fused")):
                ranks = np.array([getattr(r, key) for r in rows], dtype=np.float64)
                entry[mode] = {**{f"hits@{k}": float((ranks <= k).mean()) for k in HITS_AT},
                               "mean_rank": float(ranks.mean())}
            per_turn.append(entry)
        return {"alpha": self.alpha, "images_per_turn": self.images_per_turn,
                "cases": len({r.case for r in self.records}),
                "gallery_size": max((r.gallery_size for r in self.records), default=0),
                "config": self.config, "turns": per_turn}


def run_dar(dialogues: Sequence[Dialogue], gallery_items: Sequence[Any],
            t2i: T2IBackend | None = None, *, alpha: float = 0.5, images_per_turn: int = 1,
            seed: int = 0, mllm: Any = None, embedding: Any = None,
            text_scorer: str = "scene") -> DARResult:
    """Rank the gallery after every turn of every dialogue, with and without generated images.

    ``t2i`` defaults to the offline ``ProceduralT2I()``; ``mllm`` (optional, any object with
    ``rewrite_prompt``) rewrites the refined query; ``embedding`` defaults to ``colour_layout``.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError("alpha must be in [0, 1]")
    if text_scorer not in ("scene", "concepts"):
        raise ValueError("text_scorer must be 'scene' or 'concepts'")
    if int(images_per_turn) < 1:
        raise ValueError("images_per_turn must be >= 1")
    if t2i is None:
        from repainter.backends.t2i.procedural import ProceduralT2I

        t2i = ProceduralT2I()
    index = GalleryIndex.build(gallery_items, embedding)
    position = {gid: i for i, gid in enumerate(index.ids)}
    for d in dialogues:
        if d.target not in position:
            raise DialogueError(f"dialogue {d.id!r}: unknown target {d.target!r} (not in gallery)")
    records: list[TurnRecord] = []
    for case_no, d in enumerate(dialogues):
        target = position[d.target]
        for turn in range(d.n_turns):
            answers = [t.answer for t in d.dialog[:turn]]
            query = refine_query(d.caption, answers)
            if mllm is not None and hasattr(mllm, "rewrite_prompt"):
                query = _mllm_query(mllm, query)
            text = index.text_scores(query, text_scorer)
            seeds = [int(s) for s in np.random.SeedSequence(
                [int(seed) & 0xFFFFFFFF, case_no, turn]).generate_state(int(images_per_turn))]
            images = [g.image for g in t2i.generate([query] * len(seeds), seeds)]
            image = index.image_scores(images)
            fused = float(alpha) * zscore(text) + (1.0 - float(alpha)) * zscore(image)
            records.append(TurnRecord(case=d.id, target=d.target, turn=turn, query=query,
                                      rank_text=target_rank(text, target),
                                      rank_fused=target_rank(fused, target),
                                      gallery_size=len(index.ids)))
    ident = t2i.identity() if hasattr(t2i, "identity") else {"backend": type(t2i).__name__}
    emb = index.embedding.identity() if hasattr(index.embedding, "identity") else {}
    return DARResult(records=records, alpha=float(alpha), images_per_turn=int(images_per_turn),
                     config={"t2i": ident, "embedding": emb, "seed": int(seed),
                             "text_scorer": text_scorer, "mllm": type(mllm).__name__ if mllm else None})


# -- output ----------------------------------------------------------------------------------


def summary_markdown(summary: dict[str, Any]) -> str:
    head = ["turn", "cases"]
    for mode in ("text", "fused"):
        head += [f"{mode} H@{k}" for k in HITS_AT] + [f"{mode} mean rank"]
    lines = [f"# DAR (alpha={summary['alpha']}, images/turn={summary['images_per_turn']}, "
             f"gallery={summary['gallery_size']}, cases={summary['cases']})", "",
             "text = text score only; fused = with generated images", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in summary["turns"]:
        cells = [str(t["turn"]), str(t["cases"])]
        for mode in ("text", "fused"):
            cells += [f"{t[mode][f'hits@{k}']:.3f}" for k in HITS_AT]
            cells.append(f"{t[mode]['mean_rank']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_dar(result: DARResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``dar.jsonl`` (one row per case per turn), ``dar_summary.json`` and ``dar.md``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"jsonl": out / "dar.jsonl", "summary": out / "dar_summary.json",
             "markdown": out / "dar.md"}
    paths["jsonl"].write_text(
        "".join(json.dumps(r.as_dict()) + "\n" for r in result.records), encoding="utf-8")
    summary = result.summary()
    paths["summary"].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(summary_markdown(summary), encoding="utf-8")
    return paths
