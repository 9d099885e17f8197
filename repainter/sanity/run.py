"""``run_sanity``: the ladders of a spec's own models, written into the spec's run folder.

It works in the folder ``repainter run`` would use for the spec (or a finished run's folder):
the references and descriptions it stores are the ones the run uses, a finished case's best
render is the corruption ladder's source (else a one-shot render of the full prompt), and
sanity.json / SANITY.md land next to the leaderboard, whose warning and HTML report section
read them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from PIL import Image

from repainter.errors import UserError
from repainter.executors.prepare import prepare_context
from repainter.failures import RunFailedError
from repainter.graph.context import RunContext
from repainter.graph.nodes import CaseFailure, describe
from repainter.images import load_image
from repainter.preflight import preflight
from repainter.sanity.analysis import analyse
from repainter.sanity.collect import LadderScorer, ModelLadders, Observations
from repainter.sanity.config import SanityConfig
from repainter.sanity.writers import write_outputs
from repainter.schemas import ImageUnderstandingTree
from repainter.spec import RunSpec
from repainter.store import RunStore, refuse_blank_output_dir, run_folder_lock

logger = logging.getLogger(__name__)


def run_sanity(spec: RunSpec, config: SanityConfig | None = None, *,
               run_dir: str | Path | None = None, command: str = "") -> dict[str, Any]:
    """Run the sanity ladders of ``spec`` and write sanity.json and SANITY.md into its run
    folder (``run_dir``, default the spec's own); return sanity.json's data."""
    config = config or SanityConfig()
    if spec.is_grid:
        raise UserError("the sanity check takes one MLLM; run it once per MLLM of the grid "
                        "(--set mllm=... or a spec per MLLM)")
    root = Path(run_dir) if run_dir is not None else spec.run_dir
    refuse_blank_output_dir(root)
    preflight(spec)  # every missing package, weight and key named before anything is written
    started = time.perf_counter()
    with run_folder_lock(root, "sanity"):
        store = RunStore(root)
        store.init(spec)
        ctx, items, components = prepare_context(spec, store)
        sample = items[:config.references]
        models = list(ctx.t2i)
        try:
            if len(sample) < 2:
                raise UserError(f"the sanity check needs at least two references; the spec's "
                                f"dataset selects {len(sample)}")
            observations = collect(ctx, components, config, [i.id for i in sample])
            # where the time went (per component and call), as run.json records a run's
            timing = components.clock.summary()
        finally:
            components.close()
        data = {"kind": "repainter-sanity", "version": 1, "command": command,
                "spec": spec_summary(spec), "config": config.model_dump(mode="json"),
                "judge": judge_on(spec, config), "cases": [i.id for i in sample],
                "references_available": len(items), **analyse(observations, config, models),
                "backend_timing": timing, "seconds": round(time.perf_counter() - started, 1)}
        write_outputs(root, data)
    return data


def judge_on(spec: RunSpec, config: SanityConfig) -> bool:
    return spec.judge if config.judge is None else config.judge


def spec_summary(spec: RunSpec) -> dict[str, Any]:
    return {"name": spec.name, "fingerprint": spec.fingerprint(),
            "t2i": [t.display_name for t in spec.t2i], "mllm": spec.mllm.display_name,
            "metrics": [m.display_name for m in spec.metrics], "selection": dict(spec.selection),
            "dataset": spec.dataset.name}


def collect(ctx: RunContext, components, config: SanityConfig,
            cases: list[str]) -> Observations:
    """Every ladder of every model, one model at a time (released after its cases). A case
    that fails is left out with its reason; a model whose every case fails fails the check."""
    observations = Observations()
    scorer = LadderScorer(ctx, judge_on(ctx.spec, config))
    for model in ctx.t2i:
        ladders = ModelLadders(ctx, config, model, observations, scorer)
        steps = ladders.sampler_plan() if "sampler" in config.ladders else None
        if isinstance(steps, str):
            observations.skipped_ladders.setdefault(model, {})["sampler"] = steps
            steps = None
        failed: dict[str, str] = {}
        for index, case_id in enumerate(cases):
            other = ctx.reference(cases[(index + 1) % len(cases)]).image
            try:
                _one_case(ctx, ladders, case_id, other, steps)
            except Exception as exc:  # noqa: BLE001 - recorded against every ladder of the model
                failed[case_id] = str(exc) if isinstance(exc, CaseFailure) else (
                    f"{type(exc).__name__}: {exc}")
                logger.warning("sanity: %s / %s left out: %s", model, case_id, failed[case_id])
                _forget_case(observations, model, case_id, failed[case_id])
        components.release(model)
        if len(failed) == len(cases):
            first = next(iter(failed.values()))
            raise RunFailedError(f"sanity check: every case of {model} failed (first: {first}); "
                                 "nothing to report")
    return observations


def _forget_case(observations: Observations, model: str, case_id: str, reason: str) -> None:
    for runs in observations.ladders.values():
        if model in runs:
            runs[model].cases.pop(case_id, None)
            runs[model].skipped[case_id] = reason


def _one_case(ctx: RunContext, ladders: ModelLadders, case_id: str, other: Image.Image,
              steps: list[int] | None) -> None:
    config = ladders.config
    iut = ImageUnderstandingTree.model_validate(describe({"case_id": case_id}, ctx)["iut"])
    renders, top_prompt = None, None
    if "prompt" in config.ladders:
        renders, top_prompt = ladders.prompt(case_id, iut)
    if top_prompt is None:
        top_prompt = ladders.compose(iut)
    if "corruption" in config.ladders:
        source, origin = _loop_best(ctx, ladders.model, case_id), "loop best"
        if source is None:
            if renders is None:
                renders = ladders.render_once(case_id, top_prompt)
            source, origin = renders[0].image, "one-shot"
        ladders.corruption(case_id, source, origin, other)
    if steps:
        ladders.sampler(case_id, top_prompt, steps)


def _loop_best(ctx: RunContext, model: str, case_id: str) -> Image.Image | None:
    """The best-ever render of a finished case of this folder's run, where there is one."""
    record = ctx.store.read_case_record(model, case_id)
    best = record.best if record is not None and ctx.store.is_done(model, case_id) else None
    if best is None or not best.image or not (ctx.store.root / best.image).is_file():
        return None
    return load_image(ctx.store.root / best.image)
