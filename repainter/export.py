"""Preference pairs from a run's candidates, for preference training (Diffusion-DPO, SILMM).

Every round of the loop renders several variants of one prompt and scores them against the
reference: pairs of (preferred, rejected) renders by that score are training data for
preference optimisation of the T2I model. :func:`export_preferences` turns a run folder into a
dataset folder::

    OUT/
      data.jsonl          one pair per line (paths relative to OUT)
      metadata.jsonl      the same rows for ``load_dataset("imagefolder", data_dir=OUT)``
      export.json         the export's parameters and counts
      images/candidates/<model>/<case>/r<round>_v<variant>.png
      images/references/<case>.png

Columns of ``data.jsonl`` (the preferred image is always image 0):

* ``caption`` - the text to condition on (``caption``: ``chosen`` = the preferred candidate's
  prompt, default; ``round`` = the prompt the round's variants were written from; ``initial`` =
  the case's first composed prompt); ``prompt_chosen`` / ``prompt_rejected`` - each render's own
  prompt (variants of one round differ in their prompts, not only in their seeds);
* ``jpg_0`` / ``jpg_1`` - the preferred / rejected image (paths), ``label_0`` = 1 (image 0 is
  preferred), ``label_1`` = 0; ``image_chosen`` / ``image_rejected`` - the same paths by name;
  ``reference`` - the reference image's path;
* ``score_chosen`` / ``score_rejected`` - the raw values of ``metric``; ``margin`` - how much
  better the preferred one is (> 0, oriented so that larger is better also for distances);
  ``scores_chosen`` / ``scores_rejected`` - every metric's score;
* ``id``, ``model``, ``case_id``, ``category``, ``metric``, ``round_chosen`` /
  ``round_rejected``, ``variant_*``, ``seed_*``.

``caption``, ``jpg_0``, ``jpg_1``, ``label_0`` (and ``label_1``) are the Pick-a-Pic v2 columns
that the Diffusion-DPO reference training scripts read; Pick-a-Pic stores the images as bytes,
this export as file paths - ``datasets.load_dataset("json", data_files="OUT/data.jsonl")`` loads
them as strings (relative to OUT), :func:`load_preferences` as decoded images, and
``load_dataset("imagefolder", data_dir=OUT)`` (reading ``metadata.jsonl``, whose
``jpg_0_file_name`` / ``jpg_1_file_name`` / ``reference_file_name`` columns become image columns
``jpg_0`` / ``jpg_1`` / ``reference``) as well. A script that expects bytes needs its image
loading changed to open a path or take the decoded image.

Pairs (``pairs``): ``best_vs_rest`` - the best candidate of each group against every other one;
``all`` - every pair of the group with different scores. Groups (``group``): ``round`` (pairs
within one round: same base prompt, the usual setting) or ``case`` (across all rounds of a case).
A pair is kept only if its margin is at least ``min_margin``; ties (margin 0) are never exported.
Only finished cases count; candidates flagged (e.g. blanked by a safety checker) or without a
finite score are left out.
"""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repainter.records import CandidateRecord, CaseRecord
from repainter.store import RunFolderBusyError, RunStore, run_folder_lock, slug

PAIRS = ("best_vs_rest", "all")
GROUPS = ("round", "case")
CAPTIONS = ("chosen", "round", "initial")


class ExportError(ValueError):
    """The run folder cannot be exported with these settings; the message says why."""


def _higher_is_better(run_dir: Path, metric: str, override: bool | None) -> bool:
    if override is not None:
        return bool(override)
    if metric == "selection":
        return True
    name = metric
    try:
        from repainter.spec import load_run_spec

        spec = load_run_spec(run_dir / "spec.yaml")
        name = next((m.name for m in spec.metrics if m.display_name == metric), metric)
    except Exception:  # an older or hand-made folder: fall back to the label itself
        pass
    try:
        from repainter.registry import METRICS

        return bool(getattr(METRICS.get(name), "higher_is_better", True))
    except Exception:
        return True


def _value(candidate: CandidateRecord, metric: str) -> float | None:
    """The candidate's value of ``metric`` (None: flagged, invalid or not measured; records hold
    no NaN, see :mod:`repainter.records.base`)."""
    if candidate.flagged or candidate.invalid_reason:
        return None
    value = candidate.selection if metric == "selection" else candidate.scores.get(metric)
    return None if value is None else float(value)


def _check_metric(run_dir: Path, metric: str, score_keys: list[str]) -> None:
    """Refuse a metric the run has no score of: it would export 0 pairs and look like success."""
    from repainter.spec import SpecError, load_run_spec

    known = {"selection", *score_keys}
    try:
        known.update(m.display_name for m in load_run_spec(run_dir / "spec.yaml").metrics)
    except SpecError:  # an old or hand-made folder: its records say what it scored
        pass
    if metric not in known:
        raise ExportError(f"the run has no metric {metric!r}; it has: {', '.join(sorted(known))}")


def _offline_world_warnings(run_dir: Path) -> list[str]:
    from repainter.spec import SpecError, load_run_spec
    from repainter.spec_checks import offline_world_warnings

    try:
        return offline_world_warnings(load_run_spec(run_dir / "spec.yaml"))
    except SpecError:  # an old or hand-made folder: judged by its cases alone
        return []


def export_preferences(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    min_margin: float = 0.0,
    pairs: str = "best_vs_rest",
    metric: str = "selection",
    group: str = "round",
    caption: str = "chosen",
    models: list[str] | None = None,
    higher_is_better: bool | None = None,
    force: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write preference pairs of the run in ``run_dir`` to ``out_dir``; return ``data.jsonl``.

    See the module docstring for the layout and columns. ``metric`` is ``selection`` (default) or
    any metric label of the run; its direction comes from the metric registry unless
    ``higher_is_better`` is given. ``models`` keeps only those model labels. A run of the offline
    world's models on another dataset is refused unless ``force`` (its pairs teach nothing).

    ``out_dir`` must be new, empty or an earlier export of this run (its ``export.json`` names
    the run); any other folder is refused unless ``overwrite`` (its files would be replaced).
    The run folder's lock is held while reading: an export during a run is refused.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    _check_request(run_dir, out_dir, pairs=pairs, group=group, caption=caption,
                   min_margin=min_margin, force=force)
    _check_out_dir(run_dir, out_dir, overwrite)
    try:
        with run_folder_lock(run_dir, "export-preferences", create=False):
            return _export(run_dir, out_dir, min_margin=min_margin, pairs=pairs, metric=metric,
                           group=group, caption=caption, models=models,
                           higher_is_better=higher_is_better)
    except RunFolderBusyError as exc:
        raise ExportError(str(exc)) from exc


def _check_out_dir(run_dir: Path, out_dir: Path, overwrite: bool) -> None:
    """Refuse an out folder holding files that are not an earlier export of this run."""
    if overwrite or not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a folder")
    entries = sorted(p.name for p in out_dir.iterdir())
    if not entries:
        return
    try:
        previous = json.loads((out_dir / "export.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = None
    if isinstance(previous, dict) and previous.get("run_dir") == str(run_dir.resolve()):
        return  # re-exporting the same run: its own files are replaced
    shown = ", ".join(entries[:5]) + (" ..." if len(entries) > 5 else "")
    raise ExportError(f"{out_dir} is not empty and is not an export of {run_dir} (it holds "
                      f"{shown}); choose a new or empty folder, or pass --overwrite to replace "
                      "its files")


def _export(run_dir: Path, out_dir: Path, *, min_margin: float, pairs: str, metric: str,
            group: str, caption: str, models: list[str] | None,
            higher_is_better: bool | None) -> Path:
    sign = 1.0 if _higher_is_better(run_dir, metric, higher_is_better) else -1.0
    records = [r for r in RunStore(run_dir).records()
               if r.done and (models is None or r.model in models)]
    score_keys = sorted({k for r in records for c in r.candidates() for k in c.scores})
    _check_metric(run_dir, metric, score_keys)
    files = _Files(run_dir, out_dir)
    rows: list[dict[str, Any]] = []
    skipped_missing = 0
    for record in records:
        ref_rel = record.reference or f"references/{slug(record.case_id)}.png"
        for members in _groups(record, group):
            scored, missing = _scored(members, metric, run_dir)
            skipped_missing += missing
            # best first; ties broken by round then variant so the output is deterministic
            scored.sort(key=lambda mv: (-sign * mv[1], mv[0].candidate.round or 0,
                                        mv[0].candidate.variant))
            for (chosen, v_c), (rejected, v_r) in _pairs_of(scored, pairs):
                margin = sign * (v_c - v_r)
                if margin <= 0 or margin < min_margin:
                    continue
                rows.append(_row(record, chosen, rejected, v_c, v_r, margin, metric, caption,
                                 score_keys, files.copy, ref_rel))
    return _write_export(out_dir, rows, {
        "run_dir": str(run_dir.resolve()), "pairs": pairs, "group": group, "metric": metric,
        "higher_is_better": sign > 0, "min_margin": min_margin, "caption": caption,
        "models": models, "cases": len(records), "rows": len(rows), "images": len(files.copied),
        "skipped_missing_images": skipped_missing,
    })


def _check_request(run_dir: Path, out_dir: Path, *, pairs: str, group: str, caption: str,
                   min_margin: float, force: bool) -> None:
    """Refuse settings or folders an export cannot use (ExportError says why)."""
    if pairs not in PAIRS:
        raise ExportError(f"pairs must be one of {', '.join(PAIRS)}, not {pairs!r}")
    if group not in GROUPS:
        raise ExportError(f"group must be one of {', '.join(GROUPS)}, not {group!r}")
    if caption not in CAPTIONS:
        raise ExportError(f"caption must be one of {', '.join(CAPTIONS)}, not {caption!r}")
    if min_margin < 0:
        raise ExportError("min_margin must be >= 0")
    if not (run_dir / "cases").is_dir():
        raise ExportError(f"{run_dir} is not a run folder (no cases/)")
    if out_dir.resolve() == run_dir.resolve():
        raise ExportError("out_dir must differ from the run folder")
    warnings = _offline_world_warnings(run_dir)
    if warnings and not force:
        raise ExportError(f"{warnings[0]}; pass --force to export anyway")


@dataclass(frozen=True)
class _Member:
    """A candidate and the prompt its round's variants were written from."""

    candidate: CandidateRecord
    round_prompt: str | None


def _groups(record: CaseRecord, group: str) -> list[list[_Member]]:
    """The candidates that are compared with each other: per round, or the whole case."""
    rounds = [[_Member(c, rnd.prompt or c.prompt) for c in rnd.candidates] for rnd in record.rounds]
    if group == "case":
        return [[m for members in rounds for m in members]]
    return rounds


def _scored(members: list[_Member], metric: str, run_dir: Path
            ) -> tuple[list[tuple[_Member, float]], int]:
    """(member, value) of the members with a value and an image; and how many images are
    missing from the run folder."""
    scored, missing = [], 0
    for member in members:
        value = _value(member.candidate, metric)
        if value is None or not member.candidate.image:
            continue
        if not (run_dir / member.candidate.image).is_file():
            missing += 1
            continue
        scored.append((member, value))
    return scored, missing


def _pairs_of(scored: list, pairs: str) -> list:
    """(better, worse) pairs of a group sorted best first."""
    if pairs == "best_vs_rest":
        return [(scored[0], other) for other in scored[1:]] if scored else []
    return list(itertools.combinations(scored, 2))


class _Files:
    """Copies run-folder images into the export, each once."""

    def __init__(self, run_dir: Path, out_dir: Path):
        self.run_dir, self.out_dir = run_dir, out_dir
        self.copied: set[str] = set()

    def copy(self, src_rel: str, dest_rel: str) -> str:
        if dest_rel not in self.copied:
            src, dest = self.run_dir / src_rel, self.out_dir / dest_rel
            if not src.is_file():
                raise ExportError(f"{src} is missing from the run folder")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            self.copied.add(dest_rel)
        return dest_rel


def _write_export(out_dir: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> Path:
    """data.jsonl, metadata.jsonl (the imagefolder layout) and export.json; return data.jsonl."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = out_dir / "data.jsonl"
    _write_jsonl(data, rows)
    meta_rows = []
    for row in rows:
        meta = {k: v for k, v in row.items()
                if k not in ("jpg_0", "jpg_1", "image_chosen", "image_rejected", "reference")}
        meta_rows.append({"jpg_0_file_name": row["jpg_0"], "jpg_1_file_name": row["jpg_1"],
                          "reference_file_name": row["reference"], **meta})
    _write_jsonl(out_dir / "metadata.jsonl", meta_rows)
    (out_dir / "export.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return data


def _row(record: CaseRecord, chosen_member: _Member, rejected_member: _Member, v_c, v_r, margin,
         metric, caption, score_keys, copy, ref_rel) -> dict[str, Any]:
    model, case_id = record.model, record.case_id
    chosen, rejected = chosen_member.candidate, rejected_member.candidate
    base = f"images/candidates/{slug(model)}/{slug(case_id)}"

    def image(c: CandidateRecord) -> str:
        return copy(c.image, f"{base}/r{c.round or 0}_v{c.variant}.png")

    round_prompt = chosen_member.round_prompt
    text = {"chosen": chosen.prompt, "round": round_prompt,
            "initial": record.initial_prompt or round_prompt}[caption]
    img_c, img_r = image(chosen), image(rejected)
    ref = copy(ref_rel, f"images/references/{Path(ref_rel).name}")

    def tag(c: CandidateRecord) -> str:
        return f"r{c.round or 0}v{c.variant}"

    def scores(c: CandidateRecord) -> dict[str, float | None]:
        return {k: c.scores.get(k) for k in score_keys}

    return {
        "id": f"{model}/{case_id}/{tag(chosen)}-{tag(rejected)}",
        "model": model, "case_id": case_id, "category": record.category,
        "caption": text,
        "jpg_0": img_c, "jpg_1": img_r, "label_0": 1, "label_1": 0,
        "image_chosen": img_c, "image_rejected": img_r, "reference": ref,
        "prompt_chosen": chosen.prompt, "prompt_rejected": rejected.prompt,
        "metric": metric, "score_chosen": v_c, "score_rejected": v_r, "margin": margin,
        "round_chosen": chosen.round, "round_rejected": rejected.round,
        "variant_chosen": chosen.variant, "variant_rejected": rejected.variant,
        "seed_chosen": chosen.seed, "seed_rejected": rejected.seed,
        "selection_chosen": chosen.selection, "selection_rejected": rejected.selection,
        "scores_chosen": scores(chosen), "scores_rejected": scores(rejected),
    }


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    from repainter.images import atomic_write_bytes

    text = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in rows)
    atomic_write_bytes(path, text.encode("utf-8"))


IMAGE_COLUMNS = ("jpg_0", "jpg_1", "image_chosen", "image_rejected", "reference")


def load_preferences(out_dir: str | Path, decode: bool = True):
    """The exported pairs as a ``datasets.Dataset``; image columns as absolute paths, or decoded
    images (``datasets.Image``) with ``decode``."""
    import datasets

    out_dir = Path(out_dir).resolve()
    ds = datasets.load_dataset("json", data_files=str(out_dir / "data.jsonl"), split="train")
    ds = ds.map(lambda row: {c: str(out_dir / row[c]) for c in IMAGE_COLUMNS})
    if decode:
        for column in IMAGE_COLUMNS:
            ds = ds.cast_column(column, datasets.Image())
    return ds
