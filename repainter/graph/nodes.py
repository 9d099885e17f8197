"""The nodes of the regeneration loop. Each takes the case state and the run context and returns
the keys it changes; none keeps state of its own, so a resumed case re-enters any node safely."""

from __future__ import annotations

import math
from typing import Any

import repainter.graph.strategy as adaptive
from repainter.backend_timing import CURRENT_CASE
from repainter.backends.base import GeneratedImage, T2IBackend, recorded_metadata
from repainter.backends.metric_identity import metric_identity
from repainter.backends.mllm.adaptations import merge as merge_adaptations
from repainter.graph.context import RunContext
from repainter.graph.state import Candidate, CaseState, RoundRecord, round_best_candidate
from repainter.prompts import render_prompt
from repainter.records import CaseRecord
from repainter.records.render_flags import summarise_flags
from repainter.schemas import Critique, ImageUnderstandingTree
from repainter.scoring import finite_or_none, metric_scores, selection_score

#: The pseudo-model label that work shared by all models (the description) is billed to.
SHARED = "(shared)"


class CaseFailure(RuntimeError):
    """This case cannot go on; the message is the reason recorded for it."""


def _iut(state: CaseState) -> ImageUnderstandingTree:
    return ImageUnderstandingTree.model_validate(state["iut"])


def describe(state: CaseState, ctx: RunContext) -> dict[str, Any]:
    """Reference -> Image Understanding Tree, described once per reference and shared by models."""
    case_id = state["case_id"]
    stored = ctx.store.load_description(case_id)
    if stored is None:
        reference = ctx.reference(case_id)
        # One description serves every model: its cost is billed to no model in particular.
        token = CURRENT_CASE.set((SHARED, case_id))
        try:
            iut = ctx.mllm.describe(reference.image, reference.context)
        finally:
            CURRENT_CASE.reset(token)
        stored = iut.model_dump(mode="json")
        ctx.store.save_description(case_id, stored)
    # recorded here, not passed in: the graph's input is only (case_id, model), and a resume
    # compares it with the reference as it is then (repainter.runner)
    return {"iut": stored, "reference_sha256": ctx.reference_sha256(case_id)}


def compose_prompt(state: CaseState, ctx: RunContext) -> dict[str, Any]:
    """IUT -> template draft -> the MLLM's comma-separated T2I prompt."""
    iut = _iut(state)
    draft = render_prompt("compose_draft", iut=iut)
    prompt = ctx.mllm.rewrite_prompt(draft, iut).strip()
    if not prompt:
        raise CaseFailure("the MLLM returned an empty T2I prompt")
    return {"draft_prompt": draft, "initial_prompt": prompt, "prompt": prompt, "round": 0,
            "rounds": [], "best": None, "stale_rounds": 0}


def write_variants(state: CaseState, ctx: RunContext) -> dict[str, Any]:
    """The MLLM writes this round's prompt variants; each gets a fixed seed.

    The baselines ask the MLLM nothing: ``best_of_n`` renders the initial prompt ``variants``
    times per round, ``one_shot`` renders it once (seeds differ by round and variant).
    """
    round_number = state["round"] + 1
    strategy = ctx.spec.strategy_of(state["model"])
    if strategy == "refine":
        prompts = ctx.mllm.write_variants(
            state["prompt"], ctx.spec.loop.variants, _iut(state), _last_critique(state),
            seed=ctx.seed(state["case_id"], round_number, -1),
        )
    elif strategy == "adaptive":
        prompts = _adaptive_prompts(state, ctx, round_number)
    else:
        prompts = [state["initial_prompt"]] * (ctx.spec.loop.variants if strategy == "best_of_n" else 1)
    prompts = [p.strip() for p in prompts if p and p.strip()][: ctx.spec.loop.variants]
    if not prompts:
        raise CaseFailure(f"round {round_number}: the MLLM wrote no prompt variant")
    pending = [
        Candidate(round=round_number, variant=i, prompt=p,
                  seed=ctx.seed(state["case_id"], round_number, i))
        for i, p in enumerate(prompts)
    ]
    return {"pending": pending}


def _adaptive_prompts(state: CaseState, ctx: RunContext, round_number: int) -> list[str]:
    """``adaptive``: the initial prompt, then the revision of the best prompt (or re-samples of
    it when there is nothing new to try), each with its own seeds (:mod:`repainter.graph.strategy`)."""
    rounds = state.get("rounds") or []
    revised = rounds[-1].get("revised_prompt") if rounds else None
    return adaptive.plan_round(rounds, state["initial_prompt"], revised, ctx.spec.loop.variants)


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's CUDA / MPS out-of-memory errors, MemoryError, or a message that says so."""
    return (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or "out of memory" in str(exc).lower())


def free_memory() -> None:
    """Collect garbage and return cached accelerator memory (after an out-of-memory error)."""
    import gc

    gc.collect()
    try:
        import torch
    except ImportError:  # pragma: no cover - the procedural backends need no torch
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        mps.empty_cache()


def render_batch(backend, prompts: list[str], seeds: list[int]) -> list[GeneratedImage]:
    """Render as one batch; on out-of-memory, split the batch in halves and retry each.

    The retry runs outside the ``except`` block, after the failed call's exception (and with it
    the tensors its traceback holds) is dropped and memory is freed. A single prompt that still
    runs out of memory fails the case with that reason.
    """
    failure = None
    try:
        images = backend.generate(prompts, seeds)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        if len(prompts) == 1:
            raise CaseFailure(f"T2I out of memory even for a batch of 1: {exc}") from exc
        failure = f"{type(exc).__name__}: {exc}"
    if failure is not None:  # the exception and its frames are gone here
        free_memory()
        half = len(prompts) // 2
        return (render_batch(backend, prompts[:half], seeds[:half])
                + render_batch(backend, prompts[half:], seeds[half:]))
    if len(images) != len(prompts):
        raise CaseFailure(f"T2I model returned {len(images)} images for {len(prompts)} prompts")
    return images


def _blank_flag(generated: GeneratedImage) -> str | None:
    """The backend's own flag, or "all_black" for an image with no signal at all."""
    if generated.flagged:
        return generated.flagged
    return "all_black" if generated.image.getbbox() is None else None


def generate(state: CaseState, ctx: RunContext) -> dict[str, Any]:
    """Render all of the round's variants as one batch and store the images."""
    pending = state["pending"]
    backend = ctx.t2i[state["model"]]
    images = render_batch(backend, [c["prompt"] for c in pending], [c["seed"] for c in pending])
    rendered = []
    for candidate, generated in zip(pending, images, strict=True):
        path = ctx.store.candidate_path(
            state["model"], state["case_id"], candidate["round"], candidate["variant"]
        )
        flag = _store_render(ctx, path, generated, state["case_id"])
        rendered.append({**candidate, "image": path, "flagged": flag,
                         **_prompt_truncation(generated), **_metadata(backend, generated)})
    return {"pending": rendered}


def _prompt_truncation(generated: GeneratedImage) -> dict[str, Any]:
    """How many prompt tokens the T2I model dropped (recorded only where it dropped some)."""
    dropped = (generated.metadata or {}).get("prompt_tokens_dropped")
    return {"prompt_tokens_dropped": int(dropped)} if dropped else {}


def flag_summary(rounds: list[RoundRecord]) -> dict[str, Any]:
    """Candidates rendered, how many were flagged (per flag) and the flagged share, of the
    graph's rounds (records count theirs: :mod:`repainter.records.render_flags`)."""
    return summarise_flags([c.get("flagged") for r in rounds for c in r.get("candidates") or []])


def _metadata(backend: T2IBackend, generated: GeneratedImage) -> dict[str, Any]:
    """``{"metadata": ...}``: what the backend marks as worth recording (set only where some)."""
    kept = recorded_metadata(backend, generated)
    return {"metadata": kept} if kept else {}


def _store_render(ctx: RunContext, path: str, generated: GeneratedImage,
                  case_id: str) -> str | None:
    """Save a render into the run folder (encoded and written off the loop's critical path
    where the store has a writer), keep it in memory for this case; return its flag."""
    ctx.store.save_render(path, generated.image, case_id)
    if generated.on_saved is not None:  # the cache records where the render is kept
        generated.on_saved(ctx.store.root / path)
    image = generated.image  # never changed once rendered: no copy where it is RGB already
    ctx.remember_render(path, image if image.mode == "RGB" else image.convert("RGB"))
    return _blank_flag(generated)


def score(state: CaseState, ctx: RunContext) -> dict[str, Any]:
    """Every metric on the round's candidates, one batch per metric; then the selection score."""
    return {"pending": score_candidates(state["case_id"], state["pending"], ctx)}


def score_candidates(case_id: str, candidates: list[Candidate], ctx: RunContext) -> list[Candidate]:
    """Scores and selection score of rendered candidates (flagged ones are left unscored)."""
    pending = [dict(c) for c in candidates]
    scorable = [c for c in pending if not c.get("flagged")]
    images = [ctx.candidate_image(c["image"]) for c in scorable]
    for candidate in pending:
        candidate["scores"] = {}
        if candidate.get("flagged"):
            candidate["selection"] = None
            candidate["invalid_reason"] = f"flagged: {candidate['flagged']}"
    reference = ctx.reference(case_id)
    # Ground-truth metrics (object_f1) apply only where the dataset knows the ground truth.
    applicable = [m for m in ctx.metrics
                  if not (m.needs_ground_truth and reference.ground_truth is None)]
    unusable = sorted(set(ctx.spec.selection) - {m.name for m in applicable})
    if unusable:
        raise CaseFailure(f"selection metric(s) {unusable} need ground truth this reference lacks")
    if images:
        for metric in applicable:
            for candidate, value in metric_scores(metric, ctx.prepared(case_id, metric),
                                                  scorable, images):
                # NaN / inf are recorded as None (JSON has no NaN) and explained.
                candidate["scores"][metric.name] = finite_or_none(value)
    by_name = {m.name: m for m in ctx.metrics}
    for candidate in scorable:
        bad = sorted(n for n, v in candidate["scores"].items() if v is None)
        if bad:
            candidate["invalid_reason"] = f"non-finite score from {', '.join(bad)}"
        candidate["selection"] = selection_score(candidate["scores"], ctx.spec.selection, by_name)
    return pending


def select(state: CaseState, ctx: RunContext) -> dict[str, Any]:
    """Pick the round's best, keep the best-ever, record the round, decide whether to stop."""
    pending = state["pending"]
    round_number = pending[0]["round"]
    selectable = [c for c in pending if c.get("selection") is not None]
    round_best = max(selectable, key=lambda c: c["selection"], default=None)
    best = state.get("best")
    previous = best["selection"] if best else None
    if round_best is not None and (best is None or round_best["selection"] > best["selection"]):
        best = round_best
    gain = (best["selection"] - previous) if best and previous is not None else math.inf
    early = ctx.spec.loop.early_stop
    stale = state.get("stale_rounds", 0) + 1 if best and gain < early.min_delta else 0
    record = RoundRecord(
        round=round_number,
        prompt=state["prompt"],
        candidates=pending,
        round_best=round_best["variant"] if round_best else None,
        round_best_selection=round_best["selection"] if round_best else None,
        best_ever_selection=best["selection"] if best else None,
        critique=None,
        revised_prompt=None,
    )
    update: dict[str, Any] = {
        "round": round_number, "rounds": [*state.get("rounds", []), record],
        "best": best, "stale_rounds": stale, "pending": [],
    }
    if round_number >= round_limit(ctx, state["model"]):
        update["stop_reason"] = "round_limit"
    elif early.target is not None and best and best["selection"] >= early.target:
        update["stop_reason"] = "target_reached"
    elif early.patience and stale >= early.patience:
        update["stop_reason"] = "plateau"
    return update


def critique(state: CaseState, ctx: RunContext) -> dict[str, Any]:
    """The MLLM lists concrete differences between the reference and the candidate to improve
    (``adaptive``: those found in several renders of the best prompt)."""
    if ctx.spec.strategy_of(state["model"]) == "adaptive":
        return _critique_base(state, ctx)
    target = _revision_target(state, ctx)
    if target is None:  # nothing scorable yet: vary the same prompt again next round
        return {}
    reference = ctx.reference(state["case_id"])
    found = ctx.mllm.critique(reference.image, ctx.candidate_image(target["image"]), target["prompt"])
    rounds = [*state["rounds"]]
    rounds[-1] = {**rounds[-1], "critique": found.model_dump(mode="json")}
    return {"rounds": rounds}


def _critique_base(state: CaseState, ctx: RunContext) -> dict[str, Any]:
    """Each of the best prompt's best renders critiqued; the differences that recur kept."""
    targets = adaptive.base_renders(state["rounds"], ctx.spec.loop.critique_renders)
    if not targets:
        return {}
    reference = ctx.reference(state["case_id"])
    found = [ctx.mllm.critique(reference.image, ctx.candidate_image(t["image"]), t["prompt"])
             for t in targets]
    merged, basis = adaptive.recurring_differences(found)
    rounds = [*state["rounds"]]
    rounds[-1] = {**rounds[-1], "critique": merged.model_dump(mode="json"),
                  "critique_basis": basis}
    return {"rounds": rounds}


def revise(state: CaseState, ctx: RunContext) -> dict[str, Any]:
    """The MLLM revises the target's prompt to fix the critique's differences (``adaptive``
    asks nothing when no difference recurred: the next round re-samples the best prompt)."""
    target = _revision_target(state, ctx)
    found = _last_critique(state)
    if target is None or found is None:
        return {}
    if not found.differences and ctx.spec.strategy_of(state["model"]) == "adaptive":
        return {}
    revised = ctx.mllm.revise(target["prompt"], found, _iut(state)).strip() or target["prompt"]
    rounds = [*state["rounds"]]
    rounds[-1] = {**rounds[-1], "revised_prompt": revised}
    return {"prompt": revised, "rounds": rounds}


def judge(state: CaseState, ctx: RunContext) -> dict[str, Any]:
    """The MLLM judge scores the best-ever candidate's aesthetic and semantic similarity."""
    best = state.get("best")
    if best is None:
        raise CaseFailure("no round produced a scorable candidate")
    if not ctx.spec.judge:
        return {"judgement": None}
    reference = ctx.reference(state["case_id"])
    verdict = ctx.mllm.judge(reference.image, ctx.candidate_image(best["image"]))
    return {"judgement": verdict.model_dump(mode="json")}


def decide(state: CaseState, ctx: RunContext) -> dict[str, Any]:
    """Retrieve or generate: the retriever answers the best prompt too; a rule picks the answer.

    Where the dataset has ground truth and ``object_f1`` is a metric, the record also says which
    image is truly closer to the ground-truth scene, so the rule's accuracy can be reported.
    """
    rule = ctx.spec.decision
    if rule is None or state["model"] == rule.retriever:
        return {}
    best, case_id = state["best"], state["case_id"]
    retrieved = render_batch(ctx.t2i[rule.retriever], [best["prompt"]], [best["seed"]])[0]
    path = ctx.store.retrieved_path(state["model"], case_id)
    flag = _store_render(ctx, path, retrieved, case_id)
    (other,) = score_candidates(case_id, [{**best, "image": path, "flagged": flag,
                                           "round": 0, "variant": 0}], ctx)
    if rule.rule == "mllm":
        reference = ctx.reference(case_id).image
        generated_verdict = state.get("judgement") or ctx.mllm.judge(
            reference, ctx.candidate_image(best["image"])).model_dump(mode="json")
        retrieved_verdict = ctx.mllm.judge(reference, ctx.candidate_image(path)).model_dump(mode="json")
        generated_value = generated_verdict["aesthetic"] + generated_verdict["semantic"]
        retrieved_value = retrieved_verdict["aesthetic"] + retrieved_verdict["semantic"]
    else:
        generated_value = _rule_value(best, rule.metric, ctx)
        retrieved_value = _rule_value(other, rule.metric, ctx)
    choice = ("retrieved" if retrieved_value is not None and generated_value is not None
              and retrieved_value > generated_value + rule.margin else "generated")
    truth = _truly_closer(best, other, ctx)
    return {"decision": {
        "rule": rule.rule, "metric": rule.metric, "margin": rule.margin, "choice": choice,
        "generated_value": generated_value, "retrieved_value": retrieved_value,
        "retrieved": {k: other.get(k) for k in ("image", "scores", "selection", "flagged")},
        "truly_closer": truth,
        "correct": None if truth in (None, "tie") else truth == choice,
    }}


def _rule_value(candidate: Candidate, metric: str, ctx: RunContext) -> float | None:
    if metric == "selection":
        return candidate.get("selection")
    value = (candidate.get("scores") or {}).get(metric)
    by_name = {m.name: m for m in ctx.metrics}
    return None if value is None else by_name[metric].similarity(value)


def _truly_closer(generated: Candidate, retrieved: Candidate, ctx: RunContext) -> str | None:
    """Which image matches the ground-truth scene better, by object F1 (None: not known)."""
    # the object_f1 metric under whatever label the spec gives it
    label = next((m.display_name for m in ctx.spec.metrics if m.name == "object_f1"), None)
    if label is None:
        return None
    g, r = (c.get("scores", {}).get(label) for c in (generated, retrieved))
    if g is None or r is None:
        return None
    return "tie" if abs(g - r) < 1e-9 else ("generated" if g > r else "retrieved")


def finalize(state: CaseState, ctx: RunContext) -> dict[str, Any]:
    """Final scores of the best-ever candidate; the case record is written atomically."""
    best = state["best"]
    final_scores = {**best["scores"], "selection": best["selection"]}
    if state.get("judgement"):
        final_scores["judge_aesthetic"] = float(state["judgement"]["aesthetic"])
        final_scores["judge_semantic"] = float(state["judgement"]["semantic"])
    done = {**state, "final_scores": final_scores, "status": "done"}
    ctx.store.write_case_record(case_record(done, ctx))
    return {"final_scores": final_scores, "status": "done"}


# -- routing ---------------------------------------------------------------------------------


def after_select(state: CaseState, ctx: RunContext | None = None) -> str:
    """Stop -> judge; else the method (refine, adaptive) critiques and revises, a baseline just
    renders again."""
    if state.get("stop_reason"):
        return "judge"
    if ctx is not None and ctx.spec.strategy_of(state["model"]) not in ("refine", "adaptive"):
        return "write_variants"
    return "critique"


def round_limit(ctx: RunContext, model: str) -> int:
    """Rounds a case of ``model`` runs: one for ``one_shot``, ``loop.rounds`` otherwise."""
    return 1 if ctx.spec.strategy_of(model) == "one_shot" else ctx.spec.loop.rounds


# -- helpers ---------------------------------------------------------------------------------


def _last_critique(state: CaseState) -> Critique | None:
    rounds = state.get("rounds") or []
    if rounds and rounds[-1].get("critique"):
        return Critique.model_validate(rounds[-1]["critique"])
    return None


def _revision_target(state: CaseState, ctx: RunContext) -> Candidate | None:
    if ctx.spec.strategy_of(state["model"]) == "adaptive":  # the best prompt's best render
        return adaptive.best_render(state["rounds"])
    if ctx.spec.loop.revise_from == "best_ever":
        return state.get("best")
    return round_best_candidate(state["rounds"][-1])


def case_adaptations(mllm: Any, model: str, case_id: str) -> list[dict[str, Any]]:
    """The MLLM's adaptations for this case (none for backends that make none), the shared
    description's included: it is the description every case of the reference starts from."""
    summary = getattr(mllm, "case_adaptations", None)
    if summary is None:
        return []
    return merge_adaptations([summary(SHARED, case_id), summary(model, case_id)])


def case_record(state: CaseState, ctx: RunContext) -> CaseRecord:
    """The record of a finished case: everything needed to inspect or re-score it."""
    reference = ctx.reference(state["case_id"])
    rounds = state.get("rounds", [])
    round1_best = round_best_candidate(rounds[0]) if rounds else None
    return CaseRecord.model_validate({
        "case_id": state["case_id"],
        "model": state["model"],
        "category": reference.category,
        "status": state.get("status", "done"),
        "error": None,
        "reference": ctx.store.reference_relpath(state["case_id"]),
        "reference_sha256": state.get("reference_sha256"),
        "source": reference.source,
        "license": reference.license,
        "ground_truth": reference.ground_truth,
        "iut": state.get("iut"),
        "draft_prompt": state.get("draft_prompt"),
        "initial_prompt": state.get("initial_prompt"),
        "rounds": rounds,
        "round1_best": round1_best,
        "best": state.get("best"),
        "best_ever_by_round": [r.get("best_ever_selection") for r in rounds],
        "stop_reason": state.get("stop_reason"),
        "judgement": state.get("judgement"),
        "final_scores": state.get("final_scores", {}),
        "t2i": ctx.t2i[state["model"]].identity(),
        # what each metric did (weights, preprocessing, resize, versions): issue 27
        "metrics": {m.name: metric_identity(m) for m in ctx.metrics},
        "timings": {k: round(v, 4) for k, v in (state.get("timings") or {}).items()},
        "mllm_usage": ctx.mllm.case_usage(state["model"], state["case_id"]),
        # what the MLLM backend changed to make its calls work (written only where it did)
        **({"mllm_adaptations": adapted}
           if (adapted := case_adaptations(ctx.mllm, state["model"], state["case_id"]))
           else {}),
        "render_flags": flag_summary(rounds),
        "decision": state.get("decision"),
        # only the baselines say so: records of the default method stay as they were
        **({"strategy": strategy} if (strategy := ctx.spec.strategy_of(state["model"])) != "refine"
           else {}),
    })
