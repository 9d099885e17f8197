"""A DAR run folder: run a :class:`~repainter.dar.spec.DARSpec` into it, read it back.

The spec path behind ``repainter dar``, the Python API and notebooks; it sits above
:mod:`repainter.dar.run` (the retrieval loop) and :mod:`repainter.dar.report` (the files), which
do not import each other's callers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from repainter.dar.report import write_dar
from repainter.dar.run import DARResult, TurnRecord, load_spec_dialogues, run_dar
from repainter.dar.scoring import GalleryIndex
from repainter.records.dar import DARSummary, load_record

#: The file that makes a folder a DAR folder (written first by every DAR run).
DAR_SPEC_FILE = "dar_spec.yaml"


def check_dar_folder(out: Path) -> None:
    """Refuse an output folder that holds files and is no DAR folder (no ``dar_spec.yaml``).

    A DAR run keeps no state to resume: it rewrites every output of a DAR folder (any spec:
    the cache is keyed by content), but never writes among files it did not make.
    """
    from repainter.store import RunFolderError, foreign_entries

    if out.exists() and not out.is_dir():
        raise RunFolderError(f"{out} exists and is not a folder; choose another output folder")
    others = foreign_entries(out)
    if others and not (out / DAR_SPEC_FILE).is_file():
        shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
        raise RunFolderError(
            f"{out} is not empty and is not a DAR folder (no {DAR_SPEC_FILE}; it holds {shown}"
            f"); refusing to write into it: choose a new or empty output folder")


def run_dar_spec(spec: Any) -> DARResult:
    """Run a :class:`~repainter.dar.spec.DARSpec` and write its folder (see :func:`write_dar`).

    The folder must be new, empty or a DAR folder (:func:`check_dar_folder`); it is locked for
    the run like a run folder (a second writer is refused)."""
    from repainter.store import refuse_blank_output_dir, run_folder_lock

    refuse_blank_output_dir(spec.output_dir)
    check_dar_folder(spec.run_dir)
    with run_folder_lock(spec.run_dir, "dar"):
        return _run_dar_spec(spec)


def _run_dar_spec(spec: Any) -> DARResult:
    from repainter.cache import CachedMLLM, CachedT2I, ResponseCache
    from repainter.components import create_component
    from repainter.datasets import load_dataset
    from repainter.images import atomic_write_bytes
    from repainter.registry import MLLM, T2I

    out = spec.run_dir
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / DAR_SPEC_FILE, _spec_yaml(spec).encode("utf-8"))
    gallery_items = load_dataset(spec.gallery.name, spec.gallery.params).select(
        spec.gallery.categories, spec.gallery.limit)
    index = GalleryIndex.build(gallery_items, spec.text_scorer, spec.embedding)
    dialogues = load_spec_dialogues(spec, index.ids)
    t2i = create_component(T2I, spec.t2i)
    mllm = create_component(MLLM, spec.mllm) if spec.mllm is not None else None
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
    """Open a DAR folder written by :func:`write_dar` (older schema versions are migrated, see
    :mod:`repainter.records.dar`)."""
    out = Path(out_dir)
    summary = load_record(DARSummary, json.loads(
        (out / "dar_summary.json").read_text(encoding="utf-8")))
    records = [TurnRecord.from_dict(json.loads(line))
               for line in (out / "dar.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return DARResult(records=records, alpha=summary.alpha,
                     images_per_turn=summary.images_per_turn, config=summary.config,
                     failures=list(summary.failures))
