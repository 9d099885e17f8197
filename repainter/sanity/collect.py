"""Render and score the ladders with the spec's own components, one T2I model at a time.

Every step is the loop's own: the description is the run folder's (or described once, and kept
for a later run), each rung's tree becomes a prompt through the loop's template and the MLLM's
rewrite under the model's prompt budget, renders go through the same batch call (split on
out-of-memory), and scores through the same batched metric calls and selection score.

What it returns (:class:`Observations`): per ladder (``prompt``, ``corruption:<kind>``,
``sampler``) and model, per case, one dict of scores per rung (the mean over a rung's
renders), plus the cases left out and why.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from repainter.backends.base import CURRENT_PROMPT_BUDGET, GeneratedImage, recorded_metadata
from repainter.graph.context import RunContext, case_seed
from repainter.graph.nodes import CaseFailure, render_batch
from repainter.images import save_png
from repainter.prompts import render_prompt
from repainter.sanity.config import STEPPED_BACKENDS, SanityConfig, sampler_steps
from repainter.sanity.corruption import corruption_ladder
from repainter.sanity.prompt_ladder import ladder_pieces, prompt_ladder
from repainter.schemas import ImageUnderstandingTree
from repainter.scoring import finite_or_none, metric_scores, selection_score
from repainter.store import slug

logger = logging.getLogger(__name__)

#: The judge's score on a rung: the mean of its aesthetic and semantic ratings (1-5).
JUDGE = "judge"
SELECTION = "selection"
#: Most MLLM calls (rewrites, judge ratings) of one case sent at once.
MLLM_THREADS = 8


@dataclass
class LadderRun:
    """One ladder of one model: rung labels, per case the scores of each rung."""

    rungs: list[str]
    cases: dict[str, list[dict[str, float | None]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    #: Metric -> why it cannot score this ladder (e.g. it reads the render's metadata).
    not_applicable: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Case -> the prompt of each rung (prompt ladder only).
    prompts: dict[str, list[str]] = field(default_factory=dict)
    #: Case -> how many of its rungs' prompts the MLLM left empty (rendered as they are).
    empty_prompts: dict[str, int] = field(default_factory=dict)


@dataclass
class Observations:
    ladders: dict[str, dict[str, LadderRun]] = field(default_factory=dict)
    #: (model, case) -> where the corrupted render came from: "loop best" or "one-shot".
    corruption_sources: dict[str, dict[str, str]] = field(default_factory=dict)
    skipped_ladders: dict[str, dict[str, str]] = field(default_factory=dict)

    def ladder(self, name: str, model: str, rungs: list[str]) -> LadderRun:
        return self.ladders.setdefault(name, {}).setdefault(model, LadderRun(rungs))


def _flag(generated: GeneratedImage) -> str | None:
    if generated.flagged:
        return generated.flagged
    return "all_black" if generated.image.getbbox() is None else None


class LadderScorer:
    """Scores a case's rung images with every applicable metric, the selection and the judge."""

    def __init__(self, ctx: RunContext, judge: bool):
        self.ctx, self.judge = ctx, judge
        self.by_name = {m.name: m for m in ctx.metrics}

    def applicable(self, case_id: str, pixels_only: bool) -> tuple[list, dict[str, str]]:
        reference = self.ctx.reference(case_id)
        usable, skipped = [], {}
        for metric in self.ctx.metrics:
            if metric.needs_ground_truth and reference.ground_truth is None:
                skipped[metric.name] = "needs ground truth the dataset lacks"
            elif pixels_only and getattr(metric, "reads_metadata", None):
                skipped[metric.name] = (f"scores the render's recorded {metric.reads_metadata}, "
                                        "not its pixels: a corruption leaves it unchanged")
            else:
                usable.append(metric)
        return usable, skipped

    def score(self, case_id: str, images: list[Image.Image], metadata: list[dict],
              pixels_only: bool = False, judged: list[bool] | None = None,
              ) -> tuple[list[dict[str, float | None]], dict[str, str]]:
        """One row of scores per image; the judge rates the images ``judged`` marks (all by
        default) where it is on."""
        usable, skipped = self.applicable(case_id, pixels_only)
        judged = judged or [True] * len(images)
        candidates: list[dict[str, Any]] = [{"metadata": m, "scores": {}} for m in metadata]
        for metric in usable:
            pairs = metric_scores(metric, self.ctx.prepared(case_id, metric), candidates, images)
            for candidate, value in pairs:
                candidate["scores"][metric.name] = finite_or_none(value)
        reference = self.ctx.reference(case_id).image
        wanted = [i for i, flag in enumerate(judged) if flag] if self.judge else []
        verdicts = dict(zip(wanted, parallel(
            lambda i: self.ctx.mllm.judge(reference, images[i]), wanted), strict=True))
        rows = []
        for index, candidate in enumerate(candidates):
            scores = dict(candidate["scores"])
            scores[SELECTION] = selection_score(scores, self.ctx.spec.selection, self.by_name)
            if index in verdicts:
                scores[JUDGE] = (verdicts[index].aesthetic + verdicts[index].semantic) / 2.0
            rows.append(scores)
        return rows, skipped


def parallel(call: Callable[[Any], Any], items: list) -> list:
    """``call`` on every item, MLLM calls overlapping as the loop's cases do (the backend's own
    ``concurrency`` bounds the requests in flight); each thread runs in a copy of this
    context, so the prompt budget and the billed case carry over. Results in input order."""
    if len(items) <= 1:
        return [call(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(MLLM_THREADS, len(items))) as pool:
        futures = [pool.submit(contextvars.copy_context().run, call, item) for item in items]
        return [future.result() for future in futures]


def rung_means(rows: list[dict[str, float | None]], rungs: int,
               per_rung: int) -> list[dict[str, float | None]]:
    """Rows of ``rungs * per_rung`` renders (rung-major) -> one mean per rung and score; None
    where any render of the rung has no value."""
    out = []
    for rung in range(rungs):
        group = rows[rung * per_rung:(rung + 1) * per_rung]
        names = set().union(*(g.keys() for g in group))
        out.append({n: (None if any(g.get(n) is None for g in group)
                        else sum(g[n] for g in group) / len(group)) for n in sorted(names)})
    return out


def _case_number(seed: int, case_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{case_id}".encode()).digest()[:4], "big")


class ModelLadders:
    """The ladders of one T2I model over the sampled cases."""

    def __init__(self, ctx: RunContext, config: SanityConfig, model: str,
                 observations: Observations, scorer: LadderScorer):
        self.ctx, self.config, self.model = ctx, config, model
        self.observations, self.scorer = observations, scorer
        self.backend = ctx.t2i[model]

    def _seeds(self, case_id: str) -> list[int]:
        # the same seeds on every rung: rungs differ only in what they vary (paired renders)
        return [case_seed(self.config.seed, case_id, 0, j) for j in range(self.config.renders)]

    def _render(self, case_id: str, ladder: str, prompts: list[str]) -> list[GeneratedImage]:
        """Each prompt once per seed (rung-major), saved under RUN/sanity/<model>/<case>/."""
        seeds = self._seeds(case_id)
        batch = [p for p in prompts for _ in seeds]
        images = render_batch(self.backend, batch, seeds * len(prompts))
        folder = self.ctx.store.root / "sanity" / slug(self.model) / slug(case_id)
        for index, generated in enumerate(images):
            # named by what was rendered too: the response cache points at these files, so a
            # rerun with other rungs must not overwrite one with another prompt's render
            what = hashlib.sha256(f"{batch[index]}\0{generated.seed}".encode()).hexdigest()[:10]
            path = folder / f"{ladder}-r{index // len(seeds)}-{index % len(seeds)}-{what}.png"
            save_png(generated.image, path)
            if generated.on_saved is not None:  # the response cache points at the saved file
                generated.on_saved(path)
        flagged = sorted({f for f in map(_flag, images) if f})
        if flagged:
            raise CaseFailure(f"flagged render(s) on the {ladder} ladder: {', '.join(flagged)}")
        return images

    def _score_renders(self, run: LadderRun, case_id: str,
                       images: list[GeneratedImage], rungs: int) -> None:
        metadata = [recorded_metadata(self.backend, g) for g in images]
        rows, skipped = self.scorer.score(case_id, [g.image.convert("RGB") for g in images],
                                          metadata)
        run.not_applicable.update(skipped)
        run.cases[case_id] = rung_means(rows, rungs, self.config.renders)

    def prompt(self, case_id: str, iut: ImageUnderstandingTree
               ) -> tuple[list[GeneratedImage] | None, str | None]:
        """The prompt-information ladder of one case: its renders and its top rung's prompt
        (None, None: the case is left out of it, the reason recorded)."""
        rungs = self.config.rungs
        run = self.observations.ladder("prompt", self.model,
                                       ["keeps all"] + [f"drop step {k}" for k in range(1, rungs)])
        pieces = ladder_pieces(iut, self.config.seed, case_id)
        if pieces < rungs:
            run.skipped[case_id] = (f"its description has {pieces} pieces of information, "
                                    f"fewer than the {rungs} rungs")
            return None, None
        trees = prompt_ladder(iut, rungs=rungs, seed=self.config.seed, case_id=case_id)
        prompts = parallel(lambda rung: self.compose(trees[rung], top=rung == 0),
                           list(range(len(trees))))
        empty = sum(not p for p in prompts)
        if empty:
            run.empty_prompts[case_id] = empty
        images = self._render(case_id, "prompt", prompts)
        self._score_renders(run, case_id, images, rungs)
        run.prompts[case_id] = prompts
        return images, prompts[0]

    def compose(self, iut: ImageUnderstandingTree, *, top: bool = True) -> str:
        """The loop's prompt for a tree: its template draft rewritten by the MLLM, under this
        model's prompt budget. Below the top rung an empty prompt is kept (so little was left
        that the MLLM wrote nothing: the least informative prompt there is)."""
        token = CURRENT_PROMPT_BUDGET.set(self.backend.prompt_budget())
        try:
            draft = render_prompt("compose_draft", iut=iut)
            prompt = self.ctx.mllm.rewrite_prompt(draft, iut).strip()
        finally:
            CURRENT_PROMPT_BUDGET.reset(token)
        if top and not prompt:
            raise CaseFailure("the MLLM returned an empty T2I prompt for the whole description")
        return prompt

    def render_once(self, case_id: str, prompt: str) -> list[GeneratedImage]:
        """A one-shot render of the full prompt (the corruption ladder's source)."""
        return self._render(case_id, "oneshot", [prompt])

    def corruption(self, case_id: str, source: Image.Image, origin: str,
                   other: Image.Image | None) -> None:
        """Every corruption kind's ladder of one case, from ``source`` (a render of the model):
        one batch per metric, the undamaged top rung scored once for every kind. The judge
        sees the kinds of ``judge_corruptions`` only (its calls cost the most)."""
        rungs, kinds = self.config.rungs, list(self.config.corruptions)
        strengths = [round(k / (rungs - 1), 3) for k in range(rungs)]
        self.observations.corruption_sources.setdefault(self.model, {})[case_id] = origin
        labels = [f"strength {s}" for s in strengths]
        if other is None and "other_blend" in kinds:
            kinds.remove("other_blend")
            self.observations.ladder("corruption:other_blend", self.model, labels).skipped[
                case_id] = "no other reference to blend toward"
        seed = _case_number(self.config.seed, case_id)
        images, judged = [source.convert("RGB")], [True]
        for kind in kinds:
            images += corruption_ladder(source, kind, rungs=rungs, seed=seed, other=other)[1:]
            judged += [kind in self.config.judge_corruptions] * (rungs - 1)
        rows, skipped = self.scorer.score(case_id, images, [{}] * len(images),
                                          pixels_only=True, judged=judged)
        for index, kind in enumerate(kinds):
            run = self.observations.ladder(f"corruption:{kind}", self.model, labels)
            run.not_applicable.update(skipped)
            own = rows[1 + index * (rungs - 1):1 + (index + 1) * (rungs - 1)]
            top = dict(rows[0])
            if kind not in self.config.judge_corruptions:
                top.pop(JUDGE, None)
            run.cases[case_id] = [top, *own]

    def sampler_plan(self) -> list[int] | str:
        """The step counts of the sampler ladder, or why this model has none."""
        base = _unwrapped(self.backend)
        kind = getattr(base, "kind", "")
        if kind not in STEPPED_BACKENDS:
            return (f"the {kind or 'unnamed'} backend has no inference steps to vary (only "
                    f"{', '.join(STEPPED_BACKENDS)} has)")
        if self.config.sampler_steps:
            return list(self.config.sampler_steps)
        default = base.effective_settings().get("steps")
        if not isinstance(default, int):
            return "the pipeline states no default number of inference steps"
        steps = sampler_steps(default, self.config.sampler_rungs)
        return steps if len(steps) > 1 else f"the pipeline's default is {default} step: none fewer"

    def sampler(self, case_id: str, prompt: str, steps: list[int]) -> None:
        """The sampler-budget ladder: the top prompt rendered at each step count."""
        run = self.observations.ladder("sampler", self.model, [f"{s} steps" for s in steps])
        target = _unwrapped(self.backend)
        kept = target.steps
        images: list[GeneratedImage] = []
        try:
            for count in steps:
                target.steps = count
                images += self._render(case_id, f"sampler{count}", [prompt])
        finally:
            target.steps = kept
        self._score_renders(run, case_id, images, len(steps))


def _unwrapped(backend: Any) -> Any:
    """The backend under the cache, throttle and lazy wrappers (built if it was not yet): its
    ``kind``, ``steps`` and ``effective_settings`` are the pipeline's own."""
    while hasattr(backend, "inner"):
        backend = backend.inner
    return backend
