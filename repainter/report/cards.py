"""The report's case cards: per reference, its description and each model's outcome (with the
full history of rounds, prompt diffs, candidates and critiques on the detailed cards), the pages
they are spread over, and the failures."""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

from repainter.records import (
    CandidateRecord,
    CaseRecord,
    CritiqueRecord,
    DecisionRecord,
    RoundRecord,
)
from repainter.report.assets import REPORT_DIR, ReportImages
from repainter.report.diff import compact_diff, diff_stats, word_diff
from repainter.report.formatting import fmt, fmt_seconds, fmt_signed
from repainter.report.plots import sparkline_points, sparkline_svg
from repainter.schemas import ImageUnderstandingTree
from repainter.store import RunStore, slug


def cases_view(run_dir: Path, store: RunStore, records: list[CaseRecord], light: bool,
               models: list[str], colours: dict[str, str], metric_order: list[str],
               max_cases: int, max_detailed: int) -> dict[str, Any]:
    """The case cards grouped by reference (``max_cases`` per page), licences and failures."""
    images = ReportImages(run_dir, run_dir / REPORT_DIR)
    groups: OrderedDict[str, list[CaseRecord]] = OrderedDict()
    for record in sorted(records, key=lambda r: (str(r.category or ""), str(r.case_id))):
        groups.setdefault(record.case_id, []).append(record)
    ordered = list(groups.items())
    per_page = max(1, max_cases)
    page_count = max(1, math.ceil(len(ordered) / per_page))
    pages = [{"number": n + 1, "href": page_file(n + 1), "first": n * per_page + 1,
              "last": min(len(ordered), (n + 1) * per_page)} for n in range(page_count)]

    def page_cases(number: int) -> list[dict[str, Any]]:
        """The case cards of one page (only page 1 details its first ``max_detailed``)."""
        start = (number - 1) * per_page
        views = []
        for index, (case_id, mine) in enumerate(ordered[start:start + per_page]):
            detailed = index < max_detailed and number == 1
            if detailed and light:  # full histories from the records themselves
                mine = [store.read_case_record(r.model, r.case_id) or r for r in mine]
            views.append(_case_view(case_id, mine, detailed, models, colours, metric_order,
                                    images, run_dir, store))
        return views

    licences: dict[str, int] = {}
    for mine in groups.values():
        name = next((r.license for r in mine if r.license), None)
        if name:
            licences[name] = licences.get(name, 0) + 1
    return {
        "licences": sorted(licences.items()),
        "cases": page_cases(1),
        "case_total": len(ordered),
        "pages": pages if page_count > 1 else [],
        "page": 1,
        "page_only": False,
        "page_cases": page_cases,
        "failures": _failures_view(records, store, colours),
    }


def page_file(number: int) -> str:
    """The file of the report's page ``number`` (1 is index.html)."""
    return "index.html" if number == 1 else f"cases-{number}.html"


def _failures_view(records: list[CaseRecord], store: RunStore, colours: dict[str, str]
                   ) -> list[dict[str, Any]]:
    """Failed cases with their reasons, and the record files that could not be read."""
    failures = [{"model": r.model, "case_id": r.case_id, "anchor": "case-" + slug(r.case_id),
                 "category": r.category, "error": r.error or "(no reason recorded)",
                 "traceback": "".join(r.traceback or []) or None,
                 "colour": colours.get(r.model, "#888")}
                for r in records if not r.done]
    failures += [{"model": "-", "case_id": path, "anchor": "failures", "category": None,
                  "error": f"unreadable case record {store.unreadable_reasons.get(path, path)}: "
                  "skipped (the case is redone by the next run)", "traceback": None,
                  "colour": "#888"} for path in store.unreadable]
    return failures


def _case_view(case_id: str, mine: list[CaseRecord], detailed: bool, models: list[str],
               colours: dict[str, str], metric_order: list[str], images: ReportImages, run_dir: Path,
               store: RunStore) -> dict[str, Any]:
    """One reference's card: its reference, description and each model's outcome."""
    order = {m: i for i, m in enumerate(models)}
    mine.sort(key=lambda r: order.get(r.model, len(order)))
    first = next((r for r in mine if r.done), mine[0])
    iut = first.iut if first.iut is not None else _stored_description(run_dir, case_id)
    reference = first.reference or store.reference_relpath(case_id)
    return {
        "id": case_id,
        "anchor": "case-" + slug(case_id),
        "category": first.category,
        "license": next((r.license for r in mine if r.license), None),
        "source": next((r.source for r in mine if r.source), None),
        "reference": images(reference),
        "iut": _iut_view(iut),
        "models": [_model_case_view(r, images, colours.get(r.model, "#888"), metric_order,
                                    detailed) for r in mine],
        "detailed": detailed,
        "failed": any(not r.done for r in mine),
    }


def _stored_description(run_dir: Path, case_id: str) -> ImageUnderstandingTree | None:
    """The shared description of a reference (for a card whose records carry none)."""
    path = run_dir / "descriptions" / f"{slug(case_id)}.json"
    if not path.exists():
        return None
    try:
        return ImageUnderstandingTree.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return None


def _iut_view(iut: ImageUnderstandingTree | None) -> dict[str, Any] | None:
    if iut is None:
        return None
    features = iut.global_features.model_dump()
    objects = [{"name": obj.name, "type": obj.type,
                "attributes": [(k, v) for k, v in obj.attributes.model_dump().items()
                               if v not in ("", None)]}
               for obj in iut.objects]
    relationships = [" ".join(str(v) for v in rel.model_dump().values() if v not in ("", None))
                     for rel in iut.relationships]
    return {
        "description": iut.global_description,
        "features": [(k, v) for k, v in features.items() if v not in ("", None)],
        "objects": objects,
        "relationships": relationships,
    }


def _model_case_view(record: CaseRecord, images: ReportImages, colour: str,
                     metric_order: list[str], detailed: bool = True) -> dict[str, Any]:
    view = _overview_model_view(record, images, colour, metric_order, detailed)
    if not detailed:  # an overview card shows only the above: 20,000 of them stay cheap
        return view
    round1 = record.round1_best
    return {
        **view,
        "traceback": record.traceback,
        "round1_image": images(round1.image) if round1 else None,
        "round1_scores": dict(_score_items(round1.scores if round1 else {}, metric_order)),
        "judgement": record.judgement,
        "decision": _decision_view(record.decision, images),
        "curve": [fmt(v) for v in record.best_ever_by_round],
        "stop_reason": record.stop_reason,
        "draft_prompt": record.draft_prompt,
        "initial_prompt": record.initial_prompt,
        "rounds": _rounds_view(record, images, metric_order),
        "seconds": fmt_seconds(sum(record.timings.values())) if record.timings else None,
        "rescored": record.rescored,
    }


#: Final scores an overview card's summary line shows (the detailed card shows them all).
OVERVIEW_SCORES = 3


def _overview_model_view(record: CaseRecord, images: ReportImages, colour: str,
                         metric_order: list[str], detailed: bool) -> dict[str, Any]:
    """What every card shows of one model's outcome (the summary line and the best render)."""
    best, round1_selection = record.best, record.round1_selection
    selection = record.final_score("selection")
    sparkline = sparkline_points(record.best_ever_by_round)
    scores = _score_items({k: v for k, v in record.final_scores.items() if k != "selection"},
                          metric_order, None if detailed else OVERVIEW_SCORES)
    return {
        "model": record.model,
        "colour": colour,
        "status": record.status,
        "error": record.error,
        "best_image": images(best.image) if best else None,
        "best_round": best.round if best else None,
        "best_variant": best.variant if best else None,
        "best_prompt": best.prompt if best else None,
        "round1_selection": fmt(round1_selection),
        "selection": selection,
        "selection_text": fmt(selection),
        "gain": fmt_signed(selection - round1_selection)
        if selection is not None and round1_selection is not None else None,
        "final_scores": scores,
        "sparkline": sparkline,
        "sparkline_svg": sparkline_svg(sparkline, colour),
        "rounds": [],
    }


def _decision_view(decision: DecisionRecord | None, images) -> dict[str, Any] | None:
    """The retrieve-or-generate outcome of a case, for its card (None when not asked for)."""
    if decision is None:
        return None
    retrieved = decision.retrieved
    return {"choice": decision.choice, "rule": decision.rule,
            "metric": decision.metric, "margin": decision.margin,
            "generated_value": fmt(decision.generated_value),
            "retrieved_value": fmt(decision.retrieved_value),
            "truly_closer": decision.truly_closer, "correct": decision.correct,
            "retrieved_image": images(retrieved.image) if retrieved else None}


def _rounds_view(record: CaseRecord, images: ReportImages, metric_order: list[str]
                 ) -> list[dict[str, Any]]:
    """Each round's prompt (as a word diff from the previous one), candidates and critique."""
    rounds = []
    previous_prompt = record.initial_prompt
    for rnd in record.rounds:
        prompt = rnd.prompt
        composed = not rounds and prompt == record.initial_prompt
        diff = word_diff(previous_prompt, prompt) if previous_prompt is not None and not composed else None
        rounds.append({
            "round": rnd.round,
            "prompt": prompt,
            "composed": composed,
            "diff": diff,
            "changed": diff is not None and any(op != "eq" for op, _ in diff),
            "stats": diff_stats(diff) if diff else {"ins": 0, "del": 0},
            "round_best_selection": fmt(rnd.round_best_selection),
            "best_ever_selection": fmt(rnd.best_ever_selection),
            "candidates": [_candidate_view(c, rnd, record.best, images, metric_order)
                           for c in rnd.candidates],
            "critique": _critique_view(rnd.critique),
            "revised_prompt": rnd.revised_prompt,
            "diff_revised": word_diff(prompt, rnd.revised_prompt) if rnd.revised_prompt else None,
        })
        previous_prompt = prompt
    return rounds


def _candidate_view(cand: CandidateRecord, rnd: RoundRecord, best: CandidateRecord | None,
                    images: ReportImages, metric_order: list[str]) -> dict[str, Any]:
    return {
        "variant": cand.variant,
        "image": images(cand.image),
        "seed": cand.seed,
        "selection": fmt(cand.selection),
        "scores": _score_items(cand.scores, metric_order),
        "round_best": cand.variant == rnd.round_best,
        "best": best is not None and cand.key == best.key,
        "invalid": cand.invalid_reason or (f"flagged: {cand.flagged}" if cand.flagged else None),
        "prompt": cand.prompt,
        "diff": compact_diff(word_diff(rnd.prompt, cand.prompt)) if cand.prompt != rnd.prompt
        else None,
    }


def _critique_view(critique: CritiqueRecord | None) -> dict[str, Any] | None:
    if critique is None:
        return None
    differences = [{"aspect": d.aspect, "description": d.description, "change": d.change}
                   for d in critique.differences]
    return {"summary": critique.summary, "differences": differences}


def _score_items(scores: dict[str, Any], order: list[str], limit: int | None = None
                 ) -> list[tuple[str, str]]:
    keys = [k for k in order if k in scores] + sorted(k for k in scores if k not in order)
    return [(k, fmt(scores[k], 1 if k.startswith("judge_") else 3)) for k in keys[:limit]]
