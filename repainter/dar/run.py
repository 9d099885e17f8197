"""Running diffusion-augmented retrieval: per dialogue, per turn, query -> renders -> ranks.

After every turn the dialogue so far is refined into one query (by the MLLM's
``refine_dialogue``, or caption and answers joined when there is none); the T2I model renders
``images_per_turn`` images from it; the gallery is ranked by the text score alone and by the
fusion of text and generated-image scores (:mod:`repainter.dar.scoring`). The rank of the target
is recorded both ways, so Hits@K per turn can be compared with and without generated images.

A dialogue whose T2I or MLLM call fails is recorded as failed with the reason; the others go on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from repainter.backends.base import T2IBackend
from repainter.dar.dialogues import Dialogue, DialogueError, concat_query
from repainter.dar.scoring import GalleryIndex, ahead_and_tied, expected_hits, fuse

logger = logging.getLogger(__name__)

HITS_AT = (1, 5, 10)
#: Gallery ids listed per turn record (the head of the fused ranking), for the report.
TOP_LISTED = 5


@dataclass
class TurnRecord:
    """The target's place in the two rankings of one turn: how many gallery images score above
    it (``*_ahead``) and how many tie with it (``*_tied``). Ties are broken at random in
    expectation: a constant score (say, a caption no scorer understands) puts the target at the
    middle of the gallery, not first or last."""

    case: str
    target: str
    turn: int
    query: str
    text_ahead: int
    text_tied: int
    fused_ahead: int
    fused_tied: int
    gallery_size: int
    #: Run-folder paths of the generated images (when the run saves them).
    images: list[str] = field(default_factory=list)
    #: The first gallery ids of the fused ranking.
    top_fused: list[str] = field(default_factory=list)

    @property
    def rank_text(self) -> float:
        """Expected rank (1 = first) by the text score alone."""
        return 1.0 + self.text_ahead + self.text_tied / 2.0

    @property
    def rank_fused(self) -> float:
        """Expected rank with the generated images fused in."""
        return 1.0 + self.fused_ahead + self.fused_tied / 2.0

    def hits(self, k: int, mode: str) -> float:
        """Probability that the target is in the top ``k`` (``mode``: text or fused)."""
        return expected_hits(getattr(self, f"{mode}_ahead"), getattr(self, f"{mode}_tied"), k)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rank_text": self.rank_text, "rank_fused": self.rank_fused}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> TurnRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})


@dataclass
class DARFailure:
    case: str
    target: str
    turn: int
    error: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
            for mode in ("text", "fused"):
                ranks = np.array([getattr(r, f"rank_{mode}") for r in rows], dtype=np.float64)
                entry[mode] = {**{f"hits@{k}": float(np.mean([r.hits(k, mode) for r in rows]))
                                  for k in HITS_AT},
                               "mean_rank": float(ranks.mean())}
            per_turn.append(entry)
        return {"alpha": self.alpha, "images_per_turn": self.images_per_turn,
                "cases": len({r.case for r in self.records}),
                "failed": len(self.failures),
                "gallery_size": max((r.gallery_size for r in self.records), default=0),
                "config": self.config, "turns": per_turn,
                "failures": [f.as_dict() for f in self.failures]}

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

    ``t2i`` defaults to the offline ``ProceduralT2I()``; ``mllm`` (any object with
    ``refine_dialogue``, e.g. the ``scene-analyst`` backend) refines each turn's query, else the
    caption and answers are joined. ``text_scorer`` and ``embedding`` are names or ``{name,
    params}`` (see :mod:`repainter.dar.scoring`). ``image_dir`` saves the generated images as
    ``image_dir/<case>/t<turn>-<k>.png`` (paths in the records, relative to its parent).
    ``gallery`` reuses an index already fitted on ``gallery_items``.
    """
    from repainter.images import save_png
    from repainter.store import slug

    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError("alpha must be in [0, 1]")
    if int(images_per_turn) < 1:
        raise ValueError("images_per_turn must be >= 1")
    if t2i is None:
        from repainter.backends.t2i.procedural import ProceduralT2I

        t2i = ProceduralT2I()
    index = gallery or GalleryIndex.build(gallery_items, text_scorer, embedding)
    position = {gid: i for i, gid in enumerate(index.ids)}
    for d in dialogues:
        if d.target not in position:
            why = index.left_out.get(d.target)
            raise DialogueError(f"dialogue {d.id!r}: target {d.target!r} is not in the gallery"
                                + (f" (it failed to load: {why})" if why else ""))
    image_root = Path(image_dir) if image_dir is not None else None
    records: list[TurnRecord] = []
    failures: list[DARFailure] = []
    for case_no, d in enumerate(dialogues):
        target = position[d.target]
        case_records = []
        turn = 0
        try:
            for turn in range(d.n_turns):
                query = _refine(mllm, d, turn)
                text = index.text_scores(query)
                seeds = _turn_seeds(seed, case_no, turn, int(images_per_turn))
                generated = t2i.generate([query] * len(seeds), seeds)
                usable = [g.image for g in generated if not g.flagged]
                if not usable:
                    raise RuntimeError("every render of the turn was flagged (blank)")
                fused = fuse(text, index.image_scores(usable), alpha)
                paths = []
                if image_root is not None:
                    for k, image in enumerate(usable):
                        path = image_root / slug(d.id) / f"t{turn}-{k}.png"
                        save_png(image, path)
                        paths.append(path.relative_to(image_root.parent).as_posix())
                top = np.argsort(-fused, kind="stable")[:TOP_LISTED]
                text_ahead, text_tied = ahead_and_tied(text, target)
                fused_ahead, fused_tied = ahead_and_tied(fused, target)
                case_records.append(TurnRecord(
                    case=d.id, target=d.target, turn=turn, query=query,
                    text_ahead=text_ahead, text_tied=text_tied, fused_ahead=fused_ahead,
                    fused_tied=fused_tied, gallery_size=len(index.ids), images=paths,
                    top_fused=[index.ids[i] for i in top]))
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


# -- the spec path: CLI, Python API and notebooks ----------------------------------------------


def load_spec_dialogues(spec: Any, gallery_ids: Sequence[str] | None = None) -> list[Dialogue]:
    """The dialogues a :class:`~repainter.dar.spec.DARSpec` names (manifest or world scenes)."""
    from repainter.dar.dialogues import load_dialogues, world_dialogues
    from repainter.datasets import load_dataset

    source = spec.dialogues
    if source.manifest:
        found = load_dialogues(source.manifest, gallery_ids)
    else:
        ds = source.dataset
        items = load_dataset(ds.name, ds.params).select(ds.categories, ds.limit)
        found = world_dialogues(items, seed=source.seed)
    return found[: source.limit] if source.limit is not None else found


def run_dar_spec(spec: Any) -> DARResult:
    """Run a :class:`~repainter.dar.spec.DARSpec` and write its folder (see :func:`write_dar`)."""
    from repainter.cache import CachedMLLM, CachedT2I, ResponseCache
    from repainter.components import _create
    from repainter.dar.report import write_dar
    from repainter.datasets import load_dataset
    from repainter.images import atomic_write_bytes
    from repainter.registry import MLLM, T2I

    out = spec.run_dir
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "dar_spec.yaml", _spec_yaml(spec).encode("utf-8"))
    gallery_items = load_dataset(spec.gallery.name, spec.gallery.params).select(
        spec.gallery.categories, spec.gallery.limit)
    index = GalleryIndex.build(gallery_items, spec.text_scorer, spec.embedding)
    dialogues = load_spec_dialogues(spec, index.ids)
    t2i = _create(T2I, spec.t2i)
    mllm = _create(MLLM, spec.mllm) if spec.mllm is not None else None
    cache = ResponseCache(out / "cache.sqlite") if spec.cache else None
    if cache is not None:
        t2i = CachedT2I(t2i, cache)
        mllm = CachedMLLM(mllm, cache) if mllm is not None else None
    try:
        result = run_dar(dialogues, gallery_items, t2i, alpha=spec.alpha,
                         images_per_turn=spec.images_per_turn, seed=spec.seed, mllm=mllm,
                         image_dir=out / "images", gallery=index)
    finally:
        for backend in (t2i, mllm):
            if backend is not None:
                backend.close()
        if cache is not None:
            result_cache = {"hits": dict(cache.hits), "misses": dict(cache.misses)}
            cache.close()
    result.config.update({"spec": spec.model_dump(mode="json"), "fingerprint": spec.fingerprint()})
    if cache is not None:
        result.config["cache"] = result_cache
    write_dar(result, out)
    return result


def _spec_yaml(spec: Any) -> str:
    import yaml

    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)


def read_result(out_dir: str | Path) -> DARResult:
    """Open a DAR folder written by :func:`write_dar`."""
    out = Path(out_dir)
    summary = json.loads((out / "dar_summary.json").read_text(encoding="utf-8"))
    records = [TurnRecord.from_dict(json.loads(line))
               for line in (out / "dar.jsonl").read_text(encoding="utf-8").splitlines() if line]
    failures = [DARFailure(**f) for f in summary.get("failures", [])]
    return DARResult(records=records, alpha=summary["alpha"],
                     images_per_turn=summary["images_per_turn"], config=summary["config"],
                     failures=failures)
