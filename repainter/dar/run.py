"""Running diffusion-augmented retrieval: per dialogue, per turn, query -> renders -> ranks.

After every turn the dialogue so far is refined into one query (by the MLLM's
``refine_dialogue``, or caption and answers joined when there is none); the T2I model renders
``images_per_turn`` images from it; the gallery is ranked by the text score alone and by the
fusion of text and generated-image scores (:mod:`repainter.dar.scoring`). The rank of the target
is recorded both ways, so Hits@K per turn can be compared with and without generated images:
cumulative as ChatIR counts it (``hits@K``) and at the turn alone (``hits@K_per_turn``).

A dialogue whose T2I or MLLM call fails is recorded as failed with the reason; the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from repainter.backends.base import T2IBackend
from repainter.dar.dialogues import Dialogue, DialogueError, concat_query
from repainter.dar.scoring import (
    GalleryIndex,
    ahead_and_tied,
    cumulative_hits,
    expected_hits,
    fuse,
)
from repainter.records.dar import (
    HITS_AT,
    DARFailureRecord,
    DARSummary,
    DARTurnRecord,
    dump_record,
    load_record,
)

logger = logging.getLogger(__name__)

#: Gallery ids listed per turn record (the head of the fused ranking), for the report.
TOP_LISTED = 5


class TurnRecord(DARTurnRecord):
    """The target's place in the two rankings of one turn (:class:`DARTurnRecord`, the line of
    ``dar.jsonl``). Ties are broken at random in expectation: a constant score (say, a caption no
    scorer understands) puts the target at the middle of the gallery, not first or last."""

    def hits(self, k: int, mode: str) -> float:
        """Probability that the target is in the top ``k`` (``mode``: text or fused)."""
        return expected_hits(getattr(self, f"{mode}_ahead"), getattr(self, f"{mode}_tied"), k)

    def as_dict(self) -> dict[str, Any]:
        return dump_record(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> TurnRecord:
        """A ``dar.jsonl`` line of any readable schema version."""
        return load_record(cls, row)


DARFailure = DARFailureRecord


@dataclass
class DARResult:
    records: list[TurnRecord]
    alpha: float
    images_per_turn: int
    config: dict[str, Any] = field(default_factory=dict)
    failures: list[DARFailure] = field(default_factory=list)

    def ranks(self, case: str) -> dict[str, list[int]]:
        rows = sorted((r for r in self.records if r.case == case), key=lambda r: r.turn)
        return {"text": [r.rank_text for r in rows], "fused": [r.rank_fused for r in rows]}

    def summary_record(self) -> DARSummary:
        """Per turn: cases, Hits@1/5/10 and mean rank, without (``text``) and with (``fused``)
        generated images. ``hits@K`` is ChatIR's cumulative Hits@K over all dialogues
        (:func:`repainter.dar.scoring.cumulative_hits`); ``hits@K_per_turn`` and the mean rank
        are over the dialogues that reach the turn (a case shorter than a turn is not counted
        there)."""
        turns: dict[int, list[TurnRecord]] = {}
        for r in self.records:
            turns.setdefault(r.turn, []).append(r)
        order = sorted(turns)
        cumulative = {(mode, k): self._cumulative(mode, k, order)
                      for mode in ("text", "fused") for k in HITS_AT}
        per_turn = []
        for i, t in enumerate(order):
            rows = turns[t]
            entry: dict[str, Any] = {"turn": t, "cases": len(rows)}
            for mode in ("text", "fused"):
                ranks = np.array([getattr(r, f"rank_{mode}") for r in rows], dtype=np.float64)
                entry[mode] = {**{f"hits@{k}": cumulative[mode, k][i] for k in HITS_AT},
                               **{f"hits@{k}_per_turn": float(np.mean([r.hits(k, mode)
                                                                       for r in rows]))
                                  for k in HITS_AT},
                               "mean_rank": float(ranks.mean())}
            per_turn.append(entry)
        return DARSummary(alpha=self.alpha, images_per_turn=self.images_per_turn,
                          cases=len({r.case for r in self.records}), failed=len(self.failures),
                          gallery_size=max((r.gallery_size for r in self.records), default=0),
                          config=self.config, turns=per_turn, failures=self.failures)

    def _cumulative(self, mode: str, k: int, turns: list[int]) -> list[float]:
        """ChatIR's cumulative Hits@k at each of ``turns``, over every dialogue recorded."""
        by_case: dict[str, dict[int, float]] = {}
        for r in self.records:
            by_case.setdefault(r.case, {})[r.turn] = r.hits(k, mode)
        last = max(turns, default=-1)
        # A turn a dialogue did not reach adds no hit: its state stays that of its last turn.
        dense = [[hits.get(t, 0.0) for t in range(last + 1)] for hits in by_case.values()]
        return cumulative_hits(dense, turns)

    def summary(self) -> dict[str, Any]:
        """:meth:`summary_record` as written to ``dar_summary.json`` (a plain dict)."""
        return dump_record(self.summary_record())

    def to_pandas(self):
        """One row per (case, turn): query, ranks and hits with and without generated images."""
        import pandas as pd

        rows = []
        for r in self.records:
            row = {"case": r.case, "target": r.target, "turn": r.turn, "query": r.query,
                   "rank_text": r.rank_text, "rank_fused": r.rank_fused,
                   "gallery_size": r.gallery_size}
            for k in HITS_AT:
                row[f"hits@{k}_text"] = r.hits(k, "text")
                row[f"hits@{k}_fused"] = r.hits(k, "fused")
            rows.append(row)
        return pd.DataFrame(rows)


def _refine(mllm: Any, dialogue: Dialogue, turn: int) -> str:
    if mllm is None:
        return concat_query(dialogue.caption, dialogue.answers(turn))
    query = str(mllm.refine_dialogue(dialogue.caption, dialogue.exchanges(turn)) or "").strip()
    return query or concat_query(dialogue.caption, dialogue.answers(turn))


def _turn_seeds(seed: int, case_no: int, turn: int, n: int) -> list[int]:
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, case_no, turn]).generate_state(n)
    return [int(s) for s in state]


def run_dar(dialogues: Sequence[Dialogue], gallery_items: Sequence[Any],
            t2i: T2IBackend | None = None, *, alpha: float = 0.5, images_per_turn: int = 1,
            seed: int = 0, mllm: Any = None, embedding: Any = "scene_layout",
            text_scorer: Any = "concepts", image_dir: str | Path | None = None,
            gallery: GalleryIndex | None = None) -> DARResult:
    """Rank the gallery after every turn of every dialogue, with and without generated images.

    ``t2i`` defaults to the bench's offline ``procedural`` model; ``mllm`` (any object with
    ``refine_dialogue``, e.g. the ``scene-analyst`` backend) refines each turn's query, else the
    caption and answers are joined. ``text_scorer`` and ``embedding`` are names or ``{name,
    params}`` (see :mod:`repainter.dar.scoring`). ``image_dir`` saves the generated images as
    ``image_dir/<case>/t<turn>-<k>.png`` (paths in the records, relative to its parent).
    ``gallery`` reuses an index already fitted on ``gallery_items``.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError("alpha must be in [0, 1]")
    if int(images_per_turn) < 1:
        raise ValueError("images_per_turn must be >= 1")
    if t2i is None:
        from repainter.registry import T2I

        t2i = T2I.create("procedural")
    index = gallery or GalleryIndex.build(gallery_items, text_scorer, embedding)
    position = _targets_in(index, dialogues)
    turn_of = _TurnRanker(index, t2i, mllm, alpha=float(alpha), seed=seed,
                          images_per_turn=int(images_per_turn),
                          image_root=Path(image_dir) if image_dir is not None else None)
    records: list[TurnRecord] = []
    failures: list[DARFailure] = []
    for case_no, d in enumerate(dialogues):
        case_records = []
        turn = 0
        try:
            for turn in range(d.n_turns):
                case_records.append(turn_of(d, case_no, turn, position[d.target]))
        except Exception as exc:  # noqa: BLE001 - one dialogue fails, the run goes on
            logger.warning("DAR dialogue %r failed at turn %d: %s", d.id, turn, exc)
            failures.append(DARFailure(case=d.id, target=d.target, turn=turn,
                                       error=f"{type(exc).__name__}: {exc}"))
            continue
        records.extend(case_records)
    ident = t2i.identity() if hasattr(t2i, "identity") else {"backend": type(t2i).__name__}
    return DARResult(records=records, alpha=float(alpha), images_per_turn=int(images_per_turn),
                     failures=failures,
                     config={"t2i": ident, "gallery": index.identity(), "seed": int(seed),
                             "mllm": type(mllm).__name__ if mllm is not None else None})


def _targets_in(index: GalleryIndex, dialogues: Sequence[Dialogue]) -> dict[str, int]:
    """Gallery position by id; every dialogue's target must be there."""
    position = {gid: i for i, gid in enumerate(index.ids)}
    for d in dialogues:
        if d.target not in position:
            why = index.left_out.get(d.target)
            raise DialogueError(f"dialogue {d.id!r}: target {d.target!r} is not in the gallery"
                                + (f" (it failed to load: {why})" if why else ""))
    return position


@dataclass
class _TurnRanker:
    """One turn of a dialogue: refine the query, render, rank the gallery by text and fused."""

    index: GalleryIndex
    t2i: Any
    mllm: Any
    alpha: float
    seed: int
    images_per_turn: int
    image_root: Path | None

    def __call__(self, d: Dialogue, case_no: int, turn: int, target: int) -> TurnRecord:
        index = self.index
        query = _refine(self.mllm, d, turn)
        text = index.text_scores(query)
        seeds = _turn_seeds(self.seed, case_no, turn, self.images_per_turn)
        generated = self.t2i.generate([query] * len(seeds), seeds)
        usable = [g.image for g in generated if not g.flagged]
        if not usable:
            raise RuntimeError("every render of the turn was flagged (blank)")
        fused = fuse(text, index.image_scores(usable), self.alpha)
        paths = self._save(usable, d, turn)
        top = np.argsort(-fused, kind="stable")[:TOP_LISTED]
        text_ahead, text_tied = ahead_and_tied(text, target)
        fused_ahead, fused_tied = ahead_and_tied(fused, target)
        return TurnRecord(
            case=d.id, target=d.target, turn=turn, query=query,
            text_ahead=text_ahead, text_tied=text_tied, fused_ahead=fused_ahead,
            fused_tied=fused_tied, gallery_size=len(index.ids), images=paths,
            top_fused=[index.ids[i] for i in top])

    def _save(self, images: list[Any], d: Dialogue, turn: int) -> list[str]:
        """Save the turn's images under ``image_root`` (paths relative to its parent)."""
        from repainter.images import save_png
        from repainter.store import slug

        if self.image_root is None:
            return []
        paths = []
        for k, image in enumerate(images):
            path = self.image_root / slug(d.id) / f"t{turn}-{k}.png"
            save_png(image, path)
            paths.append(path.relative_to(self.image_root.parent).as_posix())
        return paths


# -- the spec path: CLI, Python API and notebooks ----------------------------------------------


def load_spec_dialogues(spec: Any, gallery_ids: Sequence[str] | None = None) -> list[Dialogue]:
    """The dialogues a :class:`~repainter.dar.spec.DARSpec` names: its manifest, else those the
    dialogue writer registered for its dataset writes (the bench's ``world`` scenes)."""
    from repainter.dar.dialogues import load_dialogues
    from repainter.datasets import load_dataset
    from repainter.registry import DAR_DIALOGUES

    source = spec.dialogues
    if source.manifest:
        found = load_dialogues(source.manifest, gallery_ids)
    else:
        ds = source.dataset
        if ds.name not in DAR_DIALOGUES:
            raise DialogueError(
                f"dataset {ds.name!r} has no built-in dialogues (writers are registered for: "
                f"{', '.join(DAR_DIALOGUES.names()) or 'none'}); give dialogues.manifest")
        items = load_dataset(ds.name, ds.params).select(ds.categories, ds.limit)
        found = DAR_DIALOGUES.get(ds.name)(items, seed=source.seed)
    return found[: source.limit] if source.limit is not None else found
